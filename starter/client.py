"""Typed Python API for integrators: start one or many samples, send decisions, read status.
The CLI is a thin layer over this, so both validate the same way."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_core import to_json
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from codec import data_converter_from_env
from domain import signing
from domain import visibility as sa
from domain.bounds import error_lines, within
from domain.branches import BRANCH_OF_KIND, BRANCHES, Branch, BranchReport, BranchStatus, branch_workflow_id
from domain.decisions import Decision, Receipt
from domain.models import SAMPLE_NO_PATTERN, SampleOrder, workflow_id_for
from domain.product_case import CASE_PREFIX
from domain.stages import Stage
from domain.status import Awaiting, SampleStatus
from domain.visibility import sample_attributes, sample_start_options
from starter.views import BY_NAME as VIEWS
from telemetry import configure_tracing, tracing_interceptors
from workflows.product_case import ProductCaseWorkflow
from workflows.sample import SampleWorkflow

DEFAULT_TASK_QUEUE = "spotcheck"
# Starts in flight at once in `start_samples`: enough to keep the server busy, bounded so that a file of
# 100,000 orders never opens 100,000 requests.
START_WINDOW = 32
# How long a listing waits for each sample's status query (`awaited_in`) before counting it as not answering.
STATUS_TIMEOUT = timedelta(seconds=3)


class OrderError(ValueError):
    """A sample order that cannot be started; `problems` names each bad field."""

    def __init__(self, problems: list[str], sample_no: str | None = None) -> None:
        self.problems = problems
        self.sample_no = sample_no
        super().__init__("; ".join(problems))


class SampleExists(OrderError):
    """A start refused because the sample number was already started (one workflow id per real sample)."""


class DecisionRejected(ValueError):
    """`receipt`: the workflow's, when it answered (None when the decision never reached a workflow)."""

    def __init__(self, reason: str, receipt: Receipt | None = None) -> None:
        self.reason = reason
        self.receipt = receipt
        super().__init__(reason)


class NoSuchWorkflow(DecisionRejected):
    """A decision for a workflow that was never started (no such sample, or no such branch of it)."""


def parse_order(raw: Any) -> SampleOrder:
    """The order, or OrderError naming each bad field (`<field>: <problem>`, at most 300 characters in all,
    never the input). Its `sample_no` is the order's own when that is a well-formed sample number."""
    if isinstance(raw, SampleOrder):
        return raw
    if not isinstance(raw, dict):
        raise OrderError([f"input: an order must be a JSON object, not {_json_type(raw)}"])
    try:
        return SampleOrder.model_validate(raw)
    except ValidationError as err:
        sample_no = raw.get("sample_no")
        if not (isinstance(sample_no, str) and re.match(SAMPLE_NO_PATTERN, sample_no.strip())):
            sample_no = None
        raise OrderError(within(error_lines(err)), sample_no and sample_no.strip()) from None


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# A decision larger than this is not sent: the workflow refuses anything over 64 KiB anyway (and records the
# attempt), but a payload near Temporal's 2 MB limit would fail in transport instead.
MAX_SEND_BYTES = 512 * 1024


def sendable(raw: Any) -> dict[str, Any]:
    """The decision as it goes on the wire, or DecisionRejected when it cannot be sent at all (not an object,
    nested too deeply, a lone surrogate, too large), naming where. Anything that can be sent is sent: the
    workflow validates it and records the attempt, refused or not."""
    payload = raw.model_dump(mode="json") if isinstance(raw, Decision) else raw
    if not isinstance(payload, dict):
        raise DecisionRejected(f"input: a decision must be a JSON object, not {_json_type(payload)}")
    try:
        size = len(to_json(payload))  # as the pydantic data converter encodes it
    except (ValueError, TypeError, RecursionError) as err:
        text = str(err)
        if "surrogates" in text:
            raise DecisionRejected("input: must not contain lone surrogates (U+D800–U+DFFF)") from None
        if "depth" in text or isinstance(err, RecursionError):
            raise DecisionRejected("input: nested too deeply") from None
        raise DecisionRejected("input: cannot be encoded as JSON") from None
    if size > MAX_SEND_BYTES:
        raise DecisionRejected(f"input: {size} bytes as JSON, over the limit of {MAX_SEND_BYTES}")
    return payload


def start_attributes(order: SampleOrder) -> TypedSearchAttributes:
    return sample_attributes(order)


# How an enforcement branch ends when a cross-region merged case takes it over (workflows/enforcement.py
# `_follow`): outcome `merged`, the case's workflow id in `data["merged_case"]`.
MERGED = "merged"
MERGED_CASE = "merged_case"


def merged_case(report: BranchReport) -> str | None:
    """The merged case (`case-…`) that took this branch over and now awaits its decisions, or None."""
    case = report.data.get(MERGED_CASE) if report.closed and report.outcome == MERGED else None
    return case if isinstance(case, str) and case else None


# What each Spotcheck workflow type is, for listings of every workflow: the sample, each branch by its name,
# the product case (`@workflow.defn` without a name: the type is the class name). An enforcement workflow
# under a `case-…` id is a merged case (`workflow_kind`).
WORKFLOW_KINDS: dict[str, str] = {
    SampleWorkflow.NAME: "sample",
    **{spec.workflow: spec.branch.value for spec in BRANCHES.values()},
    ProductCaseWorkflow.__name__: "product_case",
}


def workflow_kind(workflow_type: str, workflow_id: str) -> str:
    if workflow_type == BRANCHES[Branch.ENFORCEMENT].workflow and workflow_id.startswith(CASE_PREFIX):
        return MERGED_CASE
    return WORKFLOW_KINDS.get(workflow_type, workflow_type)


class SampleView(SampleStatus):
    """A sample's status as the client shows it. Once the sample has closed, its reports of the branches it
    did not wait for (a credit listing lasts a year) are frozen at the closing: each branch not closed then is
    read from the branch itself (its `status` query) and named in `live_branches`."""

    live_branches: list[str] = Field(
        default_factory=list, description="workflow ids of the branches read live from the branch, not the sample"
    )


@dataclass
class StartResult:
    sample_no: str | None
    workflow_id: str | None
    error: str | None = None
    index: int | None = None  # the order's place in the input, from 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Signer:
    """A deployment key (activities/keys.py) the client signs every decision (and plan amendment) with, for the
    workflow it sends it to (domain/signing.py)."""

    key_id: str
    secret: bytes = field(repr=False)

    @classmethod
    def from_key_file(cls, path: str | Path, key_id: str | None = None) -> Signer:
        """`key_id` from the key file, else its first decision key; a KeyFileError when there is none."""
        from activities.keys import load_keyring, signing_key

        return cls(*signing_key(load_keyring(path), key_id))

    def sign(self, value: dict[str, Any], workflow_id: str, what: signing.Signed = signing.DECISION) -> dict[str, Any]:
        """`value` signed for `workflow_id`: a decision, or what `what` says (a plan amendment)."""
        return signing.sign(value, workflow_id, self.key_id, self.secret, datetime.now(UTC), what)


class SpotcheckClient:
    """`signer`: sign every decision sent (without one, decisions go unsigned: a deployment that requires
    signatures refuses them, and records the refusal)."""

    def __init__(self, client: Client, task_queue: str = DEFAULT_TASK_QUEUE, signer: Signer | None = None) -> None:
        self.client = client
        self.task_queue = task_queue
        self.signer = signer

    @classmethod
    async def connect(
        cls, address: str | None = None, namespace: str | None = None, task_queue: str | None = None,
        signer: Signer | None = None,
    ) -> SpotcheckClient:
        configure_tracing("spotcheck-cli")
        from settings import setting, temporal_connect_config

        config = temporal_connect_config()  # temporalio.envconfig: address, namespace, TLS, API key, profiles
        config["target_host"] = address or config["target_host"]
        config["namespace"] = namespace or config["namespace"]
        client = await Client.connect(
            **config,
            data_converter=data_converter_from_env(),  # encrypting when SPOTCHECK_CODEC_KEYS is set
            interceptors=tracing_interceptors(),
        )
        return cls(client, task_queue or setting("SPOTCHECK_TASK_QUEUE"), signer)

    # --- starting ------------------------------------------------------------------------------

    async def start_sample(self, raw: SampleOrder | dict[str, Any]) -> WorkflowHandle[Any, Any]:
        """Start one sample; a malformed order raises OrderError naming each field, a second start of the
        same sample number is refused (one workflow id per real sample)."""
        order = parse_order(raw)
        try:
            return await self.client.start_workflow(
                SampleWorkflow.NAME,  # by name: its order arrives raw (validated by the workflow itself)
                order,
                result_type=SampleStatus,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                **sample_start_options(order),
            )
        except WorkflowAlreadyStartedError:
            raise SampleExists([f"sample_no: sample {order.sample_no} was already started"], order.sample_no) from None

    async def started_order(self, sample_no: str) -> SampleOrder:
        """The order a sample was started with (the input of its run: a continued run carries it on);
        RPCError NOT_FOUND for a sample never started."""
        handle = self.client.get_workflow_handle(workflow_id_for(sample_no))
        async for event in handle.fetch_history_events():
            started = event.workflow_execution_started_event_attributes
            payloads = list(started.input.payloads)[:1]
            [order] = await self.client.data_converter.decode(payloads, [SampleOrder])
            return order
        raise RPCError("no history", RPCStatusCode.NOT_FOUND, b"")

    async def start_samples(
        self, orders: Iterable[Any], *, window: int = START_WINDOW,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[StartResult]:
        """Start each order, up to `window` starts in flight at once; the results are in the orders' order.
        A bad order is reported (with its place in `orders`) and the others still start; a start the server
        did not take (unreachable, overloaded) is reported as not started with the server's reason.
        `progress(done, total)` is called after each start."""
        items = list(orders)
        results: list[StartResult | None] = [None] * len(items)
        queue = iter(enumerate(items))
        done = 0

        async def starter() -> None:
            nonlocal done
            for index, raw in queue:  # one shared iterator: each order is taken by exactly one starter
                try:
                    handle = await self.start_sample(raw)
                    results[index] = StartResult(handle.id.removeprefix("sample-"), handle.id, index=index)
                except OrderError as err:
                    results[index] = StartResult(err.sample_no, None, str(err), index=index)
                except RPCError as err:
                    no = raw.get("sample_no") if isinstance(raw, dict) else getattr(raw, "sample_no", None)
                    results[index] = StartResult(no if isinstance(no, str) else None, None,
                                                 f"not started: the server answered {err.status.name}", index=index)
                done += 1
                if progress is not None:
                    progress(done, len(items))

        await asyncio.gather(*(starter() for _ in range(max(1, min(window, len(items))))))
        return [r for r in results if r is not None]

    # --- decisions -----------------------------------------------------------------------------

    async def decide(
        self, sample_no: str, raw: Decision | dict[str, Any], *, signal: bool = False, workflow_id: str | None = None
    ) -> Receipt | None:
        """Send a decision about a sample. As an update (default) it answers with the receipt or raises
        DecisionRejected with the reason; either way the attempt is in the sample's audit trail, recorded by
        the workflow itself (one send). As a signal it returns None and a bad decision is recorded as
        rejected. It goes to whichever workflow waits for its kind (`_route`): the sample, a post-handling
        branch such as `sample-<no>-enforcement`, a credit listing that outlived its sample, or the merged
        case (`case-…`) that took the sample's enforcement over; `workflow_id` names one explicitly."""
        payload = sendable(raw)
        # Only the kind is read here, to route; the workflow parses and validates the decision, once.
        kind = payload.get("kind")
        kind = kind if isinstance(kind, str) else None
        target = workflow_id or await self._route(sample_no, kind)
        tried: set[str] = set()
        while True:
            tried.add(target)
            try:
                answer = await self._send(target, payload, signal)
                break
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                # Not found: no such workflow, or one that has ended; its status tells which. A branch that a
                # merged case took over since the sample last heard from it names the case: follow it once.
                status = await self._last_status(target)
                follow = _taken_over(status) if workflow_id is None else None
                if follow is None or follow in tried:
                    raise _closed_reason(target, status, kind, sample_no) from None
                target = follow
        if signal:
            return None
        receipt = Receipt.model_validate(answer)
        if not receipt.accepted:
            raise DecisionRejected(receipt.reason or "rejected", receipt)
        return receipt

    async def _send(self, target: str, payload: dict[str, Any], signal: bool) -> Any:
        """The decision to one workflow: the update's answer, or None for a signal."""
        if self.signer is not None:
            payload = self.signer.sign(payload, target)  # after routing: the signature covers the target
        handle = self.client.get_workflow_handle(target)
        try:
            if signal:
                await handle.signal("decide", payload)
                return None
            return await handle.execute_update("submit_decision", payload)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            raise DecisionRejected(cause.message if isinstance(cause, ApplicationError) else str(cause)) from None

    async def _route(self, sample_no: str, kind: str | None) -> str:
        """The workflow that takes this decision: the sample for its own kinds (no query needed), else a
        branch waiting for the kind, else the branch that owns it (domain.branches.BRANCH_OF_KIND) or the
        merged case that took that branch over. The branches are seen as `status` shows them: a closed
        sample's open branches are asked themselves, not the reports frozen at its closing."""
        sample_id = workflow_id_for(sample_no)
        owner = BRANCH_OF_KIND.get(kind) if kind else None
        if owner is None:
            return sample_id
        try:
            status = await self.status(sample_no)
        except RPCError:
            return branch_workflow_id(sample_id, owner.value)
        for branch in status.branches:
            if any(a.kind == kind for a in branch.awaiting):
                return branch.workflow_id
        known = [b for b in status.branches if b.branch == owner.value]
        if not known:
            return branch_workflow_id(sample_id, owner.value)
        return merged_case(known[-1]) or known[-1].workflow_id

    async def _last_status(self, workflow_id: str) -> dict[str, Any] | None:
        """A workflow's `status` (a sample's or a branch's, as JSON), or None when there is no such workflow."""
        try:
            status = await self.client.get_workflow_handle(workflow_id).query("status")
        except RPCError:
            return None
        return status if isinstance(status, dict) else None

    # --- reading -------------------------------------------------------------------------------

    async def status(self, sample_no: str, rpc_timeout: timedelta | None = None) -> SampleView:
        """The sample's status; once it has closed, each branch still open then is read from the branch.
        `rpc_timeout`: give up then (RPCError) when no worker answers."""
        handle = self.client.get_workflow_handle(workflow_id_for(sample_no))
        view: SampleView = await handle.query("status", result_type=SampleView, rpc_timeout=rpc_timeout)
        if view.stage == Stage.CLOSED.value:
            # The sample no longer hears from its branches (a credit listing outlives it): ask each one.
            stale = [i for i, b in enumerate(view.branches) if not b.closed]
            for i, now in zip(stale, await asyncio.gather(*(self._branch_now(view.branches[i]) for i in stale)),
                              strict=True):
                if now is not None:
                    view.branches[i] = now
                    view.live_branches.append(now.workflow_id)
        return view

    async def _branch_now(self, report: BranchReport) -> BranchReport | None:
        """A branch's report as the branch itself answers now, or None when it cannot be asked."""
        try:
            now = await self.client.get_workflow_handle(report.workflow_id).query("status", result_type=BranchStatus)
        except RPCError:
            return None
        return BranchReport(**{name: getattr(now, name) for name in BranchReport.model_fields})

    async def awaited(self, sample_no: str, listed: Collection[str] = (),
                      rpc_timeout: timedelta | None = None) -> list[tuple[str, str, Awaiting]]:
        """(workflow id, product summary, awaited decision) of a sample and its open branches, from the sample's
        status; where the sample is not among the `listed` workflow ids but its branches are (a credit branch
        outlives its sample), from each listed branch's own status."""
        sample_id = workflow_id_for(sample_no)
        if not listed or sample_id in listed:
            status = await self.status(sample_no, rpc_timeout)
            return [(sample_id, status.summary, a) for a in status.awaiting] + [
                (b.workflow_id, status.summary, a) for b in status.branches if not b.closed for a in b.awaiting]
        found = []
        for workflow_id in sorted(listed):
            branch = await self.client.get_workflow_handle(workflow_id).query("status", result_type=BranchStatus,
                                                                               rpc_timeout=rpc_timeout)
            found += [(workflow_id, branch.branch, a) for a in branch.awaiting]
        return found

    async def awaited_in(self, rows: list[dict[str, Any]], rpc_timeout: timedelta | None = STATUS_TIMEOUT
                         ) -> tuple[list[tuple[str, str, str, Awaiting]], int]:
        """What the samples of listed `rows` (`list_samples(branches=True)`) await: (sample no, workflow id,
        product, awaited) asked of each sample at once, and how many did not answer within `rpc_timeout` (their
        worker is down): one such sample never holds up the others."""
        samples = list(dict.fromkeys(r["sample_no"] for r in rows if r["sample_no"]))

        async def of(no: str) -> list[tuple[str, str, str, Awaiting]] | None:
            try:
                found = await self.awaited(no, {r["workflow_id"] for r in rows if r["sample_no"] == no}, rpc_timeout)
            except RPCError:
                return None
            return [(no, workflow_id, product, a) for workflow_id, product, a in found]

        answers = await asyncio.gather(*(of(no) for no in samples))
        return [w for found in answers if found for w in found], answers.count(None)

    async def list_samples(self, query: str = "", limit: int = 200, *, branches: bool = False) -> list[dict[str, Any]]:
        """The samples the visibility `query` finds; `branches`: every Spotcheck workflow it finds (the
        workbench's inbox: a credit branch waits on after its sample has closed)."""
        return await self.list_workflows(query, limit, all_workflows=branches)

    async def list_workflows(
        self, query: str = "", limit: int = 200, *, all_workflows: bool = False
    ) -> list[dict[str, Any]]:
        """Samples matching `query`; `all_workflows`: every Spotcheck workflow (samples, each branch, merged
        cases, product cases), each row's `kind` saying which (`workflow_kind`)."""
        types = list(WORKFLOW_KINDS) if all_workflows else [SampleWorkflow.NAME]
        full = f"WorkflowType IN ({', '.join(map(quote_value, types))})" + (f" AND ({query})" if query else "")
        rows = []
        async for wf in self.client.list_workflows(full, limit=limit):
            row = process_row(wf)
            row["kind"] = row["kind"] or workflow_kind(wf.workflow_type, wf.id)  # runs from before ProcessKind
            rows.append(row)
        return rows

    async def list_view(self, name: str, limit: int = 200) -> list[dict[str, Any]]:
        """A monitors' named view (starter/views.py), as the Web UI shows it: its query as written."""
        query = VIEWS[name].resolved(datetime.now(UTC))
        return [process_row(wf) async for wf in self.client.list_workflows(query, limit=limit)]

    async def inbox(
        self, role: str, query: str = "", limit: int = 200, *, all_workflows: bool = False
    ) -> list[dict[str, Any]]:
        """What `role` is awaited for. Samples only (default): one row per sample, its open branches' waits
        included (a sample's AwaitingRole holds them), as decisions are sent by sample number.
        `all_workflows`: one row per workflow that itself awaits the role (a branch, a merged case, a credit
        listing that outlived its sample), and a sample only for a wait of its own, so that no wait is listed
        twice."""
        rows = await self.list_workflows(list_query(role=role, extra=query or None), limit,
                                         all_workflows=all_workflows)
        if not all_workflows:
            return rows
        # A sample whose branch is listed too may match only through that branch's wait: its own waits tell.
        branched = {r["sample_no"] for r in rows if r["kind"] != "sample" and r["sample_no"]}
        unsure = [r for r in rows if r["kind"] == "sample" and r["sample_no"] in branched]
        own = await asyncio.gather(*(self._own_roles(r["workflow_id"]) for r in unsure))
        echoes = {r["workflow_id"] for r, roles in zip(unsure, own, strict=True) if roles is not None and role not in roles}
        return [r for r in rows if r["workflow_id"] not in echoes]

    async def _own_roles(self, sample_workflow_id: str) -> set[str] | None:
        """The roles a sample itself awaits (its status, without its branches'), or None when not known."""
        status = await self._last_status(sample_workflow_id)
        if status is None:
            return None
        return {r for a in status.get("awaiting") or [] for r in a.get("roles") or []}

    # --- the holiday calendar ------------------------------------------------------------------

    async def recompute_estimated(self, year: int | None = None) -> list[str]:
        """Tell every running workflow with an estimated deadline (EstimatedDeadline) that the calendar
        changed (`calendar_updated`): each computes those deadlines again and moves its timers. The ids told."""
        told = []
        query = "EstimatedDeadline = true AND ExecutionStatus = 'Running'"
        async for wf in self.client.list_workflows(query):
            await self.tell_calendar_updated(wf.id, year)
            told.append(wf.id)
        return told

    async def tell_calendar_updated(self, workflow_id: str, year: int | None = None) -> None:
        try:
            await self.client.get_workflow_handle(workflow_id).signal("calendar_updated", {"year": year})
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # closed since it was listed: nothing to move
                raise


def process_row(wf: WorkflowExecution) -> dict[str, Any]:
    """One listed workflow as `spotcheck list` prints it."""
    attrs = wf.typed_search_attributes
    return {
        "sample_no": attrs.get(sa.SAMPLE_NO),
        "workflow_id": wf.id,
        "kind": attrs.get(sa.PROCESS_KIND),
        "stage": attrs.get(sa.STAGE),
        "verdict": attrs.get(sa.VERDICT),
        "region": attrs.get(sa.REGION),
        "region_name": next(iter(attrs.get(sa.REGION_NAME) or []), None),
        "channel": attrs.get(sa.CHANNEL),
        "awaiting_role": list(attrs.get(sa.AWAITING_ROLE) or []),
        "overdue_role": list(attrs.get(sa.OVERDUE_ROLE) or []),
        "next_deadline": (d.isoformat() if (d := attrs.get(sa.NEXT_DEADLINE)) else None),
        "overdue": bool(attrs.get(sa.OVERDUE)),
        "estimated": bool(attrs.get(sa.ESTIMATED_DEADLINE)),
        "running": wf.status == WorkflowExecutionStatus.RUNNING,
    }


def list_query(
    *, stage: str | None = None, region: str | None = None, overdue: bool = False,
    role: str | None = None, extra: str | None = None,
) -> str:
    parts: list[str] = []
    if stage:
        parts.append(f"Stage = {quote_value(stage)}")
    if region:
        parts.append(f"Region = {quote_value(region)}")
    if overdue:
        parts.append("Overdue = true")
    if role:
        parts.append(f"AwaitingRole = {quote_value(role)}")
    if extra:
        parts.append(f"({extra})")
    return " AND ".join(parts)


def _taken_over(status: dict[str, Any] | None) -> str | None:
    """From a workflow's own status: the merged case that took it over, when it is a branch that was."""
    if status is None or "branch" not in status:
        return None
    try:
        return merged_case(BranchReport.model_validate(status))
    except ValidationError:
        return None


def _closed_reason(workflow_id: str, status: dict[str, Any] | None, kind: str | None, sample_no: str) -> DecisionRejected:
    """A workflow that has ended takes no decision: say why in the sample's own terms (`status`: its last
    status, None when there is no such workflow)."""
    if status is None:
        return NoSuchWorkflow(f"no workflow {workflow_id} for sample {sample_no}")
    closed = status.get("closed_waits") or {}
    why = closed.get(kind) if kind else None
    ended = [f"{k} {status[k]}" for k in ("stage", "verdict", "outcome") if status.get(k)]
    return DecisionRejected(why or f"{workflow_id} is no longer running ({', '.join(ended)})")


def quote_value(value: str) -> str:
    """A string literal of a visibility query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
