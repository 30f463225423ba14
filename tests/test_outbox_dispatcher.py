"""The dispatcher workflow keeps one bounded `dispatch_outbox` run going at a time and continues as new after
`RUNS_PER_HISTORY` of them, so its history never grows without end. Under `make histories` its first run is
saved for the replay tests (tests/test_replay.py)."""

from __future__ import annotations

import asyncio
import os

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from domain.outbox import DispatchPlan
from tests.workflow_env import HISTORIES, mocked_worker
from workflows.outbox import RUNS_PER_HISTORY, OutboxDispatcherWorkflow, dispatcher_id


async def test_the_dispatcher_continues_as_new_after_its_runs(dev_env: WorkflowEnvironment, task_queue: str) -> None:
    client = dev_env.client
    async with mocked_worker(client, task_queue):
        started = await client.start_workflow(OutboxDispatcherWorkflow.run, DispatchPlan(run_seconds=5),
                                              id=dispatcher_id(task_queue), task_queue=task_queue)
        first = client.get_workflow_handle(started.id, run_id=started.result_run_id)
        for _ in range(300):
            if (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                break
            await asyncio.sleep(0.1)
        history = await first.fetch_history()
        await client.get_workflow_handle(started.id).terminate("test over")
    runs = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]
    assert len(runs) == RUNS_PER_HISTORY
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    if os.environ.get("SPOTCHECK_RECORD_HISTORIES"):
        name = "test_the_dispatcher_continues_as_new_after_its_runs-0"
        (HISTORIES / f"{name}__{started.id}.json").write_text(history.to_json(), encoding="utf-8")
