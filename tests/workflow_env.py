"""Helpers to drive a SampleWorkflow in tests: a worker on a fresh task queue, and waits on its state."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, Interceptor, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from codec import spotcheck_data_converter
from domain import visibility
from domain.branches import BranchStatus
from domain.status import SampleStatus
from starter.binaries import temporal_test_server
from starter.client import SpotcheckClient
from tests import factories as f
from tests.mock_activities import RecordCalls, Store, mock_activities
from worker import build_worker
from workflows.sample import SampleWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"


async def time_skipping_env(interceptors: Sequence[Interceptor] = ()) -> WorkflowEnvironment:
    """The time-skipping test server, with the custom search attributes registered first (it refuses
    unknown ones)."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=spotcheck_data_converter,
        test_server_existing_path=temporal_test_server(),
        interceptors=interceptors,
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            # SearchAttributeIndexedValueType shares its values with the API enum.
            search_attributes={k.name: int(k.indexed_value_type) for k in visibility.ALL},  # type: ignore[misc]
        )
    )
    return env


async def to_testing(
    client: SpotcheckClient, order: dict[str, Any], sealed: dict[str, Any] | None = None
) -> WorkflowHandle[Any, Any]:
    """Start a sample and take it through sealing and the lab's receipt, to the wait for the report."""
    handle = await client.start_sample(order)
    no = order["sample_no"]
    await wait_for(handle, awaiting("sampling_record"))
    await client.decide(no, sealed or f.sealed())
    await wait_for(handle, awaiting("sample_receipt"))
    await client.decide(no, f.received())
    await wait_for(handle, awaiting("lab_report"))
    return handle


async def to_objection_window(client: SpotcheckClient, order: dict[str, Any]) -> WorkflowHandle[Any, Any]:
    """Start a sample, have the lab report a fail and the result delivered: to the open objection window."""
    handle = await to_testing(client, order)
    no = order["sample_no"]
    await client.decide(no, f.report("fail"))
    await wait_for(handle, awaiting("result_delivery"))
    await client.decide(no, f.delivered())
    await wait_for(handle, awaiting("objection"))
    return handle


class RecordingClient(SpotcheckClient):
    """Remembers the samples it started so their histories can be saved for the replay tests."""

    def __init__(self, client: Client, task_queue: str) -> None:
        super().__init__(client, task_queue)
        self.started: list[WorkflowHandle[Any, Any]] = []

    async def start_sample(self, raw: Any) -> WorkflowHandle[Any, Any]:
        handle = await super().start_sample(raw)
        self.started.append(handle)
        return handle


@asynccontextmanager
async def running_worker(
    client: Client, pool: asyncpg.Pool | None, task_queue: str, **options: Any
) -> AsyncIterator[SpotcheckClient]:
    """A worker for the test's task queue, with the real activities on `pool` (or the `activities=` given).
    For a restart test, give the worker that stops first `max_cached_workflows=0`: the time-skipping server
    would otherwise keep the next task on the stopped worker's sticky queue, with its clock standing still,
    and never hand it to the new worker."""
    # Any exception fails the workflow instead of retrying the task forever: a bug shows as a failure.
    options.setdefault("workflow_failure_exception_types", [Exception])
    async with build_worker(client, pool, task_queue, **options):
        spot = RecordingClient(client, task_queue)
        yield spot
        if os.environ.get("SPOTCHECK_RECORD_HISTORIES"):
            await save_histories(spot.started)


@asynccontextmanager
async def mocked_worker(
    client: Client, task_queue: str, store: Store | None = None, **options: Any
) -> AsyncIterator[tuple[SpotcheckClient, Store]]:
    """running_worker with the in-memory activities of tests/mock_activities.py: no database. Yields the
    client and the store the activities write to (give the same `store` to a second worker to restart)."""
    store = store if store is not None else Store()
    options["interceptors"] = [*options.get("interceptors", ()), RecordCalls(store)]
    async with running_worker(client, None, task_queue, activities=mock_activities(store), **options) as spot:
        yield spot, store


async def record_history(handle: WorkflowHandle[Any, Any]) -> None:
    """Under `make histories`, keep the history of a workflow started on its own (a branch) too."""
    if os.environ.get("SPOTCHECK_RECORD_HISTORIES"):
        await save_histories([handle])


async def save_histories(handles: list[WorkflowHandle[Any, Any]]) -> None:
    """`make histories`: keep the histories of real runs under tests/histories/ for test_replay.py."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "run").split(" ")[0].split("::")[-1]
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", test).strip("_")
    HISTORIES.mkdir(exist_ok=True)
    for i, handle in enumerate(handles):
        history = await handle.fetch_history()
        # The workflow id is part of the name: replay needs it (child ids are derived from it).
        (HISTORIES / f"{name}-{i}__{handle.id}.json").write_text(history.to_json(), encoding="utf-8")
        # …and each post-handling branch of the sample, so that every branch workflow is replayed too.
        status = await handle.query("status")
        for branch in status.get("branches", []):
            branch_history = await handle._client.get_workflow_handle(branch["workflow_id"]).fetch_history()
            (HISTORIES / f"{name}-{i}-{branch['branch']}__{branch['workflow_id']}.json").write_text(
                branch_history.to_json(), encoding="utf-8"
            )


async def status_of(handle: WorkflowHandle[Any, Any]) -> SampleStatus:
    return await handle.query(SampleWorkflow.status)


async def _polled_status(handle: WorkflowHandle[Any, Any]) -> SampleStatus:
    """The status, asked again when a query times out: the time-skipping server can leave one unanswered
    for its whole deadline while a run continues as new."""
    for _ in range(10):
        try:
            return await handle.query(SampleWorkflow.status, rpc_timeout=timedelta(seconds=5))
        except RPCError as err:
            if err.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise
    return await status_of(handle)


async def flood(handle: WorkflowHandle[Any, Any], continued: Callable[[], Awaitable[bool]], first: int = 20) -> int:
    """Junk decisions by signal until `continued()` (the workflow continued as new): `first` at once, then one
    more each poll. A workflow reads its history's length when it next has a task, and a burst taken in one
    task (its refusals audited by local activities in that task) leaves the history long until then: in
    production the next decision or timer is that task. The junk sent."""
    for n in range(first):
        await handle.signal("decide", {"junk": n})
    for n in range(first, first + 300):
        if await continued():
            return n
        await handle.signal("decide", {"junk": n})
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} never continued as new")


async def wait_for(
    handle: WorkflowHandle[Any, Any], check: Callable[[SampleStatus], bool], within: float = 30.0
) -> SampleStatus:
    """Poll the status query until `check` holds (the workflow moves on between our calls)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status = await _polled_status(handle)
        if check(status):
            return status
        if not await _running(handle):
            await handle.result()  # raises the workflow's failure, if that is why it stopped
            raise AssertionError(f"the workflow ended at stage {status.stage} before the expected state")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; stage={status.stage} awaiting={[a.kind for a in status.awaiting]}")
        await asyncio.sleep(0.1)


def awaiting(kind: str) -> Callable[[SampleStatus], bool]:
    return lambda s: any(a.kind == kind for a in s.awaiting)


async def _describe(handle: WorkflowHandle[Any, Any]) -> Any:
    # Raw describe: the time-skipping server returns datetime search attributes describe() cannot decode.
    return await handle._client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=handle._client.namespace, execution=WorkflowExecution(workflow_id=handle.id)
        )
    )


async def _running(handle: WorkflowHandle[Any, Any]) -> bool:
    raw = await _describe(handle)
    return bool(raw.workflow_execution_info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING)


async def idle(handle: WorkflowHandle[Any, Any]) -> None:
    """Until no activity or workflow task is in flight: the time-skipping server holds time still while an
    activity runs (a receipt comes before the workflow has finished acting on the decision)."""
    for _ in range(200):
        raw = await _describe(handle)
        if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
            return
        await asyncio.sleep(0.05)


async def terminate_when_idle(handle: WorkflowHandle[Any, Any]) -> None:
    """Terminate once idle: an activity cut off by a termination can leave time locked for later tests."""
    await idle(handle)
    await handle.terminate("test done")


async def search_attributes(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The workflow's search attributes, decoded from the raw payloads."""
    raw = await _describe(handle)
    fields = raw.workflow_execution_info.search_attributes.indexed_fields
    # An unset attribute comes back as an empty payload.
    return {name: json.loads(payload.data) for name, payload in fields.items() if payload.data}


async def settle_in_post_handling(handle: WorkflowHandle[Any, Any]) -> SampleStatus:
    """Wait until a failed sample has opened its post-handling branches, then terminate it (and with it
    its awaited branches): for tests of the lifecycle up to the final verdict."""
    status = await wait_for(
        handle, lambda s: (s.stage == "post_handling" and bool(s.branches)) or s.stage in ("disposal", "closed")
    )
    await terminate_when_idle(handle)
    return status


async def closed_result(handle: WorkflowHandle[Any, Any], within: float = 10.0) -> Any:
    """The result of a workflow that is about to close: poll a while for it to close by itself, then
    read it (`result()` also skips time when a timer is still due). `result()` alone on the
    time-skipping server now and then answers "No completion event found" when its long poll races the
    close."""
    deadline = asyncio.get_running_loop().time() + within
    for _ in range(int(within * 10)):
        if not await _running(handle) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    return await handle.result()


async def branch_status(handle: WorkflowHandle[Any, Any]) -> BranchStatus:
    """A branch's status, asked again when the query is left unanswered (see `_polled_status`)."""
    for _ in range(10):
        try:
            return await handle.query("status", result_type=BranchStatus, rpc_timeout=timedelta(seconds=5))
        except RPCError as err:
            if err.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise
    return await handle.query("status", result_type=BranchStatus)


async def wait_for_branch(handle: WorkflowHandle[Any, Any], check: Callable[[BranchStatus], bool]) -> BranchStatus:
    """Poll a branch workflow's `status` query until `check` holds."""
    for _ in range(300):
        s = await branch_status(handle)
        if check(s):
            return s
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out at stage {s.stage}, awaiting {[a.kind for a in s.awaiting]}")


def local_activity_type(event: Any) -> str | None:
    """The activity type of a local activity whose marker `event` is, else None (Core's own metadata: plain
    JSON, not through the codec)."""
    if not event.HasField("marker_recorded_event_attributes"):
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != "core_local_activity":
        return None
    return str(json.loads(marker.details["data"].payloads[0].data)["activity_type"])


async def local_results(client: Client, event: Any, activity_type: str) -> list[Any]:
    """The decoded result of a local activity `activity_type` whose marker `event` is (a local activity's
    input is not in history; its result is), else nothing."""
    if local_activity_type(event) != activity_type or "result" not in event.marker_recorded_event_attributes.details:
        return []
    return list(await client.data_converter.decode(event.marker_recorded_event_attributes.details["result"].payloads))


async def audited_locally(client: Client, event: Any) -> list[dict[str, Any]]:
    """The audit rows (AuditedDecision) a local activity whose marker `event` is wrote: `audit_decision`'s
    one, or the rows a sample's `open_wait` took along (patch `audit-with-wait`)."""
    rows = await local_results(client, event, "audit_decision")
    for opened in await local_results(client, event, "open_wait"):
        rows += opened.get("audited", [])
    return rows
