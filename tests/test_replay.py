"""Saved histories of real runs (tests/histories/, written by `make histories`) replay against the current
workflow code: a change that would break running samples fails here, not in production."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from codec import spotcheck_data_converter
from domain.stages import Stage
from workflows.registry import all_workflows

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


def _load(path: Path) -> WorkflowHistory:
    # Files are named <test>-<n>__<workflow id>.json. Older ones (v1-…) carry no id: those samples were
    # started by SpotcheckClient, so under sample-<sample_no>, which the workflow checks at its start.
    raw = json.loads(path.read_text(encoding="utf-8"))
    if "__" in path.stem:
        workflow_id = path.stem.split("__", 1)[1]
    else:
        start = raw["events"][0]["workflowExecutionStartedEventAttributes"]
        order = json.loads(base64.b64decode(start["input"]["payloads"][0]["data"]))
        workflow_id = f"sample-{order['sample_no']}"
    return WorkflowHistory.from_json(workflow_id, raw)


def _stages(history: WorkflowHistory) -> set[str]:
    """Every Stage the run published, read from its search-attribute upserts."""
    stages = set()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if "Stage" in fields:
                stages.add(json.loads(fields["Stage"].data))
    return stages


def test_the_histories_reach_every_stage_and_branch() -> None:
    reached = set().union(*(_stages(_load(p)) for p in HISTORIES))
    assert {s.value for s in Stage} <= reached
    branches = {stage.split(":")[0] for stage in reached if ":" in stage}
    assert branches >= {"rectification", "credit", "enforcement", "recall", "certification", "platform", "lead"}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path) -> None:
    history = _load(path)
    replayer = Replayer(workflows=all_workflows(), data_converter=spotcheck_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
