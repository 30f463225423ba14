"""The sample's entries in the shared registers (enterprise fails, results bulletin, post-licence list,
linked sampling) and its report to the cross-region product case. The activities are called by name: the
registers are side effects owned by activities/registers.py and activities/product_case.py. Each takes
the facts of the sample's result, the same its branches start from (SampleResult)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.branches import SampleResult
    from workflows.clock import SampleClock

# How the sample runs a step's activity (DecisionProcess._do: an operator takes over a write that fails).
Do = Callable[..., Awaitable[Any]]


def _facts(inp: SampleResult) -> dict[str, Any]:
    return {
        "workflow_id": inp.sample_workflow_id,
        "order": inp.order.model_dump(mode="json"),
        "verdict": inp.verdict,
        "failed_items": inp.failed_items,
        "on": str(_today(inp)),
        "report_no": inp.report_no,
    }


def _today(inp: SampleResult) -> Any:
    return SampleClock(inp.clock_origin, inp.order.time_scale).now().date()


REGISTERS = {
    "enterprise_fail": ("register_enterprise_fail", "Record the fail of sample {no} in the enterprises' history"),
    "bulletin": ("register_bulletin", "Enter the result of sample {no} in the results bulletin"),
    "post_licence": ("register_post_licence", "Put the licensed producer on the post-licence inspection list"),
    "linked_sampling": ("register_linked_sampling", "Propose linked sampling of the risk finding for the next plan"),
}


async def register(which: str, inp: SampleResult, do: Do) -> None:
    """Enter the sample's result in one register (a key of REGISTERS)."""
    activity, summary = REGISTERS[which]
    await do(activity, _facts(inp), summary=summary.format(no=inp.order.sample_no))


async def report_to_product_case(inp: SampleResult, do: Do) -> None:
    """并案 check: the product's case learns of this fail (signal-with-start, by the activity)."""
    sample_id = inp.sample_workflow_id
    report = {
        "sample_no": inp.order.sample_no,
        "sample_workflow_id": sample_id,
        "enforcement_workflow_id": f"{sample_id}-enforcement",
        "region": inp.order.region,
        "batch": inp.order.product.batch,
        "product_name": inp.order.product.name,
        "failed_on": str(_today(inp)),
        "time_scale": inp.order.time_scale,
        "order": inp.order.model_dump(mode="json"),
        "clock_origin": inp.clock_origin.isoformat(),
        "failed_items": inp.failed_items,
        "report_no": inp.report_no,
        "evidence": [e.model_dump(mode="json") for e in inp.evidence],
        "notices": inp.notices,
    }
    await do("product_case_report_fail", report, summary="Report the fail to the product's cross-region case (并案 check)")
