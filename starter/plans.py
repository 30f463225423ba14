"""Typed API for sampling plans (workflows/plan.py): start one, read its progress, amend it, list them, and put
a plan on a Temporal Schedule. `spotcheck plan …` (starter/plan_cli.py) is a thin layer over it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain import visibility as sa
from domain.bounds import error_lines, within
from domain.plan_run import (
    AMENDMENT_SIGNING,
    AmendmentReceipt,
    Every,
    PlanInput,
    PlanProgress,
    ScheduledPlan,
    plan_workflow_id,
    schedule_id,
)
from starter.client import OrderError, Signer
from workflows.plan import PLAN_ID_REUSE, PlanWorkflow, ScheduledPlanWorkflow, plan_attributes

# The first day of each period, at midnight China time (the schedule's time zone).
FIRINGS: dict[Every, list[int]] = {Every.YEAR: [1], Every.HALF: [1, 7], Every.QUARTER: [1, 4, 7, 10],
                                   Every.MONTH: list(range(1, 13))}


class PlanExists(OrderError):
    """A start refused because the plan id was started before (one workflow per plan)."""


def parse_plan(raw: Any) -> PlanInput:
    """A PlanInput from a plan file: a PlanSpec (`{"plan_id": …}`) or a PlanInput (`{"spec": …, "options": …}`);
    OrderError naming each bad field."""
    if not isinstance(raw, dict):
        raise OrderError(["input: a plan must be a JSON object"])
    try:
        return PlanInput.model_validate(raw if "spec" in raw else {"spec": raw})
    except ValidationError as err:
        raise OrderError(within(error_lines(err))) from None


def parse_template(raw: Any, every: Every) -> ScheduledPlan:
    """A schedule's template (a plan file whose plan_id is the prefix; its period is filled per firing),
    checked now by filling it for the current period: a bad template is refused before any firing."""
    if not isinstance(raw, dict):
        raise OrderError(["input: a plan must be a JSON object"])
    spec = raw.get("spec", raw)
    template = {k: v for k, v in spec.items() if k != "period"} if isinstance(spec, dict) else spec
    try:
        scheduled = ScheduledPlan.model_validate({"template": template, "every": every,
                                                  **({"options": raw["options"]} if "options" in raw else {})})
        scheduled.fill(datetime.now(UTC))
    except ValidationError as err:
        raise OrderError(within(error_lines(err))) from None
    return scheduled


class Plans:
    """`signer`: sign every amendment sent (without one they go unsigned: a deployment that requires
    signatures refuses them, and records the refusal)."""

    def __init__(self, client: Client, task_queue: str, signer: Signer | None = None) -> None:
        self.client = client
        self.task_queue = task_queue
        self.signer = signer

    async def start(self, plan: PlanInput) -> WorkflowHandle[Any, Any]:
        try:
            return await self.client.start_workflow(
                PlanWorkflow.NAME, plan, id=plan_workflow_id(plan.spec.plan_id), task_queue=self.task_queue,
                result_type=PlanProgress,
                id_reuse_policy=PLAN_ID_REUSE, id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=plan_attributes(plan), static_summary=f"{plan.spec.name} · {plan.spec.period}")
        except WorkflowAlreadyStartedError:
            raise PlanExists([f"plan_id: plan {plan.spec.plan_id} was already started"]) from None

    def handle(self, plan_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(plan_workflow_id(plan_id))

    async def progress(self, plan_id: str, *, refresh: bool = False) -> PlanProgress:
        """The plan's progress as of its last read of the samples' records; `refresh`: read them now (the
        plan must be running)."""
        if refresh:
            return PlanProgress.model_validate(await self.handle(plan_id).execute_update("refresh", {}))
        result: PlanProgress = await self.handle(plan_id).query("progress", result_type=PlanProgress)
        return result

    async def amend(self, plan_id: str, amendment: dict[str, Any]) -> AmendmentReceipt:
        """Send an amendment (signed for this plan when there is a signer); its receipt says what it did."""
        if self.signer is not None and isinstance(amendment, dict):  # anything else: the plan refuses it, unsigned
            amendment = self.signer.sign(amendment, plan_workflow_id(plan_id), AMENDMENT_SIGNING)
        return AmendmentReceipt.model_validate(await self.handle(plan_id).execute_update("amend", amendment))

    async def list(self, query: str = "", limit: int = 200) -> list[dict[str, Any]]:
        full = f"{sa.PROCESS_KIND.name} = '{sa.PLAN}'" + (f" AND ({query})" if query else "")
        rows = []
        async for wf in self.client.list_workflows(full, limit=limit):
            attrs = wf.typed_search_attributes
            rows.append({"plan_id": attrs.get(sa.PLAN_ID), "workflow_id": wf.id, "stage": attrs.get(sa.STAGE),
                         "region": attrs.get(sa.REGION), "status": wf.status.name if wf.status else None,
                         "started": wf.start_time.isoformat()})
        return rows

    async def schedule(self, name: str, scheduled: ScheduledPlan, *, paused: bool = False) -> ScheduleHandle:
        """A schedule `plan-schedule-<name>` firing at the start of each period (China time); each firing runs
        ScheduledPlanWorkflow, which starts that period's plan once. Firings never overlap and a missed one
        (the server was down) is caught up within a day."""
        months = FIRINGS[scheduled.every]
        return await self.client.create_schedule(
            schedule_id(name),
            Schedule(
                action=ScheduleActionStartWorkflow(
                    ScheduledPlanWorkflow.__name__, scheduled, id=schedule_id(name), task_queue=self.task_queue),
                spec=ScheduleSpec(
                    calendars=[ScheduleCalendarSpec(month=[ScheduleRange(m) for m in months],
                                                    day_of_month=[ScheduleRange(1)], hour=[ScheduleRange(0)],
                                                    minute=[ScheduleRange(0)], second=[ScheduleRange(0)])],
                    time_zone_name="Asia/Shanghai",
                ),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)),
            ),
        )


__all__ = ["PlanExists", "Plans", "parse_plan", "parse_template"]
