"""CreditWorkflow (`sample-<no>-credit`): 信用约束与修复, the credit branch of a final fail.

publishing → listed → removed (expired) → closed. The listing is published with its dishonesty tier (minor,
general, serious: `domain/credit.py`; from the branch context or the order, default general) and takes its periods from
the rule versions in force on the publication day: it ends by itself at the tier's longest period or the
opinion's one year (rule credit_listing), whichever comes first; after the tier's shortest period
(credit_repair_wait_<tier>; none for a minor listing from 2026-04-01) the enterprise may apply for credit
repair: repair_acceptance (2 wd) → repair_review (15 wd) → approved: the listing ends early (repaired);
refused or rejected: back to listed, and a new application may be made later. An application before the
shortest period is refused with the first allowed day. The listing timer runs all the while, beside the
repair path. Alongside, the serious-dishonesty check (严重失信名单, Order 44): a 较重行政处罚 reported by the
enforcement branch (signal `enforcement_result`) proposes listing once for a credit officer's decision.

Runs recorded before the tiers (patch `CREDIT_TIERS`) replay as they ran: one year (credit_listing), repair
after rule credit_repair_wait, and a fail count (two fails within three years) as a second criterion.

Why the sample starts this branch with ParentClosePolicy.ABANDON and does not wait for it: the listing
lasts a year, far longer than the sample's other branches, and must outlive the sample without holding it
open for a year; if the sample closed with a TERMINATE policy the listing would never be removed. So
nothing here depends on the sample: its `branch_update` signals to a sample that has closed are dropped
(BranchProcess._tell_sample), and the enforcement branch's result reaches this workflow directly by id.

Continue-as-new (a long history, e.g. a flood of signals): only when every task is at a wait or done. The
interrupt (`_continue_due`, latched once seen) stops whichever wait sees it first; the listing year then
waits for the repair task, and the run for the serious-dishonesty check, each stopping at its own next wait
(or finishing: a repair granted meanwhile still ends the listing first). The new run (same workflow id)
carries the listing and repair-from deadlines, the serious basis, `listing_over` and whether the check is
done; the repair task resumes at its stage (listed / repair_acceptance / repair_review, `_runs`), the check
at the review it waited for, each wait with its deadline (`_resumed_waits`), and the year keeps its end.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.credit_records import CreditRecordActivities
    from domain.branches import BRANCHES, Branch, BranchInput, BranchReport
    from domain.credit import (
        OPINION_RULE,
        PUBLICITY_RULE,
        TIER_NAMES,
        heavy_penalty,
        longest_rule,
        publicity_end,
        repair_measures,
        repair_opens,
        repair_too_early,
        shortest_rule,
        tier_of,
    )
    from domain.decisions import Decision, DecisionKind, HeavyPenalty
    from domain.records import CreditFailCount, CreditListing, CreditListingChange
    from domain.regions import authority_label
    from domain.rules import Deadline
    from workflows.branch import BranchProcess
    from workflows.process import WaitInterrupted

APPLICATION = DecisionKind.CREDIT_REPAIR_APPLICATION
ACCEPTANCE = DecisionKind.CREDIT_REPAIR_ACCEPTANCE
REVIEW = DecisionKind.CREDIT_REPAIR_REVIEW
SERIOUS_REVIEW = DecisionKind.SERIOUS_DISHONESTY_REVIEW
REPAIR_KINDS = (APPLICATION, ACCEPTANCE, REVIEW)
HEAVY_KINDS = frozenset(k.value for k in HeavyPenalty)

# Dishonesty tiers and periods from the rule versions in force on publication (Order 36), the serious-dishonesty
# criterion of Order 44 (a 较重行政处罚 only): everything after publication in runs that saw this patch.
CREDIT_TIERS = "credit-tiers-order-36"
# Runs recorded before CREDIT_TIERS only: their criterion of two fails within three years (not Order 44's).
SERIOUS_LOOKBACK_MONTHS = 36
SERIOUS_MIN_FAILS = 2

PUBLICITY_SYSTEM = "国家企业信用信息公示系统"
# The branch's stages in order (a continued run skips the steps before the one it resumes at); the three
# listed stages are the repair task's, beside the listing year.
LISTED = ["listed", "repair_acceptance", "repair_review"]
ORDER = ["opened", "publishing", *LISTED, "removed", "closed"]


@workflow.defn
class CreditWorkflow(BranchProcess):
    SPEC = BRANCHES[Branch.CREDIT]

    @workflow.init
    def __init__(self, inp: BranchInput) -> None:
        self._setup_branch(inp, extra_check=self._too_early)
        # The listed enterprise: the sampled party unless the sample names another (e.g. the producer).
        party = inp.order.sampled_party
        self.credit_code = str(inp.context.get("credit_code") or party.credit_code)
        self.enterprise_name = str(inp.context.get("enterprise_name") or party.name)
        self.listing: Deadline | None = None
        self.repair_from: Deadline | None = None  # applications are taken only after this
        self.serious_basis: str | None = None  # why the serious-dishonesty criteria are met
        self.listing_over = False
        self.serious_done = False  # the serious-dishonesty check has ended (decided, or never met)
        self._serious: asyncio.Task[None] | None = None
        self._continuing = False  # the run is to continue as new: every wait stops (`_continue_due`)
        if state := self._resume_state:  # a continued run
            self.listing = Deadline.model_validate(state["listing"])
            self.repair_from = Deadline.model_validate(state["repair_from"])
            self.serious_basis, self.listing_over = state["serious_basis"], state["listing_over"]
            self.serious_done = state["serious_done"]

    @workflow.run
    async def run(self, inp: BranchInput) -> BranchReport:
        try:
            return await self._branch()
        except WaitInterrupted:
            # The history grew long: once the serious-dishonesty check is at its wait too (or done), go on in
            # a new run. The repair task has stopped already (`_listed_until_end_or_repair`).
            if self._serious is not None:
                try:
                    await self._serious
                except WaitInterrupted:
                    pass
            return await self._continue_as_new({
                "listing": self._deadline_json(self.listing), "repair_from": self._deadline_json(self.repair_from),
                "serious_basis": self.serious_basis, "listing_over": self.listing_over,
                "serious_done": self.serious_done,
            })

    async def _branch(self) -> BranchReport:
        """Publication, the year (beside credit repair and the serious-dishonesty check), removal; a continued
        run resumes at its stage (`_runs`)."""
        if self._runs("publishing", ORDER):
            tiered = self._patched(CREDIT_TIERS)
            if not tiered:
                fails = await self._count_fails()
                if fails >= SERIOUS_MIN_FAILS:
                    self.serious_basis = f"{fails} fails within three years (credit code {self.credit_code})"
            await self._publish_listing(tiered)
        if not self.serious_done:
            self._serious = asyncio.create_task(self._serious_dishonesty_check())
        if not self._resuming_after(LISTED[-1], ORDER):  # not continued once the listing had ended
            repaired = await self._listed_until_end_or_repair()
            await self._remove_listing(repaired)
            self.listing_over = True
        if self._serious is not None:
            await self._serious  # a pending proposal is still decided: the list is not the publicity listing
        return await self._close(self.data["removal_reason"])

    def _continue_due(self) -> bool:
        """Latched: once a wait has stopped for a new run, every other task stops at its next wait."""
        self._continuing = self._continuing or super()._continue_due()
        return self._continuing

    @staticmethod
    def _deadline_json(deadline: Deadline | None) -> dict[str, Any]:
        assert deadline is not None  # set by the publication, before any wait
        return deadline.model_dump(mode="json")

    # --- publication and removal ----------------------------------------------------------------

    async def _publish_listing(self, tiered: bool) -> None:
        await self._enter("publishing")
        publicity = await self._deadline(PUBLICITY_RULE)
        # Handed over at once; the rule's 20 working days are the latest lawful date, shown to monitors.
        published = self.clock.now()
        opinion = await self._deadline(OPINION_RULE, start=published)
        if tiered:
            # The tier is decided now, and each period is the version of its rule in force today.
            tier, why = tier_of(self.input.context, self.order.dishonesty_tier)
            longest = await self._deadline(longest_rule(tier), start=published)
            listing = publicity_end(longest, opinion)
            self.repair_from = await self._deadline(shortest_rule(tier), start=published)
            self.data.update({"dishonesty_tier": tier.value, "longest_until": str(longest.due_date)})
            self._event("tier", f"published as {TIER_NAMES[tier]} dishonesty information ({tier.value}, {why}); "
                        f"repair from {repair_opens(self.repair_from)}, publicity ends {listing.due_date} "
                        f"(rule {listing.rule_id})")
        else:
            tier, listing = None, opinion
            self.repair_from = await self._deadline("credit_repair_wait", start=published)
        self.listing = listing
        receipt = await self._hand_over(
            "credit_publicity", "publish_listing", "credit-publish", PUBLICITY_SYSTEM,
            f"公示 {self.enterprise_name} 产品质量监督抽查不合格信息 ({self.order.sample_no})",
            {
                "credit_code": self.credit_code, "enterprise_name": self.enterprise_name,
                "sample_no": self.order.sample_no, "product": self.order.product.model_dump(mode="json"),
                "failed_items": self.input.failed_items, "report_no": self.input.report_no,
                "authority": authority_label(self.order.region),
                "published_on": str(published.date()), "listed_until": str(listing.due_date),
            },
        )
        await self._notice("credit_publicity", "credit-publicity", {
            "enterprise_name": self.enterprise_name, "credit_code": self.credit_code,
            "published_on": str(published.date()), "listed_until": str(listing.due_date),
            "publicity_due": str(publicity.due_date), "listing_months": listing.length,
            "repair_months": self.repair_from.length, "basis": publicity.basis,
            "tier_name": TIER_NAMES[tier] if tier else None, "repair_basis": repair_measures(self.repair_from),
        })
        await self._do(CreditRecordActivities.credit_record_listing, CreditListing(
            workflow_id=workflow.info().workflow_id, sample_no=self.order.sample_no, credit_code=self.credit_code,
            enterprise_name=self.enterprise_name, published_at=published, publicity_due=publicity.due,
            listed_until=listing.due, dishonesty_tier=tier.value if tier else None,
            repair_from=self.repair_from.due if tier else None,
        ), summary="Record the credit listing")
        self.data.update({
            "credit_code": self.credit_code, "enterprise_name": self.enterprise_name,
            "published_at": str(published), "listed_until": str(listing.due_date),
            "repair_from": str(self._repair_from_date()), "publicity_reference": receipt.reference,
        })

    async def _remove_listing(self, repaired: Decision | None) -> None:
        reason = "repaired" if repaired else "expired"
        removal = None
        if repaired:
            # Carried out at once; the rule's 3 working days are the latest lawful date, shown to monitors.
            removal = await self._deadline("credit_repair_execution")
            await self._decision_notice(repaired, removal)
        # A decision that can no longer change the listing is refused with the reason, not "not awaited".
        for kind in REPAIR_KINDS:
            self.desk.inbox.pop(kind, None)
            self.desk.shut(kind, f"{kind.value} no longer accepted: the credit listing was removed ({reason})")
        await self._hand_over(
            "credit_publicity", "remove_listing", "credit-remove", PUBLICITY_SYSTEM,
            f"停止公示 {self.enterprise_name} 产品质量监督抽查不合格信息 ({self.order.sample_no}): "
            + ("信用修复" if repaired else "公示期满"),
            {"credit_code": self.credit_code, "sample_no": self.order.sample_no, "reason": reason,
             "removal_due": str(removal.due_date) if removal else None},
        )
        await self._change(removed_at=self.clock.now(), removal_reason=reason)
        self.data["removal_reason"] = reason
        await self._enter("removed")

    # --- the listing year and credit repair, side by side ----------------------------------------

    async def _listed_until_end_or_repair(self) -> Decision | None:
        """The approving decision when repair is granted before the listing ends, else None. Raises
        WaitInterrupted once the repair task has stopped at its wait too (the run continues as new)."""
        listing = self.listing
        assert listing is not None
        # A (hardened) run that starts as the year has ended starts no repair: cancelled at once, it could be
        # cut off mid-step (a signal to the sample whose cancellation never resolves). Older runs replay as they ran.
        if self.clock.now() < listing.due or not self._hardened():
            repair = asyncio.create_task(self._repair_until_granted())
            try:
                if await self._until(repair.done, listing.due, f"Credit listing ends {listing.due_date}",
                                     interrupt=self._continue_due):
                    return await repair
            except WaitInterrupted:
                return await repair  # WaitInterrupted at its wait; a repair granted meanwhile ends the listing
            # The year is up: whatever stage the repair was at, there is nothing left to repair.
            repair.cancel()
            try:
                await repair
            except asyncio.CancelledError:
                pass
        self._event("expired", f"the credit listing ended on {listing.due_date} (公示期满)")
        return None

    async def _repair_until_granted(self) -> Decision:
        """Applications, one at a time, until one is granted; a continued run starts at its stage."""
        while True:
            if self._runs("listed", ORDER):
                await self._await_application()
                applied = self.clock.now()
                self.desk.closed[APPLICATION] = (
                    f"a credit-repair application is already under way (filed {applied.date()})"
                )
                await self._change(repair_applied_at=applied, repair_outcome="applied")
                await self._enter("repair_acceptance")
            if self._runs("repair_acceptance", ORDER):
                acceptance = await self._await(ACCEPTANCE, "credit_repair_acceptance", interrupt=self._continue_due)
                if acceptance.outcome == "refused":
                    await self._repair_ends(acceptance)
                    continue
                await self._change(repair_outcome="accepted")
                await self._enter("repair_review")
            self._runs("repair_review", ORDER)
            review = await self._await(REVIEW, "credit_repair_decision", interrupt=self._continue_due)
            if review.outcome == "approved":
                await self._change(repair_outcome="approved", repair_reason=review.reason)
                self.data["repair"] = "approved"
                return review
            await self._repair_ends(review)

    async def _await_application(self) -> Decision:
        """Open to an application until the listing ends: no deadline of its own (the enterprise may never
        apply), so no reminder nor escalation; `_extra_problem` refuses one made too early. A continued run
        reopens it as it was, without announcing it again."""
        resumed = self._resumed_waits.pop(APPLICATION, None)
        listing = resumed or self.listing
        assert listing is not None
        self._open(APPLICATION, listing)
        if resumed is None:
            self._event("awaiting", f"credit repair may be applied for from {self._repair_from_date()} "
                        f"until the listing ends on {listing.due_date}")
            await self._enter("listed")
        else:
            await self._publish()
        await self._flush()
        await workflow.wait_condition(lambda: self._arrived(APPLICATION) or self._continue_due())
        if self._continue_due():
            raise WaitInterrupted(APPLICATION.value)
        return self._take(APPLICATION)

    async def _repair_ends(self, decision: Decision) -> None:
        """A refused or rejected application: the decision is issued and the listing continues."""
        await self._change(repair_outcome=decision.outcome, repair_reason=decision.reason)
        self.data["repair"] = decision.outcome
        await self._decision_notice(decision, None)

    async def _decision_notice(self, decision: Decision, removal: Deadline | None) -> None:
        assert self.listing is not None
        await self._notice("credit_repair_decision", f"credit-repair-{decision.request_id}", {
            "decision": decision.outcome, "reason": decision.reason or "",
            "enterprise_name": self.enterprise_name, "credit_code": self.credit_code,
            "published_on": str(self.listing.start.date()), "listed_until": str(self.listing.due_date),
            "removal_due": str(removal.due_date) if removal else None,
            # The measures the listing follows (the version in force when it was published), never a constant.
            "repair_measures": repair_measures(self.repair_from) if self.repair_from else "《市场监督管理信用修复管理办法》",
        })

    def _repair_from_date(self) -> date:
        """The first day an application is taken: after the shortest publicity period."""
        assert self.repair_from is not None
        return repair_opens(self.repair_from)

    def _too_early(self, decision: Decision) -> str | None:
        """An application before the shortest publicity period has passed is refused with the first allowed
        date (the refusal is audited and timelined like every refused decision)."""
        if decision.kind is APPLICATION and self.repair_from is not None:
            return repair_too_early(self.repair_from, self.clock.now())
        return None

    # --- serious-dishonesty list ------------------------------------------------------------------

    @workflow.signal(name="enforcement_result")
    def enforcement_result(self, *args: Any) -> None:
        """The enforcement branch's outcome, forwarded by the sample: {"heavy": bool, "heavy_kind": ...,
        "fine_amount": ...}. Only a 较重行政处罚 (heavy, Order 44 第二条) proposes the serious-dishonesty list.
        Internal (sealed by the sample); a malformed one shows in the timeline instead of being dropped unseen."""
        result = self._internal("enforcement_result", args)
        if result is None:
            return
        if not isinstance(result, dict) or not isinstance(result.get("heavy", False), bool):
            self._event("rejected", "enforcement_result ignored: expected {heavy: bool, heavy_kind, fine_amount}, "
                        "got " + type(result).__name__)
            return
        heavy, why = heavy_penalty(result)
        fine, kind = result.get("fine_amount"), result.get("heavy_kind")
        self.data["enforcement"] = {"heavy": heavy, "heavy_kind": kind if isinstance(kind, str) and kind in HEAVY_KINDS else None,
                                    "fine_amount": None if fine is None else str(fine)}
        self._event("enforcement_result", f"enforcement penalty reported: {why}"[:500])
        # Proposed once: a heavy penalty after an earlier proposal adds nothing; one after the listing is
        # gone comes too late for this branch.
        if heavy and self.serious_basis is None and not self.listing_over:
            self.serious_basis = why[:500]

    async def _serious_dishonesty_check(self) -> None:
        """Proposed once the criteria are met, then decided; a continued run resumes the review it waited for.
        Raises WaitInterrupted at a wait when the run is to continue as new."""
        if SERIOUS_REVIEW not in self._resumed_waits:
            await self._flush()
            await workflow.wait_condition(
                lambda: self.serious_basis is not None or self.listing_over or self._continue_due()
            )
            if self._continue_due():
                raise WaitInterrupted("serious-dishonesty criteria")
            if self.serious_basis is None:
                self.serious_done = True
                return
            self._event("serious_dishonesty", f"serious-dishonesty criteria met: {self.serious_basis}; "
                        "listing proposed")
            self.data["serious_dishonesty"] = "proposed"
            await self._change(serious_dishonesty="proposed", serious_basis=self.serious_basis)
        basis = self.serious_basis
        review = await self._await(SERIOUS_REVIEW, "serious_dishonesty_review", interrupt=self._continue_due)
        self.data["serious_dishonesty"] = review.outcome
        await self._change(serious_dishonesty=review.outcome)
        if review.outcome == "listed":
            await self._hand_over(
                "credit_publicity", "list_serious_dishonesty", "credit-serious-dishonesty", PUBLICITY_SYSTEM,
                f"列入严重违法失信名单 {self.enterprise_name} ({self.order.sample_no})",
                {"credit_code": self.credit_code, "sample_no": self.order.sample_no, "basis": basis,
                 "reason": review.reason},
            )
        self.serious_done = True
        await self._publish()

    # --- records ------------------------------------------------------------------------------

    async def _count_fails(self) -> int:
        fails = await self._do(CreditRecordActivities.credit_count_fails, CreditFailCount(
            credit_code=self.credit_code, sample_no=self.order.sample_no, as_of=self.clock.now(),
            months=SERIOUS_LOOKBACK_MONTHS,
        ), summary=f"Count the fails of {self.credit_code} within three years")
        self.data["fails_in_three_years"] = fails
        return fails

    async def _change(self, **fields: Any) -> None:
        await self._do(
            CreditRecordActivities.credit_update_listing,
            CreditListingChange(workflow_id=workflow.info().workflow_id, at=workflow.now(), **fields),
            summary="Update the credit listing: " + ", ".join(f"{k}={v}" for k, v in fields.items()),
        )
