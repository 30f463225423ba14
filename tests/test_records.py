"""The PostgreSQL record against a real server: migrations, the sample projection, the audit trail, the outbox,
and the one way every "current state" row is written (an older write landing late changes nothing)."""

from __future__ import annotations

import asyncio
import random
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from activities.calendar import compute_deadline
from activities.certification_records import CertificationRecords
from activities.credit_records import CreditRecordActivities, credit_listing_row
from activities.db import MIGRATIONS_DIR, apply_migrations, create_pool, upsert
from activities.enforcement_records import EnforcementRecordActivities, enforcement_case
from activities.lead_records import LeadRecords
from activities.platform_records import PlatformRecords
from activities.recall_records import RecallRecords
from activities.records import RecordActivities, audit_trail, outbox_for, sample_rows
from activities.rectification_records import RectificationRecords
from activities.registers import Registers
from domain.credit_code import ALPHABET, with_check_character
from domain.models import SampleOrder
from domain.records import (
    CertificateActionRow,
    CreditListing,
    CreditListingChange,
    DecisionRecord,
    EnforcementCaseChange,
    LeadClosing,
    LeadEntry,
    LeadReferral,
    OutboxMessage,
    PlatformClosing,
    PlatformRequest,
    RecallRow,
    RectificationRow,
    RegisterRequest,
    SampleProjection,
    WaitOpening,
)
from domain.rules import DeadlineRequest
from domain.status import Awaiting
from tests import factories as f

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


async def test_opening_a_wait_computes_its_deadline_and_shows_the_earliest_wait(pool: asyncpg.Pool) -> None:
    """One local activity where a sample opens a wait: the deadline as `compute_deadline` gives it, and the
    record showing the wait due first, on the sample's (here ten times compressed) clock."""
    acts = RecordActivities(pool)
    no = f"T-{uuid.uuid4().hex[:10]}"
    request = DeadlineRequest(rule_id="lab_testing", start=T0)
    expected = await compute_deadline(request)
    real_due = T0 + (expected.due - T0) / 10
    # A branch's wait, due after the new one in real time: the record shows the new one.
    later = Awaiting(kind="rectification_report", roles=["enterprise"], rule_id="x", title="x", basis="x",
                     due=expected.due, due_at=real_due + timedelta(days=1))
    opening = WaitOpening(deadline=request, kind="lab_report", roles=["lab"], others=[later], clock_origin=T0,
                          time_scale=10.0, projection=projection(no, 1, "testing"))
    opened = await acts.open_wait(opening)
    assert opened.deadline == expected
    [row] = await sample_rows(pool, workflow_id=f"sample-{no}")
    assert (row["stage"], row["awaiting_kind"], row["awaiting_role"]) == ("testing", "lab_report", "lab")
    assert row["next_deadline"] == real_due and row["overdue"] is False
    assert opened.projected.next_deadline == real_due and opened.projected.awaiting_kind == "lab_report"
    # Opened again (a retry after a crash): the same record, nothing doubled.
    assert await acts.open_wait(opening) == opened
    assert [r["seq"] for r in await sample_rows(pool, workflow_id=f"sample-{no}")] == [1]
    # An overdue wait beside it comes first once it is due before the new one.
    overdue = later.model_copy(update={"due_at": real_due - timedelta(days=1), "overdue": True})
    moved = await acts.open_wait(opening.model_copy(update={"others": [overdue],
                                                            "projection": projection(no, 2, "testing")}))
    [row] = await sample_rows(pool, workflow_id=f"sample-{no}")
    assert (row["awaiting_kind"], row["awaiting_role"], row["overdue"]) == ("rectification_report", "enterprise", True)
    assert moved.projected.awaiting_kind == "rectification_report"


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


# --- state rows: one upsert idiom, guarded by the write's time ------------------------------------------


def at(tick: int) -> datetime:
    return T0 + timedelta(minutes=tick)


@dataclass(frozen=True)
class StateTable:
    """A "current state" table: `write(pool, key, tick, value)` writes a state at time `at(tick)` (the seq of
    a projection) that shows `value` in column `column`; the row is `key` in column `key_column`."""

    table: str
    key_column: str
    column: str
    write: Callable[[asyncpg.Pool, str, int, str], Awaitable[None]]


async def _sample(pool: asyncpg.Pool, key: str, tick: int, value: str) -> None:
    await RecordActivities(pool).project_sample(projection(key, tick, value))


async def _rectification(pool: asyncpg.Pool, key: str, tick: int, value: str) -> None:
    await RectificationRecords(pool).save(RectificationRow(
        workflow_id=key, sample_no=key, ordered_at=T0, due=T0 + timedelta(days=30), review_reason=value,
        updated_at=at(tick),
    ))


async def _recall(pool: asyncpg.Pool, key: str, tick: int, value: str) -> None:
    await RecallRecords(pool).save(RecallRow(
        workflow_id=key, sample_no=key, assessment=value, progress=[{"at": at(tick).isoformat()}],
        updated_at=at(tick),
    ))


async def _certification(pool: asyncpg.Pool, key: str, tick: int, value: str) -> None:
    await CertificationRecords(pool).save(CertificateActionRow(
        workflow_id=key, sample_no=key, certificate_no="2025010901234567", action=value, updated_at=at(tick),
    ))


async def _enforcement(pool: asyncpg.Pool, key: str, tick: int, value: str) -> None:
    await EnforcementRecordActivities(pool).enforcement_record_case(EnforcementCaseChange(
        workflow_id=key, sample_no=key, reason="final_fail", at=at(tick), case_no=value,
    ))


async def _credit(pool: asyncpg.Pool, key: str, tick: int, value: str) -> None:
    acts = CreditRecordActivities(pool)
    await acts.credit_record_listing(CreditListing(
        workflow_id=key, sample_no=key, credit_code=with_check_character("91330100MA2B3C4D5"),
        enterprise_name="杭州某电器有限公司", published_at=T0, publicity_due=T0 + timedelta(days=28),
        listed_until=T0 + timedelta(days=365), updated_at=at(0),
    ))
    await acts.credit_update_listing(CreditListingChange(workflow_id=key, at=at(tick), serious_basis=value))


def _credit_code(key: str) -> str:
    rnd = random.Random(key)
    return with_check_character("9133" + "".join(rnd.choice(ALPHABET) for _ in range(13)))


async def _enterprise(pool: asyncpg.Pool, key: str, tick: int, value: str) -> None:
    order = f.order("offline_production")
    order["sampled_party"].update(credit_code=key, name=value)
    await Registers(pool).register_enterprise_fail(RegisterRequest.model_validate({
        "workflow_id": f"sample-{order['sample_no']}", "order": order, "verdict": "fail",
        "on": date(2026, 5, 6), "at": at(tick),
    }))


async def _platform(pool: asyncpg.Pool, key: str, tick: int, value: str) -> None:
    acts = PlatformRecords(pool)
    await acts.platform_record_request(PlatformRequest(
        workflow_id=key, sample_no=key, platform="某电商平台", shop="某旗舰店", listing_id="L-1", requested_at=T0,
        handover_reference="outbox:1", due=T0 + timedelta(days=1), key_listed=False, updated_at=at(0),
    ))
    await acts.platform_record_closing(PlatformClosing(
        workflow_id=key, confirmation="refused", reason=value, confirmed_at=at(tick), closed_outcome="refused",
        updated_at=at(tick),
    ))


async def _lead(pool: asyncpg.Pool, key: str) -> None:
    await LeadRecords(pool).lead_record(LeadEntry(
        workflow_id=key, sample_no=key, lead_no=1, type="no_licence", description="无证生产",
        evidence=[{"name": "photo.jpg", "sha256": "0" * 64}], routed_to="执法稽查", recorded_at=T0,
        updated_at=at(0),
    ))


async def _lead_referral(pool: asyncpg.Pool, key: str, tick: int, value: str) -> None:
    await _lead(pool, key)
    await LeadRecords(pool).lead_record_referral(
        LeadReferral(workflow_id=key, handover_reference=value, updated_at=at(tick))
    )


async def _lead_outcome(pool: asyncpg.Pool, key: str, tick: int, value: str) -> None:
    await _lead(pool, key)
    await LeadRecords(pool).lead_record_outcome(
        LeadClosing(workflow_id=key, outcome="confirmed", reason=value, closed_at=at(tick), updated_at=at(tick))
    )


STATE_TABLES = [
    StateTable("samples", "sample_no", "stage", _sample),
    StateTable("rectifications", "workflow_id", "review_reason", _rectification),
    StateTable("recalls", "workflow_id", "assessment", _recall),
    StateTable("certificate_actions", "workflow_id", "action", _certification),
    StateTable("enforcement_cases", "workflow_id", "case_no", _enforcement),
    StateTable("credit_listings", "workflow_id", "serious_basis", _credit),
    StateTable("enterprises", "credit_code", "name", _enterprise),
    StateTable("platform_actions", "workflow_id", "confirmation_reason", _platform),
    StateTable("leads", "workflow_id", "handover_reference", _lead_referral),
    StateTable("leads", "workflow_id", "outcome_reason", _lead_outcome),
]


async def _row(pool: asyncpg.Pool, t: StateTable, key: str) -> dict[str, Any]:
    rows = await pool.fetch(f"SELECT * FROM {t.table} WHERE {t.key_column} = $1", key)
    assert len(rows) == 1
    return dict(rows[0])


@pytest.mark.parametrize("t", STATE_TABLES, ids=lambda t: f"{t.table}.{t.column}")
async def test_an_older_write_landing_late_never_overwrites_a_newer_one(pool: asyncpg.Pool, t: StateTable) -> None:
    key = _credit_code(uuid.uuid4().hex) if t.table == "enterprises" else f"S-{uuid.uuid4().hex[:10]}"
    await t.write(pool, key, 2, "newer")
    newer = await _row(pool, t, key)
    await t.write(pool, key, 1, "older")  # scheduled first, committed last
    assert await _row(pool, t, key) == newer
    await t.write(pool, key, 2, "newer")  # a retry of the same write
    assert await _row(pool, t, key) == newer
    await t.write(pool, key, 3, "newest")
    assert (await _row(pool, t, key))[t.column] == "newest"


@pytest.mark.parametrize("t", STATE_TABLES, ids=lambda t: f"{t.table}.{t.column}")
async def test_a_retried_first_write_is_one_row(pool: asyncpg.Pool, t: StateTable) -> None:
    key = _credit_code(uuid.uuid4().hex) if t.table == "enterprises" else f"S-{uuid.uuid4().hex[:10]}"
    await t.write(pool, key, 1, "first")
    first = await _row(pool, t, key)
    assert first[t.column] == "first"
    await t.write(pool, key, 1, "first")
    assert await _row(pool, t, key) == first


async def test_an_enforcement_change_writes_only_the_columns_it_names(pool: asyncpg.Pool) -> None:
    acts = EnforcementRecordActivities(pool)
    wf = f"case-{uuid.uuid4().hex[:10]}-merged-1"
    merged = [{"sample_no": "A", "workflow_id": "sample-A", "region": "330100", "batch": None}]

    def change(tick: int, **kw: Any) -> EnforcementCaseChange:
        return EnforcementCaseChange(workflow_id=wf, sample_no=None, merged_samples=merged, reason="merged",
                                     at=at(tick), **kw)

    await acts.enforcement_record_case(change(1, handed_over_at=at(1), handover_reference="outbox:7",
                                              filing_due=date(2026, 6, 1)))
    await acts.enforcement_record_case(change(2, filing_outcome="filed", case_no="C-1"))
    await acts.enforcement_record_case(change(1, filing_due=date(2026, 5, 1)))  # older: changes nothing
    row = await enforcement_case(pool, wf)
    assert row is not None
    assert (row["sample_no"], row["merged_samples"], row["reason"]) == (None, merged, "merged")
    assert (row["handed_over_at"], row["handover_reference"], row["filing_due"]) == (at(1), "outbox:7", date(2026, 6, 1))
    assert (row["filing_outcome"], row["case_no"], row["updated_at"]) == ("filed", "C-1", at(2))


async def test_a_new_credit_repair_application_clears_the_previous_reason_only(pool: asyncpg.Pool) -> None:
    acts = CreditRecordActivities(pool)
    wf = f"sample-{uuid.uuid4().hex[:10]}-credit"
    await _credit(pool, wf, 1, "两年内两次不合格")
    await acts.credit_update_listing(CreditListingChange(workflow_id=wf, at=at(2), repair_applied_at=at(2),
                                                         repair_outcome="applied"))
    await acts.credit_update_listing(CreditListingChange(workflow_id=wf, at=at(3), repair_outcome="rejected",
                                                         repair_reason="材料不全"))
    await acts.credit_update_listing(CreditListingChange(workflow_id=wf, at=at(4), repair_applied_at=at(4),
                                                         repair_outcome="applied"))
    row = await credit_listing_row(pool, wf)
    assert row is not None
    assert (row["repair_applied_at"], row["repair_outcome"], row["repair_reason"]) == (at(4), "applied", None)
    assert (row["serious_basis"], row["updated_at"]) == ("两年内两次不合格", at(4))


async def test_the_serious_dishonesty_path_and_the_repair_path_never_drop_each_others_writes(
    pool: asyncpg.Pool,
) -> None:
    """The two run side by side in the credit branch: a serious-dishonesty change stamped before a repair
    change but committed after it still lands (each path has its own write time)."""
    acts = CreditRecordActivities(pool)
    wf = f"sample-{uuid.uuid4().hex[:10]}-credit"
    await _credit(pool, wf, 1, "两年内两次不合格")
    await acts.credit_update_listing(CreditListingChange(workflow_id=wf, at=at(3), repair_outcome="applied"))
    await acts.credit_update_listing(CreditListingChange(workflow_id=wf, at=at(2), serious_dishonesty="proposed"))
    row = await credit_listing_row(pool, wf)
    assert row is not None
    assert (row["repair_outcome"], row["serious_dishonesty"]) == ("applied", "proposed")


async def test_an_upsert_names_its_key_and_guard(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="guard"):
        await upsert(pool, "recalls", {"workflow_id": "x", "sample_no": "x"}, key=["workflow_id"])


async def test_rows_written_before_009_take_the_next_write(fresh_dsn: str, tmp_path: Path) -> None:
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "009":
            shutil.copy(path, tmp_path / path.name)
    await apply_migrations(fresh_dsn, tmp_path)
    p = await create_pool(fresh_dsn)
    try:
        await p.execute("INSERT INTO certificate_actions (workflow_id, sample_no, certificate_no, action)"
                        " VALUES ('w', 's', 'c', 'old')")
        assert "009_updated_at.sql" in await apply_migrations(p)
        assert await p.fetchval("SELECT updated_at FROM certificate_actions") == datetime(1970, 1, 1, tzinfo=UTC)
        await _certification(p, "w", 1, "revoked")
        assert await p.fetchval("SELECT action FROM certificate_actions") == "revoked"
    finally:
        await p.close()


async def test_result_handling_records_are_written_once(pool: asyncpg.Pool) -> None:
    """A 复查 row per round and a hand-over record per step (Order 18 ch. 6): a retried write adds nothing."""
    from activities.result_handling_records import (
        ResultHandlingRecords,
        re_inspection_rows,
        result_handover_rows,
    )
    from domain.records import ReInspectionRow, ResultHandoverRecord

    records, no, at = ResultHandlingRecords(pool), f"R-{uuid.uuid4().hex[:8]}", datetime(2026, 3, 2, tzinfo=UTC)
    row = ReInspectionRow(workflow_id=f"sample-{no}-rectification", sample_no=no, round="first", due=at,
                          decided_at=at, outcome="fail", reason="复查不合格", sample_provided_free=True,
                          request_id="r1")
    handover = ResultHandoverRecord(workflow_id=f"sample-{no}", step_id="producer-bureau-notification",
                                    sample_no=no, action="notify_producer_bureau", recipient="行政区划代码 120200 的市场监督管理局",
                                    reference="outbox:1", basis="第四十四条第二款", data={"a": 1}, at=at)
    assert [await records.record_re_inspection(row), await records.record_re_inspection(row)] == [True, False]
    assert [await records.record_result_handover(handover),
            await records.record_result_handover(handover)] == [True, False]
    [stored] = await re_inspection_rows(pool, no)
    assert (stored["round"], stored["outcome"], stored["sample_provided_free"]) == ("first", "fail", True)
    [told] = await result_handover_rows(pool, no)
    assert (told["action"], told["data"]) == ("notify_producer_bureau", {"a": 1})

