"""The sample's calls into the shared registers (enterprise fails, results bulletin, post-licence list,
linked sampling) and the cross-region product case. Activities are called by name: the registers are
side effects owned by activities/registers.py and activities/product_case.py."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows.process import ACTIVITY_TIMEOUT, RETRY


class RegisterCalls:
    def __init__(self, sample: Any) -> None:
        self.sample = sample

    def _base(self) -> dict[str, Any]:
        s = self.sample
        return {
            "workflow_id": workflow.info().workflow_id,
            "order": s.order.model_dump(mode="json"),
            "verdict": s.verdict.value,
            "failed_items": s.failed_items,
            "on": str(s.clock.now().date()),
            "report_no": s.report_no,
        }

    async def _call(self, activity: str, arg: dict[str, Any], summary: str) -> Any:
        return await workflow.execute_activity(
            activity, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY, summary=summary,
            cancellation_type=ActivityCancellationType.ABANDON
        )

    async def enterprise_fail(self) -> None:
        await self._call("register_enterprise_fail", self._base(),
                         f"Record the fail of sample {self.sample.order.sample_no} in the enterprises' history")

    async def bulletin(self) -> None:
        await self._call("register_bulletin", self._base(),
                         f"Enter the result of sample {self.sample.order.sample_no} in the results bulletin")

    async def post_licence(self) -> None:
        await self._call("register_post_licence", self._base(),
                         "Put the licensed producer on the post-licence inspection list")

    async def linked_sampling(self) -> None:
        await self._call("register_linked_sampling", self._base(),
                         "Propose linked sampling of the risk finding for the next plan")

    async def product_case(self) -> None:
        s = self.sample
        report = {
            "sample_no": s.order.sample_no,
            "sample_workflow_id": workflow.info().workflow_id,
            "enforcement_workflow_id": f"{workflow.info().workflow_id}-enforcement",
            "region": s.order.region,
            "batch": s.order.product.batch,
            "product_name": s.order.product.name,
            "failed_on": str(s.clock.now().date()),
            "time_scale": s.order.time_scale,
            "order": s.order.model_dump(mode="json"),
            "clock_origin": s.clock.origin.isoformat(),
            "failed_items": s.failed_items,
            "report_no": s.report_no,
            "evidence": [e.model_dump(mode="json") for e in s.evidence],
            "notices": [{k: n.get(k) for k in ("template", "title", "sha256")} for n in s.notices],
        }
        await self._call("product_case_report_fail", report,
                         "Report the fail to the product's cross-region case (并案 check)")
