"""Helpers to drive a SampleWorkflow in tests: a worker on a fresh task queue, and waits on its state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle

from domain.status import SampleStatus
from starter.client import SpotcheckClient
from worker import build_worker
from workflows.sample import SampleWorkflow


@asynccontextmanager
async def running_worker(client: Client, pool: asyncpg.Pool, task_queue: str) -> AsyncIterator[SpotcheckClient]:
    # Any exception fails the workflow instead of retrying the task forever: a bug shows as a failure.
    async with build_worker(client, pool, task_queue, workflow_failure_exception_types=[Exception]):
        yield SpotcheckClient(client, task_queue)


async def status_of(handle: WorkflowHandle[Any, Any]) -> SampleStatus:
    return await handle.query(SampleWorkflow.status)


async def wait_for(
    handle: WorkflowHandle[Any, Any], check: Callable[[SampleStatus], bool], within: float = 30.0
) -> SampleStatus:
    """Poll the status query until `check` holds (the workflow moves on between our calls)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status = await status_of(handle)
        if check(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; stage={status.stage} awaiting={[a.kind for a in status.awaiting]}")
        await asyncio.sleep(0.1)


def awaiting(kind: str) -> Callable[[SampleStatus], bool]:
    return lambda s: any(a.kind == kind for a in s.awaiting)


async def search_attributes(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The workflow's search attributes, decoded from the raw payloads: the time-skipping server returns
    datetime attributes in a form `describe()` cannot decode."""
    raw = await handle._client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=handle._client.namespace, execution=WorkflowExecution(workflow_id=handle.id)
        )
    )
    fields = raw.workflow_execution_info.search_attributes.indexed_fields
    return {name: json.loads(payload.data) for name, payload in fields.items()}
