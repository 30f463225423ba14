"""PostgreSQL plumbing: the connection pool (json/jsonb as Python objects) and the migration runner."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# One fixed key for pg_advisory_xact_lock: workers starting together apply migrations one at a time.
_MIGRATION_LOCK = 0x53706F74_636B6D67  # "Spotckmg"

_Conn = asyncpg.Connection | PoolConnectionProxy

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
    """A pool (1..10 connections unless overridden) whose json and jsonb columns take and give dicts."""
    user_init: Callable[[asyncpg.Connection], Awaitable[None]] | None = kw.pop("init", None)

    async def init(conn: asyncpg.Connection) -> None:
        await _set_codecs(conn)
        if user_init is not None:
            await user_init(conn)

    kw.setdefault("min_size", 1)
    kw.setdefault("max_size", 10)
    return await asyncpg.create_pool(dsn, init=init, **kw)


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
