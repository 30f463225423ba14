"""Records of one plan for the report tests, written through the project's own record activities (projections,
audit rows, the outbox, the bulletin register, the branches' records), as the workflows write them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from activities.certification_records import CertificationRecords
from activities.enforcement_records import EnforcementRecordActivities
from activities.platform_records import PlatformRecords
from activities.recall_records import RecallRecords
from activities.records import RecordActivities
from activities.registers import Registers
from domain.records import (
    CertificateActionRow,
    DecisionRecord,
    EnforcementCaseChange,
    OutboxMessage,
    PlatformClosing,
    PlatformRequest,
    RecallRow,
    RegisterRequest,
    SampleProjection,
)
from tests import factories as f

AGENCY_A = {"name": "浙江省产品质量安全科学研究院", "code": "ZJPQ"}
AGENCY_B = {"name": "杭州市质量技术监督检测院", "code": "HZQC"}
VOLTAGE = {"item": "输出电压", "standard": "GB 4943.1-2022", "requirement": "5V±5%", "result": "5.6V"}
MARKING = {"item": "标识", "standard": "GB/T 35590-2017", "requirement": "应标注", "result": "未标注"}
T0 = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in China


def _order(channel: str, plan_id: str, *, price: str | None, agency: dict[str, str], ordered_on: str,
           **overrides: Any) -> dict[str, Any]:
    o = f.order(channel, plan_id=plan_id, inspection_agency=agency, ordered_on=ordered_on, **overrides)
    o["product"]["price"] = price
    return o


class Seeder:
    """Writes each record through the activity a workflow uses; `again()` repeats every write (a retry)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.records = RecordActivities(pool)
        self.registers = Registers(pool)
        self.writes: list[Any] = []
        self.pool = pool

    async def _do(self, fn: Any, arg: Any) -> None:
        self.writes.append((fn, arg))
        await fn(arg)

    async def again(self) -> None:
        for fn, arg in list(self.writes):
            await fn(arg)

    async def sample(self, order: dict[str, Any], stage: str, verdict: str, at: datetime = T0) -> str:
        wid = f"sample-{order['sample_no']}"
        await self._do(self.records.project_sample, SampleProjection(
            sample_no=order["sample_no"], workflow_id=wid, seq=1, stage=stage, verdict=verdict, order=order,
            updated_at=at))
        return wid

    async def decide(self, wid: str, kind: str, outcome: str, at: datetime, data: dict[str, Any] | None = None,
                     via: str = "update", accepted: bool = True) -> None:
        d = f.decision(kind, outcome, "lab", data=data or {})
        await self._do(self.records.record_decision, DecisionRecord(
            workflow_id=wid, request_id=d["request_id"], kind=kind, outcome=outcome, accepted=accepted,
            actor=d["actor"], decision=d, stage="testing", received_at=at, via=via))

    async def escalate(self, wid: str, kind: str, at: datetime) -> None:
        await self._do(self.records.queue_outbox, OutboxMessage(
            workflow_id=wid, step_id=f"escalation-{kind}-1", channel="escalation", recipient="lab",
            subject="超期督办", payload={"kind": kind, "due": str(at.date()), "rule": kind}, created_at=at))

    async def bulletin(self, wid: str, order: dict[str, Any], items: list[dict[str, Any]], on: date) -> None:
        await self._do(self.registers.register_bulletin, RegisterRequest(
            workflow_id=wid, order=order, verdict="fail", failed_items=items, on=on, report_no="R-1", at=T0))


async def seed_plan(pool: asyncpg.Pool) -> tuple[str, Seeder]:
    """A plan of seven samples ordered in 2026Q4 and one in 2026Q3, two agencies; a sample of another plan.
    Returns the plan id and the seeder (to repeat its writes)."""
    plan = f"P-{uuid.uuid4().hex[:10]}"
    s = Seeder(pool)
    day = timedelta(days=1)

    # 1. Made on site in Hangzhou, 30 CNY: passes; agency A reports 4 working days after receipt.
    o1 = _order("offline_production", plan, price="30.00", agency=AGENCY_A, ordered_on="2026-10-10")
    w1 = await s.sample(o1, "retention", "pass")
    await s.decide(w1, "sampling_record", "sealed", T0)
    await s.decide(w1, "sample_receipt", "accepted", T0)
    await s.decide(w1, "lab_report", "pass", T0 + 4 * day, {"report_no": "A-1", "failed_items": []})

    # 2. At a shop in Ningbo, 120 CNY: fails for good; the lab was late; the rectification report was late;
    #    penalised, recalled.
    o2 = _order("offline_circulation", plan, price="120.00", agency=AGENCY_A, ordered_on="2026-10-11")
    w2 = await s.sample(o2, "post_handling", "fail")
    await s.decide(w2, "sample_receipt", "accepted", T0)
    await s.escalate(w2, "lab_report", T0 + 30 * day)
    await s.decide(w2, "lab_report", "fail", T0 + 32 * day, {"report_no": "A-2", "failed_items": [VOLTAGE]})
    await s.decide(w2, "result_delivery", "delivered", T0 + 33 * day)
    await s.bulletin(w2, o2, [VOLTAGE], date(2026, 12, 1))
    await s.escalate(f"{w2}-rectification", "rectification_report", T0 + 90 * day)
    await s.decide(f"{w2}-rectification", "rectification_report", "submitted", T0 + 95 * day)
    await s.decide(f"{w2}-rectification", "re_inspection", "pass", T0 + 96 * day)
    await s._do(EnforcementRecordActivities(pool).enforcement_record_case, EnforcementCaseChange(
        workflow_id=f"{w2}-enforcement", sample_no=o2["sample_no"], reason="final_fail", at=T0 + 40 * day,
        outcome="penalty", fine_amount="5000.00"))
    await s._do(RecallRecords(pool).save, RecallRow(
        workflow_id=f"{w2}-recall", sample_no=o2["sample_no"], assessment="defect", recall_type="voluntary",
        updated_at=T0 + 50 * day))

    # 3. Online from a 个体工商户 in Yiwu, 89.90 CNY: agency B rejects the first arrival; fails, the re-test
    #    passes (overturned); the producer's confirmation is taken by default.
    o3 = _order("online", plan, price="89.90", agency=AGENCY_B, ordered_on="2026-11-02")
    w3 = await s.sample(o3, "retention", "pass")
    await s.decide(w3, "sample_receipt", "rejected", T0)
    await s.decide(w3, "sample_receipt", "accepted", T0 + 3 * day)
    await s.decide(w3, "lab_report", "fail", T0 + 10 * day, {"report_no": "B-1", "failed_items": [VOLTAGE]})
    await s.decide(w3, "producer_confirmation", "confirmed", T0 + 20 * day, via="default")
    await s.decide(w3, "objection", "filed", T0 + 12 * day)
    await s.decide(w3, "retest_report", "pass", T0 + 30 * day, {"report_no": "B-2", "failed_items": []})

    # 4. Livestream, 2500 CNY: fails for good on two standards; delisted, certificate suspended.
    o4 = _order("livestream", plan, price="2500.00", agency=AGENCY_B, ordered_on="2026-11-20")
    w4 = await s.sample(o4, "post_handling", "fail")
    await s.decide(w4, "sample_receipt", "accepted", T0)
    await s.decide(w4, "lab_report", "fail", T0 + 5 * day, {"report_no": "B-3", "failed_items": [VOLTAGE, MARKING]})
    await s.bulletin(w4, o4, [VOLTAGE, MARKING], date(2026, 12, 2))
    platform = PlatformRecords(pool)
    await s._do(platform.platform_record_request, PlatformRequest(
        workflow_id=f"{w4}-platform", sample_no=o4["sample_no"], platform="某直播平台", shop="直播店",
        listing_id="L-1", requested_at=T0, handover_reference="outbox:1", due=T0 + 3 * day, key_listed=False))
    await s._do(platform.platform_record_closing, PlatformClosing(
        workflow_id=f"{w4}-platform", confirmation="delisted", confirmed_at=T0 + day, closed_outcome="delisted"))
    await s._do(CertificationRecords(pool).save, CertificateActionRow(
        workflow_id=f"{w4}-certification", sample_no=o4["sample_no"], certificate_no="2023011609765432",
        action="suspended", decided_at=T0 + 2 * day))

    # 5. Online, no price: the party refused to be sampled.
    o5 = _order("online", plan, price=None, agency=AGENCY_A, ordered_on="2026-12-01")
    w5 = await s.sample(o5, "post_handling", "refused")
    await s.decide(w5, "sampling_record", "refused", T0)

    # 6. Made on site, 6000 CNY: still testing at agency B.
    o6 = _order("offline_production", plan, price="6000.00", agency=AGENCY_B, ordered_on="2026-12-05")
    w6 = await s.sample(o6, "testing", "pending")
    await s.decide(w6, "sample_receipt", "accepted", T0)

    # 7. The same plan, ordered in the quarter before; and 8. another plan's sample.
    o7 = _order("offline_production", plan, price="40.00", agency=AGENCY_A, ordered_on="2026-09-20")
    await s.sample(o7, "retention", "pass")
    o8 = _order("offline_production", f"{plan}-other", price="40.00", agency=AGENCY_A, ordered_on="2026-10-20")
    await s.sample(o8, "retention", "pass")
    return plan, s
