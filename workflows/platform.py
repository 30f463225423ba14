"""PlatformWorkflow (网抽, `sample-<no>-platform`): the failed product's listing is taken down through the
platform's 监管处置自动触发 channel (电子商务法 Art. 29), and the shop's fail is recorded; a shop failing in
consecutive years goes on the key list for follow-up sampling (the opinion, tasks 11 and 13).

opened → delisting_requested (notice, handover, shop fail) → awaiting_confirmation → closed
(`delisted`, or `refused` with the refusal as the enforcement lead; `not_applicable` for offline samples).
A long history continues as new at the wait, which the new run resumes with its deadline."""

from __future__ import annotations

from datetime import date, timedelta, timezone

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.platform_records import PlatformRecords
    from activities.registers import Registers
    from domain.branches import BRANCHES, Branch, BranchInput, BranchReport
    from domain.decisions import DecisionKind, DelistConfirmationData
    from domain.models import PlatformListing
    from domain.records import PlatformClosing, PlatformRequest, RegisterRequest
    from workflows.branch import BranchProcess
    from workflows.process import WaitInterrupted

# China has no daylight saving: a fixed offset gives the calendar date without a tz database in the sandbox.
CHINA = timezone(timedelta(hours=8))
# The stages in order: a continued run skips the steps before the one it resumes at.
STAGES = ["delisting_requested", "awaiting_confirmation"]


@workflow.defn
class PlatformWorkflow(BranchProcess):
    SPEC = BRANCHES[Branch.PLATFORM]

    @workflow.init
    def __init__(self, inp: BranchInput) -> None:
        self._setup_branch(inp)

    @workflow.run
    async def run(self, inp: BranchInput) -> BranchReport:
        listing = self.order.platform
        if listing is None or not self.order.purchased:
            self._event("not_applicable", "not bought online or in a livestream: no listing to delist")
            return await self._close("not_applicable")
        try:
            return await self._steps(listing)
        except WaitInterrupted:  # the history grew long (`_continue_due`): go on in a new run, same wait
            return await self._continue_as_new({})  # what the later steps need is in `data` and the input

    async def _steps(self, listing: PlatformListing) -> BranchReport:
        """The request, then the wait; a continued run resumes at the wait (`_runs`) with the deadline it had."""
        if self._runs("delisting_requested", STAGES):
            await self._request(listing)
            await self._enter("awaiting_confirmation")
        self._runs("awaiting_confirmation", STAGES)
        answer = await self._await(DecisionKind.DELIST_CONFIRMATION, "delist_confirmation",
                                   interrupt=self._continue_due)
        confirmed = DelistConfirmationData.model_validate(answer.data)
        outcome = answer.outcome  # delisted | refused
        self.data.update({"confirmation": outcome, "platform_ticket": confirmed.platform_ticket})
        await self._do(
            PlatformRecords.platform_record_closing,
            PlatformClosing(workflow_id=workflow.info().workflow_id, confirmation=outcome, reason=answer.reason,
                            confirmed_at=confirmed.delisted_at or self.clock.now(), closed_outcome=outcome),
            summary=f"Record that the platform answered {outcome} for listing {listing.listing_id}",
        )
        if outcome == "refused":
            # A platform that will not take a failed product down is itself a matter for enforcement.
            return await self._close("refused", enforcement_lead=f"平台拒绝下架不合格产品链接：{answer.reason}")
        return await self._close("delisted")

    async def _request(self, listing: PlatformListing) -> None:
        """The delisting request: notice, hand-over to the platform, the shop's fail, the request's row."""
        no = self.order.sample_no
        await self._enter("delisting_requested")
        due = await self._deadline("platform_delisting")
        await self._notice("delisting_request", "delisting-request",
                           {"due": str(due.due_date), "due_days": due.length, "notice_no": f"{no}-XJ"})
        notice = self.notices[-1]
        receipt = await self._hand_over(
            "platform", "delist", "delist-request", listing.platform,
            f"监管处置自动触发：下架 {listing.shop_name} 商品 {listing.listing_id}（抽样单 {no}）",
            {"sample_no": no, "shop_name": listing.shop_name, "shop_id": listing.shop_id,
             "listing_id": listing.listing_id, "listing_url": listing.listing_url,
             "livestream_room": listing.livestream_room, "failed_items": self.input.failed_items,
             "due": str(due.due_date), "notice_sha256": notice.get("sha256"), "basis": "电子商务法第二十九条"},
        )
        key_listed = await self._shop_fail()
        self.data.update({"listing_id": listing.listing_id, "shop": listing.shop_name, "handover": receipt.reference,
                          "delist_due": str(due.due_date), "key_listed": key_listed})
        await self._record_request(PlatformRequest(
            workflow_id=workflow.info().workflow_id, sample_no=no, platform=listing.platform,
            shop=listing.shop_name, listing_id=listing.listing_id, requested_at=self.clock.now(),
            handover_reference=receipt.reference, due=due.due, key_listed=key_listed,
        ))

    async def _shop_fail(self) -> bool:
        """The shop's fail on the verdict's date (given by the sample, else today on its clock)."""
        failed_on = self.input.context.get("failed_on")
        on = date.fromisoformat(str(failed_on)) if failed_on else self.clock.now().astimezone(CHINA).date()
        key_listed: bool = await self._do(
            Registers.register_shop_fail,
            RegisterRequest(workflow_id=self.input.sample_workflow_id, order=self.order, verdict=self.input.verdict,
                            failed_items=self.input.failed_items, on=on, report_no=self.input.report_no,
                            at=self.clock.now()),
            summary=f"Record the shop's fail of sample {self.order.sample_no}; key list on consecutive years",
        )
        if key_listed:
            self._event("key_list", "the shop failed in consecutive years: it is on the key list (重点监管网店) "
                        "and a sampling target for the next plans")
        return key_listed

    async def _record_request(self, request: PlatformRequest) -> None:
        await self._do(
            PlatformRecords.platform_record_request, request,
            summary=f"Record the delisting request for listing {request.listing_id}",
        )
