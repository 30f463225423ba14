"""The PostgreSQL record against a real server: migrations, the sample projection, the audit trail, the outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from activities.db import MIGRATIONS_DIR, apply_migrations, create_pool
from activities.records import RecordActivities, audit_trail, outbox_for, sample_rows
from domain.credit_code import with_check_character
from domain.models import SampleOrder
from domain.records import DecisionRecord, OutboxMessage, SampleProjection

T0 = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(postgres_dsn)
    await apply_migrations(p)
    yield p
    await p.close()


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    """A new empty database on the same server, dropped afterwards."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(postgres_dsn)._replace(path="/" + name))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def order(sample_no: str, region: str = "330100") -> dict[str, Any]:
    return SampleOrder.model_validate(
        {
            "sample_no": sample_no,
            "plan_id": "P2025-ZJ-01",
            "task_type": "routine",
            "channel": "offline_circulation",
            "region": region,
            "product": {"name": "电热水壶", "classification_code": "05.01.02", "brand": "某牌", "model": "K-15"},
            "sampled_party": {
                "name": "杭州某电器商行",
                "credit_code": with_check_character("92330100MA2B3C4D5"),
                "region": region,
            },
            "inspection_agency": {"name": "浙江省质量科学研究院", "code": "ZJQ"},
        }
    ).model_dump(mode="json")


def projection(sample_no: str, seq: int, stage: str, **kw: Any) -> SampleProjection:
    return SampleProjection(
        sample_no=sample_no,
        workflow_id=f"sample-{sample_no}",
        seq=seq,
        stage=stage,
        verdict=kw.pop("verdict", "pending"),
        order=order(sample_no, kw.pop("region", "330100")),
        updated_at=T0 + timedelta(minutes=seq),
        **kw,
    )


def decision(workflow_id: str, request_id: str, accepted: bool, **kw: Any) -> DecisionRecord:
    actor = {"id": "lab-007", "role": "lab", "name": "张三"}
    return DecisionRecord(
        workflow_id=workflow_id,
        request_id=request_id,
        kind=kw.pop("kind", "lab_report"),
        outcome=kw.pop("outcome", "fail"),
        accepted=accepted,
        reason=kw.pop("reason", None),
        actor=actor,
        decision={"kind": "lab_report", "outcome": "fail", "actor": actor, "request_id": request_id},
        stage=kw.pop("stage", "testing"),
        received_at=kw.pop("received_at", T0),
        via=kw.pop("via", "update"),
    )


# --- migrations ----------------------------------------------------------------------------------------


async def test_migrations_apply_once(pool: asyncpg.Pool) -> None:
    # The fixture applied them; applying again applies nothing.
    assert await apply_migrations(pool) == []
    names = [r["name"] for r in await pool.fetch("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    assert "001_core.sql" in names
    tables = {
        r["table_name"]
        for r in await pool.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    }
    assert {"samples", "decisions", "notices", "outbox", "schema_migrations"} <= tables


async def test_concurrent_apply_applies_each_once(fresh_dsn: str) -> None:
    first, second = await asyncio.gather(apply_migrations(fresh_dsn), apply_migrations(fresh_dsn))
    expected = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    assert sorted(first + second) == expected
    assert await apply_migrations(fresh_dsn) == []
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(expected)
    finally:
        await conn.close()


async def test_migrations_in_name_order_and_failed_one_rolls_back(fresh_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "002_second.sql").write_text("INSERT INTO t_order VALUES ('second');")
    (tmp_path / "001_first.sql").write_text("CREATE TABLE t_order (name text); INSERT INTO t_order VALUES ('first');")
    (tmp_path / "003_broken.sql").write_text("INSERT INTO t_order VALUES ('third'); SELECT no_such_function();")
    (tmp_path / "notes.txt").write_text("not a migration")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await apply_migrations(fresh_dsn, tmp_path)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert [r["name"] for r in await conn.fetch("SELECT name FROM t_order")] == ["first", "second"]
        applied = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")]
        assert applied == ["001_first.sql", "002_second.sql"]
        (tmp_path / "003_broken.sql").write_text("INSERT INTO t_order VALUES ('third');")
        assert await apply_migrations(fresh_dsn, tmp_path) == ["003_broken.sql"]
        assert await conn.fetchval("SELECT count(*) FROM t_order") == 3
    finally:
        await conn.close()


# --- samples -------------------------------------------------------------------------------------------


async def test_projection_keeps_the_newest_seq(pool: asyncpg.Pool) -> None:
    acts = RecordActivities(pool)
    no = f"T-{uuid.uuid4().hex[:10]}"
    await acts.project_sample(projection(no, 1, "sampling"))
    await acts.project_sample(
        projection(
            no, 3, "testing", awaiting_kind="lab_report", awaiting_role="lab",
            next_deadline=T0 + timedelta(days=28), overdue=True,
        )
    )
    # An older projection retried late changes nothing, nor does a repeat of the same seq.
    await acts.project_sample(projection(no, 2, "received"))
    await acts.project_sample(projection(no, 3, "in_transit"))
    [row] = await sample_rows(pool, workflow_id=f"sample-{no}")
    assert (row["seq"], row["stage"], row["awaiting_kind"], row["awaiting_role"]) == (3, "testing", "lab_report", "lab")
    assert row["overdue"] is True
    assert row["next_deadline"] == T0 + timedelta(days=28)
    assert row["updated_at"] == T0 + timedelta(minutes=3)
    # Query columns come from the order; the order itself comes back as a dict.
    assert row["product_code"] == "05.01.02"
    assert (row["region"], row["channel"], row["task_type"], row["plan_id"]) == (
        "330100", "offline_circulation", "routine", "P2025-ZJ-01",
    )
    assert row["enterprise_code"] == with_check_character("92330100MA2B3C4D5")
    assert row["order"]["product"]["name"] == "电热水壶"
    created = row["created_at"]

    await acts.project_sample(projection(no, 4, "result_notified", verdict="fail"))
    [row] = await sample_rows(pool, workflow_id=f"sample-{no}")
    assert (row["seq"], row["stage"], row["verdict"], row["overdue"], row["awaiting_kind"]) == (
        4, "result_notified", "fail", False, None,
    )
    assert row["created_at"] == created


async def test_sample_rows_filters(pool: asyncpg.Pool) -> None:
    acts = RecordActivities(pool)
    region = "339" + f"{uuid.uuid4().int % 1000:03d}"
    stage = f"stage-{uuid.uuid4().hex[:6]}"
    a, b = f"F-{uuid.uuid4().hex[:10]}", f"F-{uuid.uuid4().hex[:10]}"
    await acts.project_sample(projection(a, 1, stage, region=region, overdue=True))
    await acts.project_sample(projection(b, 1, stage, region=region))
    assert {r["sample_no"] for r in await sample_rows(pool, stage=stage)} == {a, b}
    assert [r["sample_no"] for r in await sample_rows(pool, stage=stage, region=region, overdue=True)] == [a]
    assert [r["sample_no"] for r in await sample_rows(pool, stage=stage, overdue=False)] == [b]
    assert len(await sample_rows(pool, stage=stage, limit=1)) == 1


# --- audit trail ---------------------------------------------------------------------------------------


async def test_record_decision_writes_once(pool: asyncpg.Pool) -> None:
    acts = RecordActivities(pool)
    wf = f"sample-D-{uuid.uuid4().hex[:10]}"
    rec = decision(wf, "req-1", accepted=True)
    assert await acts.record_decision(rec) is True
    assert await acts.record_decision(rec) is False
    [row] = await audit_trail(pool, wf)
    assert (row["request_id"], row["kind"], row["outcome"], row["accepted"]) == ("req-1", "lab_report", "fail", True)
    assert (row["actor_id"], row["actor_role"], row["actor"]["name"]) == ("lab-007", "lab", "张三")
    assert row["decision"]["request_id"] == "req-1"
    assert (row["stage"], row["via"], row["received_at"]) == ("testing", "update", T0)
    assert row["recorded_at"] is not None


async def test_rejected_then_accepted_with_same_request_id(pool: asyncpg.Pool) -> None:
    acts = RecordActivities(pool)
    wf = f"sample-D-{uuid.uuid4().hex[:10]}"
    rejected = decision(wf, "req-2", accepted=False, reason="not awaited", stage="sampling", via="signal")
    accepted = decision(wf, "req-2", accepted=True, received_at=T0 + timedelta(hours=1))
    assert await acts.record_decision(rejected) is True
    assert await acts.record_decision(accepted) is True
    assert await acts.record_decision(rejected) is False
    assert await acts.record_decision(accepted) is False
    trail = await audit_trail(pool, wf)
    assert [(r["accepted"], r["reason"], r["via"]) for r in trail] == [
        (False, "not awaited", "signal"),
        (True, None, "update"),
    ]
    assert await audit_trail(pool, f"sample-none-{uuid.uuid4().hex}") == []


# --- outbox --------------------------------------------------------------------------------------------


async def test_queue_outbox_writes_once(pool: asyncpg.Pool) -> None:
    acts = RecordActivities(pool)
    wf = f"sample-O-{uuid.uuid4().hex[:10]}"
    msg = OutboxMessage(
        workflow_id=wf,
        step_id="reminder:objection_review:1",
        channel="reminder",
        recipient="case_officer@330100",
        subject="复检申请受理决定即将到期",
        payload={"due": (T0 + timedelta(days=3)).isoformat(), "sample_no": wf[7:]},
        created_at=T0,
    )
    assert await acts.queue_outbox(msg) is True
    assert await acts.queue_outbox(msg.model_copy(update={"subject": "changed on retry"})) is False
    assert await acts.queue_outbox(msg.model_copy(update={"step_id": "reminder:objection_review:2"})) is True
    rows = await outbox_for(pool, wf)
    assert [(r["step_id"], r["subject"], r["sent_at"]) for r in rows] == [
        ("reminder:objection_review:1", "复检申请受理决定即将到期", None),
        ("reminder:objection_review:2", "复检申请受理决定即将到期", None),
    ]
    assert rows[0]["payload"] == msg.payload
