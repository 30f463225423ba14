"""PostgreSQL plumbing: the connection pool (json/jsonb as Python objects), the migration runner, and the
one way an activity writes a record:

- `upsert`: a "current state" row (one per key, rewritten at each step). The write carries its time
  (`updated_at`, or another monotonic column such as a projection's `seq`) and changes the stored row only
  when that row is not newer: an older write landing late (a retried attempt that timed out but committed
  after the workflow moved on) never overwrites a newer one, and a retry of the same write is idempotent.
- `update_row`: the same guard for a change to a row another write created (the columns it names only).
- `insert_once`: an append-only row keyed by an idempotency key (`ON CONFLICT DO NOTHING`)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from temporalio import activity

from domain.bounds import whole_number_setting

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# One fixed key for pg_advisory_xact_lock: workers starting together apply migrations one at a time.
_MIGRATION_LOCK = 0x53706F74_636B6D67  # "Spotckmg"

_Conn = asyncpg.Connection | PoolConnectionProxy
# What a write runs on: the pool, or a connection (in a transaction) taken from it.
Db = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy

_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    """JSON for the database: UTF-8 text kept as is (readable Chinese in psql), dates as ISO strings."""
    return json.dumps(value, ensure_ascii=False, default=_json_default)


async def _set_codecs(conn: asyncpg.Connection) -> None:
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(typename, schema="pg_catalog", encoder=dumps, decoder=json.loads, format="text")


async def create_pool(dsn: str, **kw: Any) -> asyncpg.Pool:
    """A pool (1..SPOTCHECK_DB_POOL_MAX connections, default 20, unless overridden) whose json and jsonb
    columns take and give dicts."""
    user_init: Callable[[asyncpg.Connection], Awaitable[None]] | None = kw.pop("init", None)

    async def init(conn: asyncpg.Connection) -> None:
        await _set_codecs(conn)
        if user_init is not None:
            await user_init(conn)

    kw.setdefault("min_size", 1)
    kw.setdefault("max_size", pool_max_size())
    # No session state to undo on release: Spotcheck never SETs, LISTENs or takes session-level locks (its
    # advisory lock is transaction-scoped), so asyncpg's default reset query would be a round trip per write.
    kw.setdefault("reset", _nothing_to_reset)
    return await asyncpg.create_pool(dsn, init=init, **kw)


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    return None


def pool_max_size(environ: Mapping[str, str] = os.environ) -> int:
    """SPOTCHECK_DB_POOL_MAX (default 20): at most this many connections per worker process."""
    return whole_number_setting(environ, "SPOTCHECK_DB_POOL_MAX", 20, 1, 1000)


async def _apply_one(conn: _Conn, name: str, sql: str) -> bool:
    """Apply one migration in its own transaction, under the advisory lock; False when already applied."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(_SCHEMA_MIGRATIONS)
        if await conn.fetchval("SELECT 1 FROM schema_migrations WHERE name = $1", name):
            return False
        await conn.execute(sql)
        await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
        return True


def read_migrations(directory: Path) -> list[tuple[str, str]]:
    """(name, sql) of every *.sql file in `directory`, in name order."""
    files = sorted((p for p in directory.glob("*.sql") if p.is_file()), key=lambda p: p.name)
    return [(p.name, p.read_text(encoding="utf-8")) for p in files]


async def _apply_all(conn: _Conn, directory: Path) -> list[str]:
    migrations = read_migrations(directory)
    if not migrations:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(_SCHEMA_MIGRATIONS)
        return []
    applied: list[str] = []
    for name, sql in migrations:
        if await _apply_one(conn, name, sql):
            log.info("applied migration %s", name)
            applied.append(name)
    return applied


async def apply_migrations(pool_or_dsn: asyncpg.Pool | str, directory: Path | None = None) -> list[str]:
    """Apply `directory`/*.sql (default: the repo's migrations/) in name order, each once, each in its own
    transaction, recorded in schema_migrations. Returns the names applied by this call."""
    directory = directory or MIGRATIONS_DIR
    if isinstance(pool_or_dsn, str):
        conn = await asyncpg.connect(pool_or_dsn)
        try:
            return await _apply_all(conn, directory)
        finally:
            await conn.close()
    async with pool_or_dsn.acquire() as pooled:
        return await _apply_all(pooled, directory)


# --- one way to write a record --------------------------------------------------------------------------


def write_time(at: datetime | None = None) -> datetime:
    """The time a write carries: `at` when the workflow gave one, else when the activity was first scheduled
    (the same for every retry of it, so a retry is the same write), else now (outside an activity)."""
    if at is not None:
        return at
    if activity.in_activity():
        return activity.info().scheduled_time
    return datetime.now(UTC)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _params(start: int, count: int) -> str:
    return ", ".join(f"${i}" for i in range(start, start + count))


@lru_cache(maxsize=256)
def upsert_sql(
    table: str, columns: tuple[str, ...], key: tuple[str, ...], update: tuple[str, ...], guard: str, strict: bool
) -> str:
    """INSERT … ON CONFLICT (key) DO UPDATE SET col = excluded.col … WHERE t.guard <= excluded.guard."""
    sets = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in update)
    return (
        f"INSERT INTO {_q(table)} AS t ({', '.join(map(_q, columns))}) VALUES ({_params(1, len(columns))})\n"
        f"ON CONFLICT ({', '.join(map(_q, key))}) DO UPDATE SET {sets}\n"
        f"WHERE t.{_q(guard)} {'<' if strict else '<='} excluded.{_q(guard)}\n"
        "RETURNING true"
    )


async def upsert(
    db: Db,
    table: str,
    row: Mapping[str, Any],
    *,
    key: Sequence[str],
    keep: Sequence[str] = (),
    guard: str = "updated_at",
    strict: bool = False,
) -> bool:
    """Insert `row` (column → value) into `table`, or, when a row with its `key` is there and is not newer
    (stored `guard` <= the row's; `strict`: <), set every column of `row` but the key and `keep` (columns the
    first write fixes). A column left out of `row` is not written: a partial change names only what it
    changes. True when a row was written, False when the stored one is newer."""
    columns = tuple(row)
    keys = tuple(key)
    if guard not in columns or not set(keys) <= set(columns):
        raise ValueError(f"upsert into {table}: the row must carry its key {keys} and its guard {guard!r}")
    update = tuple(c for c in columns if c not in keys and c not in keep)
    sql = upsert_sql(table, columns, keys, update, guard, strict)
    return bool(await db.fetchval(sql, *row.values()))


@lru_cache(maxsize=256)
def update_sql(table: str, key: tuple[str, ...], changes: tuple[str, ...], guard: str) -> str:
    """UPDATE table SET col = $n … WHERE key = $k … AND guard <= the change's guard."""
    sets = ", ".join(f"{_q(c)} = ${i}" for i, c in enumerate(changes, 1))
    where = " AND ".join(f"{_q(c)} = ${i}" for i, c in enumerate(key, len(changes) + 1))
    return (
        f"UPDATE {_q(table)} AS t SET {sets}\n"
        f"WHERE {where} AND t.{_q(guard)} <= ${changes.index(guard) + 1}\n"
        "RETURNING true"
    )


async def update_row(
    db: Db, table: str, key: Mapping[str, Any], changes: Mapping[str, Any], *, guard: str = "updated_at"
) -> bool:
    """Set the columns named in `changes` (with its `guard` time) of the row with `key`, unless the stored row
    is newer. True when written; False when the row is newer or not there (yet)."""
    if guard not in changes:
        raise ValueError(f"update of {table}: the change must carry its guard {guard!r}")
    sql = update_sql(table, tuple(key), tuple(changes), guard)
    return bool(await db.fetchval(sql, *changes.values(), *key.values()))


@lru_cache(maxsize=256)
def insert_once_sql(table: str, columns: tuple[str, ...], key: tuple[str, ...], returning: str | None) -> str:
    return (
        f"INSERT INTO {_q(table)} ({', '.join(map(_q, columns))}) VALUES ({_params(1, len(columns))})\n"
        f"ON CONFLICT ({', '.join(map(_q, key))}) DO NOTHING"
        + (f"\nRETURNING {_q(returning)}" if returning else "")
    )


async def insert_once(
    db: Db, table: str, row: Mapping[str, Any], *, key: Sequence[str], returning: str | None = None
) -> Any:
    """Append `row` unless a row with its idempotency `key` is there. Returns the new row's `returning`
    column (None when it was there already, or when `returning` is not asked)."""
    sql = insert_once_sql(table, tuple(row), tuple(key), returning)
    return await db.fetchval(sql, *row.values())
