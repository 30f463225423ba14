"""In-memory activities for workflow tests that need no database, registered under the real activities'
names as Temporal's samples do (`@activity.defn(name="...")` fakes on the test worker).

`mock_activities(store)` gives one callable per name `activities.registry.all_activities` registers:

- the pure ones real (`compute_deadline`, `rectification_terms` only read the rule pack,
  `deployment_policy` the worker's settings);
- the product case's real (`product_case_report_fail` signal-with-starts the case through the activity's
  own client), with its `product_cases` row kept in the store instead of PostgreSQL;
- every other a fake below, answering what the real one answers (a NoticeRecord from the real jinja2
  template, a HandoverReceipt `outbox:<id>`, the registers' and the fail count's values).

A real activity without a fake, a fake without a real activity, or a fake whose argument or result type
differs from the real one's fails at once: a new or changed activity cannot be forgotten here.

The `Store` is what the tests read instead of the tables:

- `calls[name]`: the argument of every call of the activity (every attempt, in order; recorded on the
  worker by `RecordCalls`, so the real ones above are recorded too);
- `rows[table][key]`: the rows the real activity would write, keyed as the table is (one key column: its
  value, several: a tuple), with the real idempotency: `insert_once` keeps the first row of a key (one
  notice per workflow id and step, one audit row per workflow id, request id and accepted), `upsert` and
  `update` never let an older write overwrite a newer one. Every row has an `id`, in order of writing;
- `find(table, **key)`, and `notices_for`, `audit_trail`, `outbox_for`: the rows of one workflow as the
  read helpers of activities/records.py give them.
"""

from __future__ import annotations

import inspect
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import asyncpg
import jinja2
from pydantic import BaseModel
from temporalio import activity
from temporalio.activity import _Definition
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities.credit_records import look_back_start
from activities.db import write_time
from activities.holiday_files import current_calendar
from activities.notices import UnknownTemplate, render
from activities.product_case import ProductCaseActivities
from activities.records import OUTBOX_KEY, opened_wait
from activities.registers import _parties, _producer, bulletin_period, shop_key
from activities.registry import all_activities
from activities.reports import sample_fact
from domain import records as rec
from domain.models import TaskType
from domain.outbox import DispatchPlan, DispatchReport
from domain.plan_run import (
    AmendmentOutcome,
    AmendmentRecord,
    BatchResult,
    DrawCounts,
    PlanClosing,
    PlanInput,
    PlanProgress,
    StartBatch,
)
from domain.product_case import ProductKey
from domain.reporting import ReportScope, build_report
from domain.windows import CHINA

__all__ = ["PURE", "RecordCalls", "Store", "StoreProductCases", "mock_activities"]

# No I/O but reading the rule pack or the worker's settings: run as they are.
PURE = frozenset({"compute_deadline", "deployment_policy", "rectification_terms"})

WF = ("workflow_id",)
NOTICE_KEY = ("workflow_id", "step_id")
DECISION_KEY = ("workflow_id", "request_id", "accepted")


def _key(values: Mapping[str, Any], columns: Sequence[str]) -> Any:
    return values[columns[0]] if len(columns) == 1 else tuple(values[c] for c in columns)


def _newer(stored: Any, written: Any, strict: bool = False) -> bool:
    """The stored row is newer than the write (the guard of activities/db.py); a missing time is oldest."""
    if stored is None:
        return False
    return bool(stored >= written if strict else stored > written)


@dataclass
class Store:
    """What the mocked activities were asked (`calls`) and what they wrote (`rows`)."""

    calls: defaultdict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    rows: defaultdict[str, dict[Any, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    # --- writes, as activities/db.py makes them ---------------------------------------------------

    def insert_once(self, table: str, row: Mapping[str, Any], *, key: Sequence[str]) -> bool:
        """Append `row` unless a row with its key is there; True when written."""
        k = _key(row, key)
        if k in self.rows[table]:
            return False
        self.rows[table][k] = {"id": next(self._ids), **row}
        return True

    def upsert(self, table: str, row: Mapping[str, Any], *, key: Sequence[str], keep: Sequence[str] = (),
               guard: str = "updated_at", strict: bool = False) -> bool:
        """Insert `row`, or set its columns (but the key and `keep`) unless the stored row is newer."""
        stored = self.rows[table].get(_key(row, key))
        if stored is None:
            return self.insert_once(table, row, key=key)
        if _newer(stored.get(guard), row[guard], strict):
            return False
        stored.update({c: v for c, v in row.items() if c not in key and c not in keep})
        return True

    def update(self, table: str, key: Mapping[str, Any], changes: Mapping[str, Any],
               guard: str = "updated_at") -> bool:
        """Set the columns of `changes` of the row with `key`, unless it is newer or not there."""
        stored = self.rows[table].get(_key(key, list(key)))
        if stored is None or _newer(stored.get(guard), changes[guard]):
            return False
        stored.update(changes)
        return True

    # --- reads ------------------------------------------------------------------------------------

    def find(self, table: str, **key: Any) -> dict[str, Any] | None:
        """The row of `table` with this key (its columns by name, in the table's key order)."""
        return self.rows[table].get(_key(key, list(key)))

    def _of(self, table: str, workflow_id: str, order: str) -> list[dict[str, Any]]:
        rows = [r for r in self.rows[table].values() if r["workflow_id"] == workflow_id]
        return sorted(rows, key=lambda r: (r[order], r["id"]))

    def notices_for(self, workflow_id: str) -> list[dict[str, Any]]:
        """The notices issued for a workflow (template, title, body, sha256, …), in order of issue."""
        return self._of("notices", workflow_id, "issued_at")

    def audit_trail(self, workflow_id: str) -> list[dict[str, Any]]:
        """Every decision received for a workflow, accepted and rejected, in order of arrival."""
        return self._of("decisions", workflow_id, "received_at")

    def outbox_for(self, workflow_id: str) -> list[dict[str, Any]]:
        """The outbox messages and hand-overs queued for a workflow, in order of creation."""
        return self._of("outbox", workflow_id, "created_at")


def _stamped(model: BaseModel) -> dict[str, Any]:
    """The row of a model whose `updated_at` may be left to the activity (activities/db.py write_time)."""
    row = model.model_dump()
    return row | {"updated_at": write_time(row.get("updated_at"))}


class FakeActivities:
    """The activities with I/O, in memory: each writes what the real one writes (the columns the tests read)
    to the store, keyed as the real table is, and returns what the real one returns."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- activities/records.py, activities/adapters.py, activities/notices.py ---------------------

    @activity.defn(name="project_sample")
    async def project_sample(self, p: rec.SampleProjection) -> None:
        row = p.model_dump()
        if p.order is None:  # as the real one: the order came with the first projection and stays
            self.store.update("samples", {"sample_no": p.sample_no}, {k: v for k, v in row.items() if k != "order"},
                              guard="seq")
            return
        self.store.upsert("samples", row, key=["sample_no"], guard="seq", strict=True)

    @activity.defn(name="open_wait")
    async def open_wait(self, w: rec.WaitOpening) -> rec.WaitOpened:
        return await opened_wait(w, self.project_sample, self.audit_decision)  # the deadline and the policy are pure: real

    @activity.defn(name="record_decision")
    async def record_decision(self, r: rec.DecisionRecord) -> bool:
        return (await self.audit_decision(r)).written

    @activity.defn(name="audit_decision")
    async def audit_decision(self, r: rec.DecisionRecord) -> rec.AuditedDecision:
        row = r.model_dump() | {"actor_id": r.actor.get("id"), "actor_role": r.actor.get("role")}
        written = self.store.insert_once("decisions", row, key=DECISION_KEY)
        return rec.AuditedDecision(request_id=r.request_id, accepted=r.accepted, written=written)

    @activity.defn(name="queue_outbox")
    async def queue_outbox(self, m: rec.OutboxMessage) -> bool:
        return self.store.insert_once("outbox", m.model_dump(), key=OUTBOX_KEY)

    @activity.defn(name="hand_over")
    async def hand_over(self, h: rec.Handover) -> rec.HandoverReceipt:
        self.store.insert_once("outbox", {
            "workflow_id": h.workflow_id, "step_id": h.step_id, "channel": h.system, "recipient": h.recipient,
            "subject": h.subject, "payload": {"action": h.action, **h.payload}, "created_at": h.created_at,
        }, key=OUTBOX_KEY)
        row = self.store.find("outbox", workflow_id=h.workflow_id, step_id=h.step_id)
        assert row is not None
        return rec.HandoverReceipt(system=h.system, reference=f"outbox:{row['id']}", queued=True)

    @activity.defn(name="dispatch_outbox")
    async def dispatch_outbox(self, plan: DispatchPlan) -> DispatchReport:
        """Nothing leaves the in-memory store: the outbox's delivery is tested against real receivers
        (tests/test_outbox_delivery.py)."""
        return DispatchReport()

    @activity.defn(name="render_notice")
    async def render_notice(self, req: rec.NoticeRequest) -> rec.NoticeRecord:
        """The real template rendered; a notice that cannot be rendered fails without retry, as the real."""
        try:
            title, body, digest = render(req.template, req.context)
        except (UnknownTemplate, jinja2.TemplateError, ValueError, TypeError) as err:
            raise ApplicationError(f"notice template {req.template!r}: {err}", type=type(err).__name__,
                                   non_retryable=True) from err
        self.store.insert_once("notices", {
            "workflow_id": req.workflow_id, "step_id": req.step_id, "template": req.template, "title": title,
            "body": body, "sha256": digest, "issued_at": req.issued_at,
        }, key=NOTICE_KEY)
        row = self.store.find("notices", workflow_id=req.workflow_id, step_id=req.step_id)
        assert row is not None
        return rec.NoticeRecord(notice_id=row["id"], workflow_id=req.workflow_id, step_id=req.step_id,
                                template=row["template"], title=row["title"], sha256=row["sha256"])

    # --- activities/registers.py ------------------------------------------------------------------

    @activity.defn(name="register_enterprise_fail")
    async def register_enterprise_fail(self, req: rec.RegisterRequest) -> list[str]:
        o = req.order
        for party, role in _parties(o):
            self.store.insert_once("enterprise_fails", {
                "sample_no": o.sample_no, "credit_code": party.credit_code, "role": role, "region": o.region,
                "failed_on": req.on,
            }, key=["sample_no", "credit_code"])
        return [p.credit_code for p, _ in _parties(o)]

    @activity.defn(name="register_post_licence")
    async def register_post_licence(self, req: rec.RegisterRequest) -> bool:
        o = req.order
        if not o.product.production_licence:
            return False
        self.store.insert_once("post_licence_list", {
            "sample_no": o.sample_no, "credit_code": _producer(o).credit_code,
            "licence_no": o.product.production_licence,
        }, key=["sample_no"])
        return True

    @activity.defn(name="register_shop_fail")
    async def register_shop_fail(self, req: rec.RegisterRequest) -> bool:
        """The shop's fail; with a fail in a neighbouring calendar year the shop goes on the key list."""
        shop = shop_key(req.order)
        if shop is None:
            return False
        year = req.on.year
        self.store.insert_once("shop_fails", {
            "sample_no": req.order.sample_no, "platform": shop[0], "shop_key": shop[1], "year": year,
            "failed_on": req.on,
        }, key=["sample_no"])
        neighbours = {r["year"] for r in self.store.rows["shop_fails"].values()
                      if (r["platform"], r["shop_key"]) == shop and abs(r["year"] - year) == 1}
        if neighbours:
            self.store.insert_once("key_list_shops", {"platform": shop[0], "shop_key": shop[1], "years": []},
                                   key=["platform", "shop_key"])
            listed = self.store.find("key_list_shops", platform=shop[0], shop_key=shop[1])
            assert listed is not None
            listed["years"] = sorted({*listed["years"], year, *neighbours})
        return self.store.find("key_list_shops", platform=shop[0], shop_key=shop[1]) is not None

    @activity.defn(name="register_bulletin")
    async def register_bulletin(self, req: rec.RegisterRequest) -> str:
        period = bulletin_period(req.on)
        self.store.insert_once("results_bulletin", {
            "sample_no": req.order.sample_no, "workflow_id": req.workflow_id, "period": period,
            "verdict": req.verdict,
        }, key=["sample_no"])
        return period

    @activity.defn(name="register_linked_sampling")
    async def register_linked_sampling(self, req: rec.RegisterRequest) -> list[str]:
        o = req.order
        if o.task_type is not TaskType.EVALUATIVE or req.verdict == "pass":
            return []
        for party, _ in _parties(o):
            self.store.insert_once("sampling_targets", {
                "credit_code": party.credit_code, "source": "evaluative_linked", "sample_no": o.sample_no,
            }, key=["credit_code", "source", "sample_no"])
        return [p.credit_code for p, _ in _parties(o)]

    # --- the branches' records (activities/<branch>_records.py) -----------------------------------

    def _change(self, table: str, workflow_id: str, at: datetime | None, **columns: Any) -> None:
        """A later change to a branch's row: the columns named, at the write's time (db.py update_row)."""
        self.store.update(table, {"workflow_id": workflow_id}, columns | {"updated_at": write_time(at)})

    @activity.defn(name="credit_count_fails")
    async def credit_count_fails(self, req: rec.CreditFailCount) -> int:
        """This sample's fail and the enterprise's other fails within the look-back period."""
        since = look_back_start(req.as_of, req.months)
        return 1 + sum(1 for r in self.store.rows["enterprise_fails"].values()
                       if r["credit_code"] == req.credit_code and r["failed_on"] >= since
                       and r["sample_no"] != req.sample_no)

    @activity.defn(name="credit_record_listing")
    async def credit_record_listing(self, listing: rec.CreditListing) -> None:
        self.store.insert_once("credit_listings", _stamped(listing), key=WF)

    @activity.defn(name="credit_update_listing")
    async def credit_update_listing(self, change: rec.CreditListingChange) -> None:
        named = change.model_dump(exclude={"workflow_id", "at"}, exclude_none=True)
        if change.repair_applied_at is not None:  # a new application clears the previous reason
            named["repair_reason"] = change.repair_reason
        # the serious-dishonesty columns carry their own write time, as in the real table
        guard = "serious_updated_at" if all(k.startswith("serious_") for k in named) else "updated_at"
        self.store.update("credit_listings", {"workflow_id": change.workflow_id}, named | {guard: change.at},
                          guard=guard)

    @activity.defn(name="enforcement_record_case")
    async def enforcement_record_case(self, change: rec.EnforcementCaseChange) -> None:
        named = change.model_dump(exclude={"at"}, exclude_none=True)
        self.store.upsert("enforcement_cases", named | {"updated_at": change.at}, key=WF)

    @activity.defn(name="rectification_save")
    async def rectification_save(self, row: rec.RectificationRow) -> None:
        self.store.upsert("rectifications", row.model_dump(), key=WF, keep=["sample_no", "ordered_at"])

    @activity.defn(name="record_re_inspection")
    async def record_re_inspection(self, row: rec.ReInspectionRow) -> bool:
        return self.store.insert_once("re_inspections", row.model_dump(), key=("workflow_id", "round"))

    @activity.defn(name="record_result_handover")
    async def record_result_handover(self, record: rec.ResultHandoverRecord) -> bool:
        return self.store.insert_once("result_handovers", record.model_dump(), key=("workflow_id", "step_id"))

    @activity.defn(name="recall_save")
    async def recall_save(self, row: rec.RecallRow) -> None:
        self.store.upsert("recalls", row.model_dump(), key=WF, keep=["sample_no"])

    @activity.defn(name="certification_save")
    async def certification_save(self, row: rec.CertificateActionRow) -> None:
        self.store.upsert("certificate_actions", _stamped(row), key=WF, keep=["sample_no"])

    @activity.defn(name="platform_record_request")
    async def platform_record_request(self, r: rec.PlatformRequest) -> None:
        self.store.insert_once("platform_actions", _stamped(r), key=WF)

    @activity.defn(name="platform_record_closing")
    async def platform_record_closing(self, r: rec.PlatformClosing) -> None:
        self._change("platform_actions", r.workflow_id, r.updated_at, confirmation=r.confirmation,
                     confirmation_reason=r.reason, confirmed_at=r.confirmed_at, closed_outcome=r.closed_outcome)

    @activity.defn(name="lead_record")
    async def lead_record(self, r: rec.LeadEntry) -> None:
        self.store.insert_once("leads", _stamped(r), key=WF)

    # --- activities/reports.py ---------------------------------------------------------------------

    @activity.defn(name="plan_report_summary")
    async def plan_report_summary(self, plan_id: str) -> dict[str, Any]:
        """The real summary, of the plan's samples as projected into the store (their verdicts; no lab
        decisions, deadlines or outcomes are kept here)."""
        today = datetime.now(CHINA).date()
        rows = [{"sample_no": r["sample_no"], "workflow_id": r["workflow_id"], "verdict": r["verdict"],
                 "o": r["order"], "day": today, "bulletin": None}
                for r in self.store.rows["samples"].values() if (r.get("order") or {}).get("plan_id") == plan_id]
        cal = current_calendar()
        facts = [sample_fact(row, [], {}, set(), {}, cal) for row in rows]
        return build_report(ReportScope(plan_id=plan_id), facts, [], today).summary()

    @activity.defn(name="lead_record_referral")
    async def lead_record_referral(self, r: rec.LeadReferral) -> None:
        self._change("leads", r.workflow_id, r.updated_at, handover_reference=r.handover_reference)

    @activity.defn(name="lead_record_outcome")
    async def lead_record_outcome(self, r: rec.LeadClosing) -> None:
        self._change("leads", r.workflow_id, r.updated_at, outcome=r.outcome, outcome_reason=r.reason,
                     closed_at=r.closed_at)


class NoPlans:
    """A plan's activities store its draw and read the samples' records in SQL: they are tested on PostgreSQL
    (tests/test_plans.py). Here each refuses, non-retryable, so a mocked test that starts a plan fails at once."""

    @staticmethod
    def _refuse() -> ApplicationError:
        return ApplicationError("plans need PostgreSQL: run them with the real activities", non_retryable=True)

    @activity.defn(name="plan_draw")
    async def plan_draw(self, plan: PlanInput) -> DrawCounts:
        raise self._refuse()

    @activity.defn(name="plan_start_batch")
    async def plan_start_batch(self, batch: StartBatch) -> BatchResult:
        raise self._refuse()

    @activity.defn(name="plan_progress")
    async def plan_progress(self, plan_id: str) -> PlanProgress:
        raise self._refuse()

    @activity.defn(name="plan_amend")
    async def plan_amend(self, record: AmendmentRecord) -> AmendmentOutcome:
        raise self._refuse()

    @activity.defn(name="plan_close")
    async def plan_close(self, closing: PlanClosing) -> None:
        raise self._refuse()


class StoreProductCases(ProductCaseActivities):
    """The real product-case activities (the report signal-with-starts the case by the activity's client)
    with the `product_cases` row in the store: its one write, `_write`, made as the SQL makes it."""

    def __init__(self, store: Store) -> None:
        super().__init__(NO_DATABASE)
        self.store = store

    async def _write(self, key: ProductKey, fails: dict[str, dict[str, Any]], merged: str | None,
                     merged_at: datetime | None, closed_at: datetime | None) -> str | None:
        self.store.insert_once("product_cases", {
            "case_workflow_id": key.case_id, "credit_code": key.credit_code, "brand": key.brand,
            "model": key.model, "product_code": key.product_code, "fails": {}, "merged_case_workflow_id": None,
            "merged_at": None, "closed_at": None,
        }, key=["case_workflow_id"])
        row = self.store.find("product_cases", case_workflow_id=key.case_id)
        assert row is not None
        for sample_no, patch in fails.items():  # each fail's object merged with what is there
            row["fails"][sample_no] = {**row["fails"].get(sample_no, {}), **patch}
        if merged is not None and merged != row["merged_case_workflow_id"]:
            row["merged_case_workflow_id"], row["merged_at"] = merged, merged_at
        row["closed_at"] = closed_at
        return cast(str | None, row["merged_case_workflow_id"])


class _NoDatabase:
    """Stands in for the pool: the real activities are built only for their names and types."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a mocked activity used the database (pool.{name})")


NO_DATABASE = cast(asyncpg.Pool, _NoDatabase())


def _defn(fn: Callable[..., Any]) -> _Definition:
    return _Definition.must_from_callable(fn)


def _by_name(fns: Iterable[Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    return {str(_defn(fn).name): fn for fn in fns}


def _activity_methods(instance: object) -> list[Callable[..., Any]]:
    return [m for _, m in inspect.getmembers(instance, inspect.ismethod) if _Definition.from_callable(m)]


def mock_activities(store: Store) -> list[Callable[..., Any]]:
    """One activity per name the worker registers; refused when a real activity has no fake (or a fake no
    real activity, or another argument or result type)."""
    real = _by_name(all_activities(NO_DATABASE))
    mocks = _by_name([*_activity_methods(FakeActivities(store)), *_activity_methods(StoreProductCases(store)),
                      *_activity_methods(NoPlans())])
    mocks.update({name: real[name] for name in PURE if name in real})
    if real.keys() != mocks.keys():
        raise RuntimeError(f"tests/mock_activities.py: no fake for {sorted(real.keys() - mocks.keys())}; "
                           f"a fake for no activity: {sorted(mocks.keys() - real.keys())}")
    for name, fn in mocks.items():
        want, got = _defn(real[name]), _defn(fn)
        if (want.arg_types, want.ret_type) != (got.arg_types, got.ret_type):
            raise RuntimeError(f"tests/mock_activities.py: the fake {name} takes {got.arg_types} -> {got.ret_type}, "
                               f"the activity {want.arg_types} -> {want.ret_type}")
    return [mocks[name] for name in sorted(mocks)]


class RecordCalls(Interceptor):
    """A worker interceptor: the argument of every activity call goes to `store.calls[name]` first."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Recorder(next, self.store)


class _Recorder(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, store: Store) -> None:
        super().__init__(next)
        self.store = store

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        args = list(input.args)
        self.store.calls[activity.info().activity_type].append(args[0] if len(args) == 1 else tuple(args))
        return await self.next.execute_activity(input)
