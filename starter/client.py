"""Typed Python API for integrators: start one or many samples, send decisions, read status.
The CLI is a thin layer over this, so both validate the same way."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
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
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain import visibility as sa
from domain.branches import BRANCH_OF_KIND, branch_workflow_id
from domain.decisions import Decision, Receipt
from domain.models import SampleOrder, workflow_id_for
from domain.status import SampleStatus
from domain.visibility import sample_attributes
from telemetry import configure_tracing, tracing_interceptors
from workflows.sample import SampleWorkflow

DEFAULT_TASK_QUEUE = "spotcheck"


class OrderError(ValueError):
    """A sample order that cannot be started; `problems` names each bad field."""

    def __init__(self, problems: list[str], sample_no: str | None = None) -> None:
        self.problems = problems
        self.sample_no = sample_no
        super().__init__("; ".join(problems))


class DecisionRejected(ValueError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def parse_order(raw: Any) -> SampleOrder:
    if isinstance(raw, SampleOrder):
        return raw
    try:
        return SampleOrder.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"])
            msg = e["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}" if loc else msg)
        sample_no = raw.get("sample_no") if isinstance(raw, dict) else None
        raise OrderError(problems, sample_no) from None


def start_attributes(order: SampleOrder) -> TypedSearchAttributes:
    return sample_attributes(order)


@dataclass
class StartResult:
    sample_no: str | None
    workflow_id: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class SpotcheckClient:
    def __init__(self, client: Client, task_queue: str = DEFAULT_TASK_QUEUE) -> None:
        self.client = client
        self.task_queue = task_queue

    @classmethod
    async def connect(
        cls, address: str | None = None, namespace: str | None = None, task_queue: str | None = None
    ) -> SpotcheckClient:
        configure_tracing("spotcheck-cli")
        client = await Client.connect(
            address or os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
            namespace=namespace or os.environ.get("TEMPORAL_NAMESPACE", "default"),
            data_converter=pydantic_data_converter,
            interceptors=tracing_interceptors(),
        )
        return cls(client, task_queue or os.environ.get("SPOTCHECK_TASK_QUEUE", DEFAULT_TASK_QUEUE))

    # --- starting ------------------------------------------------------------------------------

    async def start_sample(self, raw: SampleOrder | dict[str, Any]) -> WorkflowHandle[Any, Any]:
        """Start one sample; a malformed order raises OrderError naming each field, a second start of the
        same sample number is refused (one workflow id per real sample)."""
        order = parse_order(raw)
        try:
            return await self.client.start_workflow(
                SampleWorkflow.run,
                order,
                id=order.workflow_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=start_attributes(order),
                static_summary=order.summary,
                static_details=_static_details(order),
            )
        except WorkflowAlreadyStartedError:
            raise OrderError([f"sample_no: sample {order.sample_no} was already started"], order.sample_no) from None

    async def start_samples(self, orders: Iterable[Any]) -> list[StartResult]:
        results = []
        for raw in orders:
            try:
                handle = await self.start_sample(raw)
                results.append(StartResult(handle.id.removeprefix("sample-"), handle.id))
            except OrderError as err:
                results.append(StartResult(err.sample_no, None, str(err)))
        return results

    # --- decisions -----------------------------------------------------------------------------

    async def decide(
        self, sample_no: str, raw: Decision | dict[str, Any], *, signal: bool = False, workflow_id: str | None = None
    ) -> Receipt | None:
        """Send a decision about a sample. As an update (default) it answers with the receipt or raises
        DecisionRejected with the reason; either way the attempt is in the sample's audit trail, recorded by
        the workflow itself (one send). As a signal it returns None and a bad decision is recorded as
        rejected. It goes to whichever of the sample's workflows waits for its kind (the sample, or a
        post-handling branch such as `sample-<no>-enforcement`); `workflow_id` names one explicitly."""
        payload = raw.model_dump(mode="json") if isinstance(raw, Decision) else raw
        # Only the kind is read here, to route; the workflow parses and validates the decision, once.
        kind = payload.get("kind") if isinstance(payload, dict) else None
        kind = kind if isinstance(kind, str) else None
        target = workflow_id or await self._route(sample_no, kind)
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
            raise DecisionRejected(await self._closed_reason(handle, kind, sample_no)) from None
        receipt = Receipt.model_validate(answer)
        if not receipt.accepted:
            raise DecisionRejected(receipt.reason or "rejected")
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

    async def _closed_reason(self, handle: WorkflowHandle[Any, Any], kind: str | None, sample_no: str) -> str:
        """A sample whose workflow has ended takes no decision: say why in the sample's own terms."""
        try:
            status = await handle.query("status")
        except RPCError:
            return f"no workflow {handle.id} for sample {sample_no}"
        closed = status.get("closed_waits") or {}
        why = closed.get(kind) if kind else None
        return why or (
            f"{handle.id} is no longer running (stage {status.get('stage')}"
            + (f", verdict {status['verdict']})" if status.get("verdict") else ")")
        )

    # --- reading -------------------------------------------------------------------------------

    async def status(self, sample_no: str) -> SampleStatus:
        handle = self.client.get_workflow_handle(workflow_id_for(sample_no))
        return await handle.query(SampleWorkflow.status)

    async def list_samples(self, query: str = "", limit: int = 200) -> list[dict[str, Any]]:
        full = "WorkflowType = 'SampleWorkflow'" + (f" AND ({query})" if query else "")
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
                "running": wf.status == WorkflowExecutionStatus.RUNNING,
            })
        return rows


def list_query(
    *, stage: str | None = None, region: str | None = None, overdue: bool = False,
    role: str | None = None, extra: str | None = None,
) -> str:
    parts: list[str] = []
    if stage:
        parts.append(f"Stage = {_quote(stage)}")
    if region:
        parts.append(f"Region = {_quote(region)}")
    if overdue:
        parts.append("Overdue = true")
    if role:
        parts.append(f"AwaitingRole = {_quote(role)}")
    if extra:
        parts.append(f"({extra})")
    return " AND ".join(parts)


def _quote(value: str) -> str:
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
