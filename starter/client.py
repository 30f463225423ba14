"""Typed Python API for integrators: start one or many samples, send decisions, read status.
The CLI is a thin layer over this, so both validate the same way."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json
from temporalio.client import (
    Client,
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
from domain.branches import BRANCH_OF_KIND, BranchStatus, branch_workflow_id
from domain.decisions import Decision, Receipt
from domain.models import SAMPLE_NO_PATTERN, SampleOrder, workflow_id_for
from domain.status import Awaiting, SampleStatus
from domain.visibility import sample_attributes
from telemetry import configure_tracing, tracing_interceptors
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
    """A deployment key (activities/keys.py) the client signs every decision with, for the workflow it
    sends it to (domain/signing.py)."""

    key_id: str
    secret: bytes = field(repr=False)

    @classmethod
    def from_key_file(cls, path: str | Path, key_id: str | None = None) -> Signer:
        """`key_id` from the key file, else its first decision key; a KeyFileError when there is none."""
        from activities.keys import load_keyring, signing_key

        return cls(*signing_key(load_keyring(path), key_id))

    def sign(self, decision: dict[str, Any], workflow_id: str) -> dict[str, Any]:
        return signing.sign(decision, workflow_id, self.key_id, self.secret, datetime.now(UTC))


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
        client = await Client.connect(
            address or os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
            namespace=namespace or os.environ.get("TEMPORAL_NAMESPACE", "default"),
            data_converter=data_converter_from_env(),  # encrypting when SPOTCHECK_CODEC_KEYS is set
            interceptors=tracing_interceptors(),
        )
        return cls(client, task_queue or os.environ.get("SPOTCHECK_TASK_QUEUE", DEFAULT_TASK_QUEUE), signer)

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
                id=order.workflow_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=start_attributes(order),
                static_summary=order.summary,
                static_details=_static_details(order),
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
        rejected. It goes to whichever of the sample's workflows waits for its kind (the sample, or a
        post-handling branch such as `sample-<no>-enforcement`); `workflow_id` names one explicitly."""
        payload = sendable(raw)
        # Only the kind is read here, to route; the workflow parses and validates the decision, once.
        kind = payload.get("kind")
        kind = kind if isinstance(kind, str) else None
        target = workflow_id or await self._route(sample_no, kind)
        if self.signer is not None and isinstance(payload, dict):
            payload = self.signer.sign(payload, target)  # after routing: the signature covers the target
        handle = self.client.get_workflow_handle(target)
        try:
            if signal:
                await handle.signal("decide", payload)
                return None
            answer = await handle.execute_update("submit_decision", payload)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            raise DecisionRejected(cause.message if isinstance(cause, ApplicationError) else str(cause)) from None
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            # Not found means no such sample, or one whose workflow has ended: its status tells which.
            raise await self._closed_reason(handle, kind, sample_no) from None
        receipt = Receipt.model_validate(answer)
        if not receipt.accepted:
            raise DecisionRejected(receipt.reason or "rejected", receipt)
        return receipt

    async def _route(self, sample_no: str, kind: str | None) -> str:
        """The workflow that takes this decision: the sample for its own kinds (no query needed), else a
        branch waiting for the kind, else the branch that owns it (domain.branches.BRANCH_OF_KIND)."""
        sample_id = workflow_id_for(sample_no)
        owner = BRANCH_OF_KIND.get(kind) if kind else None
        if owner is None:
            return sample_id
        try:
            status: SampleStatus = await self.client.get_workflow_handle(sample_id).query(SampleWorkflow.status)
        except RPCError:
            return branch_workflow_id(sample_id, owner.value)
        for branch in status.branches:
            if any(a.kind == kind for a in branch.awaiting):
                return branch.workflow_id
        known = [b.workflow_id for b in status.branches if b.branch == owner.value]
        return known[-1] if known else branch_workflow_id(sample_id, owner.value)

    async def _closed_reason(
        self, handle: WorkflowHandle[Any, Any], kind: str | None, sample_no: str
    ) -> DecisionRejected:
        """A sample whose workflow has ended takes no decision: say why in the sample's own terms."""
        try:
            status = await handle.query("status")
        except RPCError:
            return NoSuchWorkflow(f"no workflow {handle.id} for sample {sample_no}")
        closed = status.get("closed_waits") or {}
        why = closed.get(kind) if kind else None
        return DecisionRejected(why or (
            f"{handle.id} is no longer running (stage {status.get('stage')}"
            + (f", verdict {status['verdict']})" if status.get("verdict") else ")")
        ))

    # --- reading -------------------------------------------------------------------------------

    async def status(self, sample_no: str, rpc_timeout: timedelta | None = None) -> SampleStatus:
        """The sample's `status` query; `rpc_timeout`: give up then (RPCError) when no worker answers."""
        handle = self.client.get_workflow_handle(workflow_id_for(sample_no))
        return await handle.query(SampleWorkflow.status, rpc_timeout=rpc_timeout)

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
        """The samples the visibility `query` finds; `branches`: their branch workflows too (the workbench's
        inbox: a credit branch waits on after its sample has closed)."""
        kind = "" if branches else "WorkflowType = 'SampleWorkflow'"
        full = " AND ".join(p for p in (kind, f"({query})" if query else "") if p)
        rows = []
        async for wf in self.client.list_workflows(full, limit=limit):
            attrs = wf.typed_search_attributes
            rows.append({
                "sample_no": attrs.get(sa.SAMPLE_NO),
                "workflow_id": wf.id,
                "stage": attrs.get(sa.STAGE),
                "verdict": attrs.get(sa.VERDICT),
                "region": attrs.get(sa.REGION),
                "channel": attrs.get(sa.CHANNEL),
                "awaiting_role": list(attrs.get(sa.AWAITING_ROLE) or []),
                "next_deadline": (d.isoformat() if (d := attrs.get(sa.NEXT_DEADLINE)) else None),
                "overdue": bool(attrs.get(sa.OVERDUE)),
                "estimated": bool(attrs.get(sa.ESTIMATED_DEADLINE)),
                "running": wf.status == WorkflowExecutionStatus.RUNNING,
            })
        return rows

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


def quote_value(value: str) -> str:
    """A string literal of a visibility query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _static_details(order: SampleOrder) -> str:
    p = order.product
    lines: Sequence[str] = [
        f"**{order.sample_no}** · plan `{order.plan_id}` · {order.task_type.value} · {order.channel.value}",
        f"- product: {p.name} · {p.brand} {p.model} · code {p.classification_code}"
        + (f" · batch {p.batch}" if p.batch else ""),
        f"- sampled party: {order.sampled_party.name} ({order.sampled_party.credit_code}, "
        f"region {order.sampled_party.region})",
        f"- lab: {order.inspection_agency.name}",
    ]
    if order.platform:
        lines = [*lines, f"- platform: {order.platform.platform} · shop {order.platform.shop_name} · "
                 f"listing {order.platform.listing_id}"]
    return "\n".join(lines)
