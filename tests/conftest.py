"""Shared test environments: one time-skipping server, one dev server and one embedded PostgreSQL for
the whole session; each test takes a fresh task queue (samples-python style)."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from activities.holiday_files import CALENDAR_DIR_ENV
from codec import spotcheck_data_converter
from domain import visibility
from starter.binaries import temporal_cli
from starter.postgres import EmbeddedPostgres
from tests.workflow_env import time_skipping_env

# Loaded holiday years live in a folder of the tests' own (each test that loads one takes its own folder):
# a year loaded into a developer's stack must not change what the tests count.
os.environ[CALENDAR_DIR_ENV] = tempfile.mkdtemp(prefix="spotcheck-calendar-")
# Deployed workers run without the SDK's sandbox (worker.workflow_runner); the tests are where it guards:
# every workflow the suite runs is sandboxed, so a non-deterministic call fails here before it ships.
os.environ["SPOTCHECK_WORKFLOW_SANDBOX"] = "on"


@pytest_asyncio.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """Time-skipping server for month- and year-long timers; custom search attributes registered first.
    One per test: the server's clock is global, and a terminated workflow's timers can leave it unable to
    skip for the next test (seen with the test server 1.40), so tests must not share it."""
    env = await time_skipping_env()
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (visibility queries, list/count) on free ports."""
    env = await WorkflowEnvironment.start_local(
        data_converter=spotcheck_data_converter,
        dev_server_existing_path=temporal_cli(),
        search_attributes=visibility.ALL,
        ui=False,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A real PostgreSQL: TEST_DATABASE_URL when set, else an embedded server in a folder of the tests' own."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    folder = Path(tempfile.mkdtemp(prefix="spotcheck-pg-"))
    server = EmbeddedPostgres(folder / "pgdata", keep=False)
    yield server.dsn
    server.stop()


@pytest_asyncio.fixture(scope="session")
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    from activities.db import apply_migrations, create_pool

    db = await create_pool(postgres_dsn)
    await apply_migrations(db)
    yield db
    await db.close()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The quick bench (tests/test_bench.py) is long and mostly waits: first, so that with xdist it runs
    # beside the rest of the suite rather than after it.
    items.sort(key=lambda item: item.get_closest_marker("bench") is None)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # The SDK can crash at interpreter exit after every test passed (sdk-python issue 300); leave with
    # pytest's own verdict before that teardown can change it.
    code = getattr(config, "_spotcheck_exitstatus", None)
    if code is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._spotcheck_exitstatus = exitstatus  # type: ignore[attr-defined]
