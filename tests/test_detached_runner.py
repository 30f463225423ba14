"""detached_runner.DetachedRunner: a workflow keeps its own copies of what it keeps of its start (so the start's
activation is freed once handled), with the same values; the deployed (unsandboxed) worker uses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.workflow_activation import InitializeWorkflow
from temporalio.common import Priority, RawValue, TypedSearchAttributes
from temporalio.converter import DataConverter
from temporalio.worker import WorkflowInstanceDetails

from detached_runner import DetachedRunner
from worker import workflow_runner


@workflow.defn(name="Raw", sandboxed=False)
class _Raw:
    @workflow.run
    async def run(self, order: RawValue) -> None:
        pass


def _start() -> InitializeWorkflow:
    init = InitializeWorkflow(workflow_type="Raw", workflow_id="wf", randomness_seed=7)
    init.arguments.add(metadata={"encoding": b"json/plain"}, data=b'{"sample_no": "T-1"}')
    init.headers["trace"].CopyFrom(Payload(metadata={"encoding": b"json/plain"}, data=b'"span"'))
    init.memo.fields["note"].CopyFrom(Payload(metadata={"encoding": b"json/plain"}, data=b'"memo"'))
    init.last_completion_result.payloads.add(data=b'"last"')
    return init


def _details(init: InitializeWorkflow) -> WorkflowInstanceDetails:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    info = workflow.Info(
        attempt=1, continued_run_id=None, cron_schedule=None, execution_timeout=None, first_execution_run_id="r",
        headers=dict(init.headers), namespace="default", original_execution_run_id="r", parent=None, root=None,
        priority=Priority.default,
        raw_memo=dict(init.memo.fields), retry_policy=None, run_id="r", run_timeout=None,
        search_attributes={}, start_time=now, task_queue="q",
        task_timeout=timedelta(seconds=10), typed_search_attributes=TypedSearchAttributes.empty,
        workflow_id="wf", workflow_start_time=now, workflow_type="Raw",
    )
    return WorkflowInstanceDetails(
        payload_converter_factory=DataConverter.default._new_payload_converter,
        failure_converter_class=DataConverter.default.failure_converter_class, interceptor_classes=[],
        defn=workflow._Definition.must_from_class(_Raw), info=info, randomness_seed=7, extern_functions={},
        disable_eager_activity_execution=False, worker_level_failure_exception_types=[],
        patch_activation_callback=None, last_completion_result=init.last_completion_result, last_failure=None,
        default_workflow_logic_flags=frozenset(),
    )


async def test_the_workflow_keeps_copies_of_its_start_not_parts_of_the_activation() -> None:
    init = _start()  # the SDK creates instances on a running event loop
    instance = DetachedRunner().create_instance(_details(init))
    given = instance._make_workflow_input(init)  # type: ignore[attr-defined]  # as the first activation does
    # What it keeps, as given:
    info = instance._info  # type: ignore[attr-defined]
    assert (info.headers["trace"].data, info.raw_memo["note"].data) == (b'"span"', b'"memo"')
    assert instance._last_completion_result.payloads[0].data == b'"last"'  # type: ignore[attr-defined]
    assert given.args[0].payload.data == b'{"sample_no": "T-1"}' and given.headers["trace"].data == b'"span"'
    # …and its own: the activation's messages changed (or freed) leave them as they were.
    init.headers["trace"].data = b"x"
    init.memo.fields["note"].data = b"x"
    init.last_completion_result.payloads[0].data = b"x"
    init.arguments[0].data = b"x"
    assert (info.headers["trace"].data, info.raw_memo["note"].data) == (b'"span"', b'"memo"')
    assert instance._last_completion_result.payloads[0].data == b'"last"'  # type: ignore[attr-defined]
    assert given.args[0].payload.data == b'{"sample_no": "T-1"}' and given.headers["trace"].data == b'"span"'


def test_the_deployed_worker_runs_workflows_detached() -> None:
    assert isinstance(workflow_runner({}), DetachedRunner)
    assert isinstance(workflow_runner({"SPOTCHECK_WORKFLOW_SANDBOX": "off"}), DetachedRunner)
    assert not isinstance(workflow_runner({"SPOTCHECK_WORKFLOW_SANDBOX": "on"}), DetachedRunner)
