"""OpenTelemetry: one trace from the client's calls through the workflow into its activities; off by default."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment

from telemetry import configure_tracing, tracing_interceptors
from tests import factories as f
from tests.workflow_env import awaiting, mocked_worker, terminate_when_idle, time_skipping_env, wait_for


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A local provider: the global one is left alone."""
    local = TracerProvider()
    local.add_span_processor(SimpleSpanProcessor(spans))
    yield local
    local.shutdown()


@pytest_asyncio.fixture
async def traced_env(provider: TracerProvider) -> AsyncIterator[WorkflowEnvironment]:
    """conftest's ts_env, with a TracingInterceptor on the client, and so on the workers built from it."""
    env = await time_skipping_env(interceptors=[TracingInterceptor(provider.get_tracer("spotcheck-test"))])
    yield env
    await env.shutdown()


def _named(finished: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in finished if s.name == name]
    assert found, f"no span {name!r} among {sorted({s.name for s in finished})}"
    return found[0]


async def test_one_trace_from_client_through_workflow_and_activities(
    traced_env: WorkflowEnvironment, task_queue: str,
    provider: TracerProvider, spans: InMemorySpanExporter,
) -> None:
    tracer = provider.get_tracer("spotcheck-test")
    async with mocked_worker(traced_env.client, task_queue) as (client, _):
        order = f.order()
        # One user action (a CLI command, an integrator's request) wraps the start and the decision.
        with tracer.start_as_current_span("spotcheck sample"):
            handle = await client.start_sample(order)
            await wait_for(handle, awaiting("sampling_record"))
            await client.decide(order["sample_no"], f.sealed())
            await wait_for(handle, awaiting("sample_receipt"))
        await terminate_when_idle(handle)

    finished = spans.get_finished_spans()
    root = _named(finished, "spotcheck sample")
    trace_id = root.context.trace_id
    chain = [
        _named(finished, "StartWorkflow:SampleWorkflow"),  # client
        _named(finished, "RunWorkflow:SampleWorkflow"),  # worker, workflow
        _named(finished, "StartActivity:open_wait"),  # workflow schedules the activity
        _named(finished, "RunActivity:open_wait"),  # worker, activity: the wait's deadline and record
        _named(finished, "StartWorkflowUpdate:submit_decision"),  # client, the sealing decision
        _named(finished, "HandleUpdate:submit_decision"),  # workflow, its handler (no validator: every
        # attempt is admitted and answered with a receipt)
        # the step the decision sets off opens the next wait, its audit row written in the same local activity
        [s for s in finished if s.name == "StartActivity:open_wait"][-1],
    ]
    assert {format(s.context.trace_id, "032x") for s in chain} == {format(trace_id, "032x")}
    # The parents run client -> workflow -> activity. The interceptor hangs every workflow-side span on the
    # client's StartWorkflow span (RunWorkflow is a zero-duration marker beside them, not their parent).
    start, run, start_activity, run_activity, update, handle_update, audit = chain

    def parent_of(span: ReadableSpan) -> int | None:
        return span.parent.span_id if span.parent else None

    assert parent_of(start) == root.context.span_id
    assert parent_of(run) == start.context.span_id
    assert parent_of(start_activity) == start.context.span_id
    assert parent_of(run_activity) == start_activity.context.span_id
    assert parent_of(update) == root.context.span_id
    # The update's workflow side sits under the workflow and links back to the client's update call.
    assert parent_of(handle_update) == start.context.span_id
    assert [link.context.span_id for link in handle_update.links] == [update.context.span_id]
    assert parent_of(audit) == start.context.span_id


def test_tracing_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPOTCHECK_TRACING", raising=False)
    assert configure_tracing("spotcheck-test") is None
    assert tracing_interceptors() == []
    monkeypatch.setenv("SPOTCHECK_TRACING", "off")
    assert configure_tracing("spotcheck-test") is None
    assert tracing_interceptors() == []


def test_unknown_tracing_mode_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTCHECK_TRACING", "jaeger")
    with pytest.raises(ValueError, match="SPOTCHECK_TRACING='jaeger' is not one of off, console, otlp"):
        configure_tracing("spotcheck-test")
    with pytest.raises(ValueError, match="SPOTCHECK_TRACING"):
        tracing_interceptors()
