"""The workbench's users and API tokens in PostgreSQL (migrations/012_users.sql): add, list, disable, sign in
with a password (argon2id, argon2-cffi) or an API token (random, kept as its SHA-256). What a user may decide
is domain/users.py."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.users import User

TOKEN_PREFIX = "spt_"  # recognisable in a leaked log, and never a valid password
TOKEN_DAYS = 90
MIN_PASSWORD = 8
MAX_PASSWORD = 256  # argon2 takes any length; a bound keeps one sign-in from costing more than any other

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong id costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class UserError(ValueError):
    """A user that cannot be added or changed; the message names the field, never a password."""


def password_problem(password: str) -> str | None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return f"password: {MIN_PASSWORD} to {MAX_PASSWORD} characters"
    return None


def _user(row: asyncpg.Record) -> User:
    return User(id=row["id"], display_name=row["display_name"], roles=tuple(row["roles"]),
                regions=tuple(row["regions"]), organisation=row["organisation"], credit_code=row["credit_code"],
                disabled=row["disabled"])


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class UserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def add(self, user: User, password: str) -> bool:
        """Add `user`; False when the id is taken (nothing changed)."""
        if problem := password_problem(password):
            raise UserError(problem)
        row = await self.pool.fetchval(
            """INSERT INTO users (id, display_name, roles, regions, organisation, credit_code, password_hash, disabled)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING id""",
            user.id, user.display_name, [r.value for r in user.roles], list(user.regions), user.organisation,
            user.credit_code, _hasher.hash(password), user.disabled,
        )
        return row is not None

    async def get(self, user_id: str) -> User | None:
        row = await self.pool.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
        return _user(row) if row else None

    async def all(self) -> list[User]:
        return [_user(r) for r in await self.pool.fetch("SELECT * FROM users ORDER BY id")]

    async def set_disabled(self, user_id: str, disabled: bool = True) -> bool:
        done = await self.pool.execute("UPDATE users SET disabled = $2, updated_at = now() WHERE id = $1",
                                       user_id, disabled)
        return bool(done.endswith(" 1"))

    async def sign_in(self, user_id: str, password: str) -> User | None:
        """The user whose id and password these are, and who is not disabled; else None (which of the three
        was wrong is not told)."""
        row = await self.pool.fetchrow("SELECT * FROM users WHERE id = $1", user_id[:64]) if user_id else None
        stored = row["password_hash"] if row else _DUMMY_HASH
        try:
            _hasher.verify(stored, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row["disabled"]:
            return None
        if _hasher.check_needs_rehash(stored):
            await self.pool.execute("UPDATE users SET password_hash = $2 WHERE id = $1", row["id"],
                                    _hasher.hash(password))
        return _user(row)

    async def issue_token(self, user_id: str, label: str | None = None, days: int = TOKEN_DAYS) -> str:
        """A new API token for `user_id` (shown once; only its SHA-256 is kept). UserError for no such user."""
        if await self.get(user_id) is None:
            raise UserError(f"user: no user {user_id}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self.pool.execute(
            "INSERT INTO api_tokens (token_sha256, user_id, label, expires_at) VALUES ($1, $2, $3, $4)",
            token_digest(token), user_id, label, datetime.now(UTC) + timedelta(days=days))
        return token

    async def by_token(self, token: str) -> User | None:
        """The enabled user an unexpired, unrevoked token belongs to, else None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        row = await self.pool.fetchrow(
            """SELECT u.* FROM api_tokens t JOIN users u ON u.id = t.user_id
               WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND t.expires_at > now() AND NOT u.disabled""",
            token_digest(token))
        return _user(row) if row else None

    async def claim(self, workflow_id: str, kind: str, user_id: str, assigned_by: str) -> None:
        """`user_id` takes the awaited `kind` of `workflow_id` in hand (given by `assigned_by`); the last claim wins."""
        await self.pool.execute(
            """INSERT INTO claims (workflow_id, kind, user_id, assigned_by) VALUES ($1, $2, $3, $4)
               ON CONFLICT (workflow_id, kind) DO UPDATE
               SET user_id = EXCLUDED.user_id, assigned_by = EXCLUDED.assigned_by, claimed_at = now()""",
            workflow_id, kind, user_id, assigned_by)

    async def claims(self, workflow_ids: list[str]) -> dict[tuple[str, str], str]:
        """(workflow id, kind) → the user who has it in hand, for these workflows."""
        rows = await self.pool.fetch("SELECT workflow_id, kind, user_id FROM claims WHERE workflow_id = ANY($1::text[])",
                                     workflow_ids)
        return {(r["workflow_id"], r["kind"]): r["user_id"] for r in rows}

    async def bulk_item_begin(self, bulk_id: str, workflow_id: str, user_id: str, kind: str, sample_no: str,
                              request_id: str) -> dict[str, Any] | None:
        """Take one item of a bulk decision before it is sent: None when taken now, else the row of the first
        time (its result, or `sending` while that send is under way): the caller then sends nothing."""
        async with self.pool.acquire() as conn:
            taken = await conn.fetchval(
                """INSERT INTO bulk_items (bulk_id, workflow_id, user_id, kind, sample_no, request_id)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (bulk_id, workflow_id) DO NOTHING RETURNING 1""",
                bulk_id, workflow_id, user_id, kind, sample_no, request_id)
            if taken:
                return None
            row = await conn.fetchrow("SELECT * FROM bulk_items WHERE bulk_id = $1 AND workflow_id = $2",
                                      bulk_id, workflow_id)
        return dict(row) if row else None

    async def bulk_item_done(self, bulk_id: str, workflow_id: str, result: str, reason: str | None,
                             stage: str | None) -> None:
        await self.pool.execute(
            """UPDATE bulk_items SET result = $3, reason = $4, stage = $5, decided_at = now()
               WHERE bulk_id = $1 AND workflow_id = $2""", bulk_id, workflow_id, result, reason, stage)

    async def bulk_item_forget(self, bulk_id: str, workflow_id: str) -> None:
        """An item whose send failed without an answer: the form sent again tries it again (same request id)."""
        await self.pool.execute("DELETE FROM bulk_items WHERE bulk_id = $1 AND workflow_id = $2", bulk_id, workflow_id)
