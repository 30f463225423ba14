"""The unsandboxed workflow runner the worker uses: a cached workflow keeps nothing of its start's activation.

The SDK (temporalio 1.35, pinned) hands a new workflow its start as protobuf messages and keeps parts of
them for the whole run: the headers and memo in `workflow.info()`, the last completion result and failure,
and the start's headers and raw arguments (a sample's order arrives as a RawValue). With upb, Python's
protobuf, a part keeps its whole message alive: the start's activation, with the order and every search
attribute the sample started with, about 20 KiB per cached sample (bench/RESULTS.md, RSS per 1,000 cached).
This runner gives the workflow its own copies of those parts, so the activation is freed once handled.
Nothing else changes: the same instance class, the same values (tests/test_detached_runner.py)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from temporalio.common import RawValue
from temporalio.worker import (
    ExecuteWorkflowInput,
    UnsandboxedWorkflowRunner,
    WorkflowInstance,
    WorkflowInstanceDetails,
)
from temporalio.worker._workflow_instance import _WorkflowInstanceImpl

M = TypeVar("M")


def detached(message: M) -> M:
    """A copy of a protobuf message in an arena of its own."""
    copy = type(message)()
    copy.CopyFrom(message)  # type: ignore[attr-defined]
    return copy


def _detached_value(value: Any) -> Any:
    return RawValue(detached(value.payload)) if isinstance(value, RawValue) else value


class _DetachedInstance(_WorkflowInstanceImpl):
    def _make_workflow_input(self, init_job: Any) -> ExecuteWorkflowInput:
        given = super()._make_workflow_input(init_job)
        return dataclasses.replace(given, args=[_detached_value(a) for a in given.args],
                                   headers={k: detached(v) for k, v in given.headers.items()})


class DetachedRunner(UnsandboxedWorkflowRunner):
    """UnsandboxedWorkflowRunner whose workflows hold copies of what they keep of their start."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        info = dataclasses.replace(
            det.info, headers={k: detached(v) for k, v in det.info.headers.items()},
            raw_memo={k: detached(v) for k, v in det.info.raw_memo.items()},
        )
        det = dataclasses.replace(
            det, info=info, last_completion_result=detached(det.last_completion_result),
            last_failure=None if det.last_failure is None else detached(det.last_failure),
        )
        return _DetachedInstance(det)  # type: ignore[abstract]
