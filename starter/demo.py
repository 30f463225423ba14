"""`spotcheck up --demo N`: N samples (online and offline, passing and failing, some with objections,
one late lab) on a compressed clock, driven by scripted decisions so a monitor sees every stage move in
the Web UI within minutes."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from domain.decisions import Role
from domain.users import User
from starter.client import DecisionRejected, Signer, SpotcheckClient
from starter.users import UserStore

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "orders"
DEMO_SCALE = 86400.0  # a day per second: the 15-day objection window takes 15 s
# Try in the Web UI: `ProcessKind = "sample" AND Overdue = true AND Region = "330100"`, more in docs/monitoring.md.
FAILED = [{"item": "输出电压", "standard": "GB 4943.1-2022", "requirement": "5V±5%", "result": "5.6V"}]


@dataclass
class Step:
    kind: str
    outcome: str
    role: str
    pause: float = 3.0  # seconds to wait once the sample awaits this decision
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _report(outcome: str, kind: str = "lab_report", pause: float = 4.0) -> Step:
    data = {"report_no": f"DEMO-R-{uuid.uuid4().hex[:6]}", "failed_items": FAILED if outcome == "fail" else []}
    return Step(kind, outcome, "lab", pause, data=data)


_RECEIVED = [Step("sampling_record", "sealed", "sampler", data={"record_no": "DEMO-CY"}),
             Step("sample_receipt", "accepted", "lab")]
_NOTIFIED = [Step("result_delivery", "delivered", "case_officer")]

SCENARIOS: list[tuple[str, str, list[Step]]] = [
    ("online", "passes, disposed of within the retention period", [*_RECEIVED, _report("pass"), Step("disposal", "disposed", "lab")]),
    ("offline_production", "fails, no objection: final after the 15-day window",
     [*_RECEIVED, _report("fail"), *_NOTIFIED]),
    ("online", "fails, objection accepted, re-test passes",
     [*_RECEIVED, _report("fail"), *_NOTIFIED,
      Step("objection", "filed", "enterprise", reason="对输出电压检验结果有异议"),
      Step("objection_review", "accepted", "case_officer", reason="符合复检条件"),
      _report("pass", "retest_report"), Step("disposal", "disposed", "lab")]),
    ("livestream", "fails, objection rejected", [*_RECEIVED, _report("fail"), *_NOTIFIED,
     Step("objection", "filed", "enterprise", reason="申请复检"),
     Step("objection_review", "rejected", "case_officer", reason="超出检验项目范围")]),
    ("evaluative", "evaluative: risk found, no objection path", [*_RECEIVED, _report("fail")]),
    ("offline_circulation", "the lab is late: overdue and escalated, then fails",
     [*_RECEIVED, _report("fail", pause=60.0), *_NOTIFIED,
      Step("objection", "waived", "enterprise")]),
    ("offline_production", "fails, objection accepted, re-test confirms the fail",
     [*_RECEIVED, _report("fail"), *_NOTIFIED,
      Step("objection", "filed", "enterprise", reason="申请复检"),
      Step("objection_review", "accepted", "case_officer", reason="符合复检条件"),
      _report("fail", "retest_report")]),
    ("online", "the result notice is never recorded as delivered: stays overdue for the monitor's filter",
     [*_RECEIVED, _report("fail")]),
    ("online", "fails for good, then every consequence: rectification, enforcement, recall, CCC, delisting",
     [*_RECEIVED, _report("fail"), *_NOTIFIED, Step("objection", "waived", "enterprise"),
      Step("case_filing", "filed", "enforcement", data={"case_no": "DEMO-立案-1"}),
      Step("defect_assessment", "defect", "case_officer"),
      Step("certificate_action", "suspended", "certification_body"),
      Step("delist_confirmation", "delisted", "platform"),
      Step("recall_decision", "ordered", "case_officer"),
      Step("rectification_report", "submitted", "enterprise"),
      Step("case_outcome", "penalty", "enforcement", data={"fine_amount": "50000", "heavy": False}),
      Step("recall_plan", "submitted", "enterprise"),
      Step("re_inspection", "pass", "case_officer"),
      Step("recall_progress", "completed", "enterprise"),
      Step("recall_summary", "submitted", "enterprise"),
      Step("disposal", "disposed", "lab")]),
]


def demo_order(channel: str, sample_no: str) -> dict[str, Any]:
    order = json.loads((EXAMPLES / f"{channel}.json").read_text(encoding="utf-8"))
    order.update(sample_no=sample_no, plan_id="DEMO", time_scale=DEMO_SCALE)
    return dict(order)


async def _drive(client: SpotcheckClient, sample_no: str, steps: list[Step], firm: str) -> None:
    """Send each step's decision once the sample (or a branch) waits for it; `firm`: the sampled party's
    credit code, the organisation an enterprise acts for."""
    for step in steps:
        while True:
            status = await client.status(sample_no)
            waits = [*status.awaiting, *(a for b in status.branches if not b.closed for a in b.awaiting)]
            if any(a.kind == step.kind for a in waits):
                break
            if status.stage == "closed":
                return
            await asyncio.sleep(1.0)
        await asyncio.sleep(step.pause)
        actor = {"id": f"demo-{step.role}", "role": step.role}
        if step.role == "enterprise":
            actor["organisation"] = firm
        decision = {"kind": step.kind, "outcome": step.outcome, "request_id": f"{sample_no}-{step.kind}",
                    "actor": actor, "reason": step.reason, "data": step.data}
        try:
            await client.decide(sample_no, decision)
            print(f"demo: {sample_no} {step.kind}={step.outcome}", flush=True)
        except DecisionRejected as err:
            print(f"demo: {sample_no} {step.kind} rejected: {err.reason}", flush=True)


# The demo's users, one per role, all acting for Zhejiang (330000 covers every demo order's region); the
# enterprise is the sampled party of examples/orders/offline_production.json. Passwords are for the demo only.
DEMO_REGION = "330000"
DEMO_ENTERPRISE = "91330100MA2ABCDE1R"


async def demo_users(users: UserStore) -> list[tuple[str, str]]:
    """One user per role (`demo-<role>`, password `spotcheck-<role>`): (id, password) of each, new or not."""
    signed_in = []
    for role in Role:
        user_id, password = f"demo-{role.value}", f"spotcheck-{role.value}"
        enterprise = role is Role.ENTERPRISE
        await users.add(User(id=user_id, display_name=f"演示 {role.value}", roles=(role,),
                             regions=() if enterprise else (DEMO_REGION,), organisation="演示单位 demo",
                             credit_code=DEMO_ENTERPRISE if enterprise else None), password)
        signed_in.append((user_id, password))
    return signed_in


async def run_demo(client: Client, n: int, task_queue: str, signer: Signer | None = None) -> None:
    """`signer`: the deployment key the demo's decisions are signed with (`spotcheck up` passes its own)."""
    spot = SpotcheckClient(client, task_queue, signer)
    stamp = datetime.now().strftime("%m%d%H%M%S")
    drivers = []
    for i in range(n):
        channel, story, steps = SCENARIOS[i % len(SCENARIOS)]
        sample_no = f"DEMO-{stamp}-{i + 1:02d}"
        order = demo_order(channel, sample_no)
        await spot.start_sample(order)
        print(f"demo: started {sample_no} ({channel}): {story}", flush=True)
        drivers.append(_drive(spot, sample_no, steps, order["sampled_party"]["credit_code"]))
    await asyncio.gather(*drivers)
    print("demo: every scripted decision sent", flush=True)
