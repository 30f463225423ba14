"""PlanWorkflow: one sampling plan (抽查计划, `plan-<plan_id>`) from its draw to its summary.

The draw is stored in PostgreSQL by an activity (10,000 orders are far larger than one payload); the workflow
keeps only counts. It starts its samples in batches (`batch_size` per activity, at most
`start_rate_per_second`), refreshes its progress from the samples' records every `progress_every_seconds`
(and on demand, update `refresh`), takes amendments (update `amend`) between batches, and closes with a
summary once every sample is final (pass, fail, refused or cancelled) or the plan's period has ended. A
special campaign then waits its follow-up delay and starts the follow-up plan of its failed enterprises.
Stages (`Stage` with `ProcessKind = 'plan'`): drawing → starting ⇄ running → closed → follow_up_started.

ScheduledPlanWorkflow is what a plan schedule fires: it fills the plan's template with the period the
firing falls in and starts that plan (`plan-<prefix>-<period>`) once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RawValue,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from activities.plans import PlanActivities
    from activities.policy import deployment_policy
    from domain import signing
    from domain import visibility as sa
    from domain.bounds import error_lines, within
    from domain.decisions import Actor
    from domain.intake import single_input, summarise
    from domain.plan_run import (
        AMENDMENT_SIGNING,
        KEEP_RECEIPTS,
        Amendment,
        AmendmentOutcome,
        AmendmentReceipt,
        AmendmentRecord,
        PlanClosing,
        PlanInput,
        PlanProgress,
        PlanStage,
        PlanState,
        ScheduledPlan,
        StartBatch,
        follow_up_spec,
        period_end,
        plan_workflow_id,
    )
    from domain.plans import PlanSpec
    from workflows.calls import RETRY
    from workflows.visibility import publish, shanghai

DRAW_TIMEOUT = timedelta(minutes=10)  # a draw of 10,000 from the pool, stored in one transaction
BATCH_TIMEOUT = timedelta(minutes=5)
HEARTBEAT = timedelta(seconds=30)  # a start batch heartbeats after each start
STEP_TIMEOUT = timedelta(seconds=60)
POLICY_TIMEOUT = timedelta(seconds=10)
PAUSE_AFTER_FAILURE = timedelta(minutes=1)  # a batch that failed for good is tried again after this
START_CONCURRENCY = 64  # starts in flight at once within one batch
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
CLOSED = "plan: closed; amend a follow-up plan instead"
# One run per plan id; a plan that failed (its draw failed for good) may be started again: its stored draw and
# started samples are found, not repeated.
PLAN_ID_REUSE = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY


def _validated(model: type[BaseModel], raw: Any, what: str) -> Any:
    """A start argument as a model, or a non-retryable failure naming each bad field (never the input):
    raised from `__init__` it fails the run instead of retrying its task for ever (see workflows/sample.py)."""
    try:
        if isinstance(raw, RawValue):
            raw = workflow.payload_converter().from_payload(raw.payload)
        if isinstance(raw, model):
            return raw
        if not isinstance(raw, dict):
            raise ApplicationError(f"{what}: must be a JSON object", type="InvalidPlan", non_retryable=True)
        return model.model_validate(raw)
    except ValidationError as err:
        raise ApplicationError(f"{what} refused: " + "; ".join(within(error_lines(err))), type="InvalidPlan",
                               non_retryable=True) from None
    except ApplicationError:
        raise
    except Exception as err:  # a payload no converter can read
        raise ApplicationError(f"{what}: the payload does not decode ({type(err).__name__})", type="InvalidPlan",
                               non_retryable=True) from None


def plan_attributes(plan: PlanInput) -> TypedSearchAttributes:
    """A plan's search attributes at its start: `ProcessKind = 'plan'`, its id, its organiser's region."""
    return TypedSearchAttributes([
        *sa.identity_attributes(sa.PLAN, plan.spec.region), SearchAttributePair(sa.PLAN_ID, plan.spec.plan_id),
        SearchAttributePair(sa.REGION, plan.spec.region), SearchAttributePair(sa.STAGE, PlanStage.DRAWING.value),
    ])


@workflow.defn(name="PlanWorkflow")
class PlanWorkflow:
    NAME = "PlanWorkflow"

    @workflow.init
    def __init__(self, plan: RawValue, carried: Any = None) -> None:
        self.s: PlanState = (_validated(PlanState, carried, "carried state") if carried is not None
                             else PlanState(input=_validated(PlanInput, plan, "plan")))
        if workflow.info().workflow_id != plan_workflow_id(self.spec.plan_id):
            raise ApplicationError(f"workflow id: a plan's workflow id must be {plan_workflow_id(self.spec.plan_id)}",
                                   type="InvalidPlan", non_retryable=True)
        self.queue: list[AmendmentRecord] = []
        self.answered: dict[str, AmendmentReceipt] = {}  # this run's receipts, for the handlers that wait
        self.next_batch_at = workflow.now()
        self.refreshed_at: datetime | None = None  # none yet in this run: the loop reads the progress first
        self.refreshes = 0

    @property
    def spec(self) -> PlanSpec:
        return self.s.input.spec

    # --- what people see ---------------------------------------------------------------------------

    @workflow.query(name="progress")
    def progress(self, *args: Any) -> PlanProgress:
        """Counts from the samples' records as of `as_of`; `start_requested` is live."""
        p = self.s.progress or PlanProgress(plan_id=self.spec.plan_id)
        return p.model_copy(update={"stage": self.stage.value, "start_requested": self.s.start_requested,
                                    "end_at": self.s.end_at})

    @property
    def stage(self) -> PlanStage:
        if self.s.follow_up_started:
            return PlanStage.FOLLOW_UP_STARTED
        if self.s.closed_at is not None:
            return PlanStage.CLOSED
        if self.s.drawn is None:
            return PlanStage.DRAWING
        return PlanStage.STARTING if self.s.next_seq < self.s.drawn.next_seq else PlanStage.RUNNING

    def _publish(self) -> None:
        p, spec = self.progress(), self.spec
        t = p.totals
        lines = [f"**{spec.plan_id}** · {spec.name} · {spec.period} · {spec.level.value} {spec.region} · "
                 f"{spec.task_type.value} · stage **{p.stage}**"]
        if self.s.drawn is not None:
            lines.append(f"- drawn {self.s.drawn.drawn} ({self.s.drawn.excluded} excluded); start requested for "
                         f"{self.s.start_requested}")
        if p.as_of is not None:
            lines.append(f"- as of {shanghai(p.as_of)}: started {t.started}, sampling {t.sampling}, in testing "
                         f"{t.in_testing}, passed {t.passed}, failed {t.failed} (+{t.provisional_fail} open to "
                         f"objection), refused {t.refused}, overdue {t.overdue}, cancelled {t.cancelled}")
        if self.s.end_at is not None and self.s.closed_at is None:
            lines.append(f"- closes at the latest at the plan's end: {shanghai(self.s.end_at)}")
        if self.s.follow_up_at is not None:
            lines.append(f"- follow-up plan {follow_up_spec(spec).plan_id} of the failed enterprises: "
                         f"{shanghai(self.s.follow_up_at)}")
        publish(self.stage.value, "\n".join(lines), extra=[sa.PLAN_ID.value_set(spec.plan_id)],
                identity=sa.identity_attributes(sa.PLAN, spec.region), only_changed=True, monitored=True)

    # --- amendments and refreshes ------------------------------------------------------------------

    @workflow.update(name="amend")
    async def amend(self, *args: Any) -> dict[str, Any]:
        """Add or cancel samples (domain/plan_run.Amendment). Any payload is taken: a bad one is refused with
        the field named and recorded (a summary of it, never its content); a repeated request id gets the first
        receipt. Where the deployment requires signatures, an amendment must be signed for this plan
        (domain/signing.py, `AMENDMENT_SIGNING`): one that is not is refused with the reason and recorded.
        Accepted amendments are applied between two batches, in order; the answer waits for that."""
        received = workflow.now()
        # The policy is read at the start: an amendment that arrives with the start waits for it.
        await workflow.wait_condition(lambda: self.s.policy is not None)
        payload, problem = single_input(args)
        amendment: Amendment | None = None
        key_id: str | None = None
        if problem is None:
            try:
                amendment = Amendment.model_validate(payload)
            except ValidationError as err:
                problem = "; ".join(within(error_lines(err)))
        if amendment is not None:
            problem, key_id = self._proof(amendment)
            if problem is not None:
                amendment = None
        request_id = amendment.request_id if amendment else _request_id(payload)
        # A repeat gets the first receipt, but only from a proven sender where proof is required.
        if request_id in self.s.receipts and (amendment is not None or not self._signatures_required):
            return self.s.receipts[request_id].model_dump(mode="json")
        if amendment is not None and self.s.closed_at is not None:
            amendment, problem = None, CLOSED
        if amendment is None:
            record = AmendmentRecord(
                plan_id=self.spec.plan_id, request_id=request_id, action=_token(payload, "action"), accepted=False,
                problem=problem, sender=_sender(payload), payload=summarise(args).model_dump(), received_at=received)
            # Answered here, not through `answered`: a refusal never becomes the answer of a queued request.
            return (await self._apply(record, answer=False)).model_dump(mode="json")
        if all(r.request_id != request_id for r in self.queue):
            self.answered.pop(request_id, None)  # an earlier refusal of this request id is not its answer
            self.queue.append(AmendmentRecord(
                plan_id=self.spec.plan_id, request_id=request_id, action=amendment.action, accepted=True,
                amendment=amendment, sender=amendment.sender.model_dump(mode="json", exclude_none=True),
                key_id=key_id, payload=amendment.model_dump(mode="json"), received_at=received))
        await workflow.wait_condition(lambda: request_id in self.answered)
        return self.answered[request_id].model_dump(mode="json")

    @property
    def _signatures_required(self) -> bool:
        return self.s.policy is not None and self.s.policy.require_signatures

    def _proof(self, amendment: Amendment) -> tuple[str | None, str | None]:
        """(why the sender is not proven, where the deployment requires proof; the key that proved it). A
        signature is checked even where none is required, so that a valid one names its key on the record."""
        if amendment.signature is None and not self._signatures_required:
            return None, None
        max_age = self.s.policy.signature_max_age if self.s.policy is not None else signing.DEFAULT_MAX_AGE
        problem = signing.signature_problem(amendment, workflow.info().workflow_id, signing.keyring(), workflow.now(),
                                            max_age, AMENDMENT_SIGNING)
        if problem is None and amendment.signature is not None:
            return None, amendment.signature.key_id
        return (problem if self._signatures_required else None), None

    @workflow.update(name="refresh")
    async def refresh(self, *args: Any) -> dict[str, Any]:
        """Read the samples' records now; answers the progress as of then."""
        await self._refresh()
        return self.progress().model_dump(mode="json")

    async def _apply(self, record: AmendmentRecord, *, answer: bool = True) -> AmendmentReceipt:
        """Apply and record one amendment; its receipt says what it did (or that it could not be written).
        Only an accepted one is remembered for repeats: a refused request may be sent again, corrected.
        `answer`: the receipt is what a waiting handler of this request id gets (a queued one)."""
        try:
            outcome = await workflow.execute_activity_method(
                PlanActivities.plan_amend, record, start_to_close_timeout=DRAW_TIMEOUT, retry_policy=RETRY,
                summary=f"{'Apply' if record.accepted else 'Record the refused'} amendment {record.request_id} "
                        f"({record.action}) of plan {self.spec.plan_id}")
        except ActivityError:
            workflow.logger.warning("plan %s: amendment %s failed for good", self.spec.plan_id, record.request_id)
            record = record.model_copy(update={"accepted": False, "problem": "not applied: it could not be "
                                               "recorded; send it again with a new request id"})
            outcome = AmendmentOutcome()
        if outcome.next_seq is not None and self.s.drawn is not None:
            self.s.drawn.next_seq = max(self.s.drawn.next_seq, outcome.next_seq)
            self.s.drawn.drawn += outcome.added
        receipt = AmendmentReceipt(request_id=record.request_id, accepted=record.accepted, problem=record.problem,
                                   outcome=outcome if record.accepted else None, recorded_at=workflow.now())
        if receipt.accepted:
            self.s.receipts = dict(list({**self.s.receipts, record.request_id: receipt}.items())[-KEEP_RECEIPTS:])
        if answer:
            self.answered[record.request_id] = receipt
        return receipt

    async def _take_amendments(self) -> None:
        changed = bool(self.queue)
        while self.queue:
            await self._apply(self.queue[0])
            self.queue.pop(0)
        if changed:
            await self._refresh()

    async def _refuse_queued(self) -> None:
        """Amendments that arrived while the plan was closing: refused and recorded, so no caller waits."""
        while self.queue:
            await self._apply(self.queue[0].model_copy(update={"accepted": False, "problem": CLOSED}))
            self.queue.pop(0)

    async def _refresh(self) -> None:
        self.refreshed_at = workflow.now()
        self.s.progress = await workflow.execute_activity_method(
            PlanActivities.plan_progress, self.spec.plan_id, start_to_close_timeout=STEP_TIMEOUT, retry_policy=RETRY,
            summary=f"Read the progress of plan {self.spec.plan_id} from the samples' records")
        self.refreshes += 1
        self._publish()

    # --- the plan ----------------------------------------------------------------------------------

    @workflow.run
    async def run(self, plan: RawValue, carried: Any = None) -> PlanProgress:
        s = self.s
        if s.policy is None:
            # Recorded in the plan's history and carried across runs: replay never depends on today's workers.
            s.policy = await workflow.execute_local_activity(
                deployment_policy, start_to_close_timeout=POLICY_TIMEOUT,
                summary="Read the deployment's policy (signatures)")
        if s.drawn is None:
            self._publish()
            s.drawn = await workflow.execute_activity_method(
                PlanActivities.plan_draw, s.input, start_to_close_timeout=DRAW_TIMEOUT, retry_policy=RETRY,
                summary=f"Draw plan {self.spec.plan_id} and store its samples")
            s.end_at = self._end()
            await self._refresh()
        while s.closed_at is None:
            assert s.drawn is not None
            await self._take_amendments()
            if self._history_long():
                await self._continue_as_new()
            if workflow.now() >= self._next_refresh():
                await self._refresh()
            if s.next_seq < s.drawn.next_seq:
                if workflow.now() < self.next_batch_at:
                    await self._wait_until(self.next_batch_at)
                else:
                    await self._start_batch()
                continue
            if self._finished():
                await self._close()
                await self._refuse_queued()
                break
            await self._wait_until(min(t for t in (self._next_refresh(), s.end_at) if t is not None))
        if s.follow_up_at is not None and not s.follow_up_started:
            await self._follow_up()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.progress()

    def _end(self) -> datetime | None:
        """The plan's end on its clock: its period's end, compressed by its time scale; none when the period
        had ended before the plan started (it then closes once its samples are final)."""
        now, end = workflow.now(), period_end(self.spec.period)
        return now + (end - now) / self.spec.time_scale if end > now else None

    async def _start_batch(self) -> None:
        s, spec = self.s, self.spec
        assert s.drawn is not None
        batch = StartBatch(plan_id=spec.plan_id, from_seq=s.next_seq,
                           to_seq=min(s.next_seq + spec.batch_size, s.drawn.next_seq), concurrency=START_CONCURRENCY)
        began = workflow.now()
        try:
            result = await workflow.execute_activity_method(
                PlanActivities.plan_start_batch, batch, start_to_close_timeout=BATCH_TIMEOUT, retry_policy=RETRY,
                heartbeat_timeout=HEARTBEAT,
                summary=f"Start samples {batch.from_seq}–{batch.to_seq - 1} of plan {spec.plan_id}")
        except ActivityError:
            workflow.logger.warning("plan %s: a start batch failed for good; trying again after a pause", spec.plan_id)
            self.next_batch_at = workflow.now() + PAUSE_AFTER_FAILURE
            return
        s.next_seq = batch.to_seq
        s.start_requested += result.started + result.already
        # The rate bounds the starts: the next batch begins no sooner than this batch's share of a second.
        self.next_batch_at = began + timedelta(seconds=(batch.to_seq - batch.from_seq) / spec.start_rate_per_second)
        if s.next_seq >= s.drawn.next_seq:
            await self._refresh()
        else:
            self._publish()

    def _next_refresh(self) -> datetime:
        every = timedelta(seconds=self.s.input.options.progress_every_seconds)
        return workflow.now() if self.refreshed_at is None else self.refreshed_at + every

    def _finished(self) -> bool:
        p, end = self.s.progress, self.s.end_at
        done = p is not None and p.totals.not_started == 0 and p.totals.final >= p.totals.drawn
        return done or (end is not None and workflow.now() >= end)

    async def _wait_until(self, at: datetime) -> None:
        """Until `at`, or an amendment to apply, or a progress read on demand (it may find the plan done)."""
        seen = self.refreshes
        try:
            await workflow.wait_condition(lambda: bool(self.queue) or self.refreshes != seen,
                                          timeout=max(timedelta(0), at - workflow.now()),
                                          timeout_summary=f"Plan {self.spec.plan_id}: next step")
        except TimeoutError:
            pass

    async def _close(self) -> None:
        s = self.s
        await self._refresh()
        s.closed_at = workflow.now()
        assert s.progress is not None
        await workflow.execute_activity_method(
            PlanActivities.plan_close, PlanClosing(plan_id=self.spec.plan_id, summary=self.progress(),
                                                   closed_at=s.closed_at),
            start_to_close_timeout=STEP_TIMEOUT, retry_policy=RETRY, summary=f"Store the summary of plan {self.spec.plan_id}")
        delay = s.input.options.follow_up_delay(self.spec)
        if delay is not None and s.progress.totals.failed > 0:
            s.follow_up_at = s.closed_at + delay
        self._publish()

    async def _follow_up(self) -> None:
        """A special campaign's follow-up sampling of its failed enterprises: a plan of its own, started
        once its delay has passed (ABANDON: it outlives this one)."""
        s = self.s
        assert s.follow_up_at is not None
        await workflow.sleep(max(timedelta(0), s.follow_up_at - workflow.now()),
                             summary=f"Wait to start the follow-up of plan {self.spec.plan_id}")
        follow = PlanInput(spec=follow_up_spec(self.spec), options=s.input.options)
        await start_plan(follow, f"跟踪抽查 follow-up of plan {self.spec.plan_id}")
        s.follow_up_started = True
        self._publish()

    def _history_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or \
            info.get_current_history_length() >= self.s.input.options.continue_after_events

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or bool(self.queue))
        if self.queue:
            return  # an amendment arrived meanwhile: the loop applies it first
        self.s.runs += 1
        workflow.continue_as_new(args=[self.s.input, self.s])


def _request_id(payload: Any) -> str:
    """A refused amendment's key: its request id when it is a plain short text, else the update's own id."""
    rid = payload.get("request_id") if isinstance(payload, dict) else None
    if isinstance(rid, str) and 0 < len(rid) <= 128 and rid.isprintable():
        return rid
    info = workflow.current_update_info()
    return f"update-{info.id}" if info else "update"


def _token(payload: Any, key: str) -> str:
    value = payload.get(key) if isinstance(payload, dict) else None
    return value if value in ("add", "cancel") else "?"


def _sender(payload: Any) -> dict[str, Any] | None:
    """The sender of a refused amendment, when it names one validly (recorded beside the refusal)."""
    try:
        return Actor.model_validate(payload.get("sender")).model_dump(mode="json", exclude_none=True) if isinstance(payload, dict) else None
    except ValidationError:
        return None


@workflow.defn(name="ScheduledPlanWorkflow")
class ScheduledPlanWorkflow:
    """What a plan schedule fires (`plan-schedule-<name>-<time>`): the plan of the period the firing falls in
    (its `TemporalScheduledStartTime`, China time), started as `plan-<prefix>-<period>` unless it exists
    already (a second firing in one period, a manual trigger). Returns the plan's id."""

    @workflow.run
    async def run(self, scheduled: RawValue) -> str:
        template: ScheduledPlan = _validated(ScheduledPlan, scheduled, "scheduled plan")
        at = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        try:
            plan = template.fill(at)
        except ValidationError as err:
            raise ApplicationError("plan template refused: " + "; ".join(within(error_lines(err))),
                                   type="InvalidPlan", non_retryable=True) from None
        await start_plan(plan, f"{plan.spec.name} · {plan.spec.period}")
        return plan.spec.plan_id


async def start_plan(plan: PlanInput, summary: str) -> None:
    """Start a plan from a workflow, once: its id `plan-<plan_id>` exists already after a repeat (a second
    firing in one period, a replayed follow-up), and then nothing is started. ABANDON: a plan runs on its own."""
    try:
        await workflow.start_child_workflow(
            PlanWorkflow.NAME, plan, id=plan_workflow_id(plan.spec.plan_id),
            parent_close_policy=ParentClosePolicy.ABANDON, search_attributes=plan_attributes(plan),
            id_reuse_policy=PLAN_ID_REUSE, static_summary=summary)
    except WorkflowAlreadyStartedError:
        workflow.logger.info("plan %s was started already", plan.spec.plan_id)
