"""EnforcementWorkflow: the enforcement hand-off of a sample (移交执法稽查) and, where a crime is suspected,
the criminal transfer (行刑衔接). Workflow id `sample-<no>-enforcement`, or `case-…` for a cross-region merged
case started with `merged_samples` in its context.

Stages: handed_over (the 案件移送函 and case file are with enforcement; filing decision within rule
case_filing, extended once) → filed (outcome within rule case_handling from filing, extended once) →
crime_review (transfer decision within rule crime_decision) → transferred (the public security organ's
receipt within rule crime_transfer) → closed. Outcomes: not_filed, penalty, no_penalty, transferred, merged.

A cross-region merged case takes over by the `follow_merged_case` signal at any point before the branch
closes: the branch then records whom it follows and closes with outcome `merged` at once.

A long history (a flood of signals, a long life) cuts a wait short too: the branch continues as new at that
wait (same workflow id) and the new run resumes it with the deadline in force, skipping the steps done.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.enforcement_records import EnforcementRecordActivities
    from domain.branches import BRANCHES, Branch, BranchInput, BranchReport
    from domain.decisions import CaseFilingData, CaseOutcomeData, Decision, DecisionKind
    from domain.records import EnforcementCaseChange
    from domain.regions import authority_label
    from domain.rules import Deadline
    from domain.visibility import MERGED_CASE
    from workflows.branch import BranchProcess
    from workflows.process import WaitInterrupted

# Reasons the case transfer letter words itself; any other text is quoted as given.
REASON_CODES = (
    "final_fail", "refusal", "rectification_missed", "rectification_rejected", "delisting_refused", "lead",
    "merged_case",
)
# Waits whose legal period may be extended once with approval (decision outcome `extended`).
EXTENSIBLE = frozenset({DecisionKind.CASE_FILING, DecisionKind.CASE_OUTCOME})
# The stages along any path (a continued run skips the steps before the one it resumes at).
STAGES = ("opened", "handed_over", "filed", "crime_review", "transferred", "closed")


def reason_code(reason: str) -> str | None:
    """The known reason in a reason text: `refusal`, or `rectification: rectification_missed` as the
    sample words a branch's enforcement lead; None for free text."""
    for token in re.split(r"[^a-z_]+", reason.lower()):
        if token in REASON_CODES:
            return token
    return None


@workflow.defn
class EnforcementWorkflow(BranchProcess):
    SPEC = BRANCHES[Branch.ENFORCEMENT]

    @workflow.init
    def __init__(self, inp: BranchInput) -> None:
        self._setup_branch(inp, extra_check=self._case_problem)
        # Tolerant of what the starter sends: a malformed entry must not wedge the case, it is left out.
        self.merged_samples = [dict(s) for s in inp.context.get("merged_samples") or [] if isinstance(s, dict)]
        fallback = "refusal" if inp.verdict == "refused" else "final_fail"
        self.reason = str(inp.context.get("reason") or fallback)
        self.followed_case: str | None = None
        self.extended: set[DecisionKind] = set()
        self.case_no: str | None = None
        self.handling: Deadline | None = None  # the handling period in force, from the filing
        self.suspicion: str | None = None  # why a crime is suspected, for the transfer letter
        self.letter_sent = False  # the 案件移送函 is out: a sample joining later gets a supplementary letter
        self._letters = asyncio.Lock()  # a joining sample's letter never races the first one
        if (state := self._resume_state):  # a continued run: as the previous run left it (`_state`)
            self.merged_samples, self.reason = list(state["merged_samples"]), str(state["reason"])
            self.followed_case, self.case_no = state["followed_case"], state["case_no"]
            self.extended = {DecisionKind(k) for k in state["extended"]}
            self.handling = None if state["handling"] is None else Deadline.model_validate(state["handling"])
            self.suspicion = state["suspicion"]
            self.letter_sent = bool(state.get("letter_sent", True))  # older runs carried only waits past it

    # --- signals -------------------------------------------------------------------------------

    @workflow.signal(name="follow_merged_case")
    def follow_merged_case(self, *args: Any) -> None:
        """A cross-region merged case took over (issue 3 item 11): close in its favour, unless closed.
        Internal: sealed by the product case; anything else is refused and audited."""
        case_workflow_id = self._internal("follow_merged_case", args)
        if (
            self.stage == "closed" or self.followed_case is not None or not isinstance(case_workflow_id, str)
            or not case_workflow_id.strip() or case_workflow_id == workflow.info().workflow_id
        ):
            return
        self.followed_case = case_workflow_id.strip()

    @workflow.signal(name="add_merged_sample")
    async def add_merged_sample(self, *args: Any) -> None:
        """A merged case's product case adds a sample that failed within the merge window after the case
        opened: it joins the case file, and once the transfer letter is out a supplementary letter lists every
        sample. Internal: sealed by the product case; anything else is refused and audited."""
        entry = self._internal("add_merged_sample", args)
        if not self.merged_samples or not isinstance(entry, dict) or not isinstance(entry.get("sample_no"), str):
            return  # only a merged case takes samples; junk changes nothing
        if self.stage == "closed" or any(s.get("sample_no") == entry["sample_no"] for s in self.merged_samples):
            return
        sample = {k: (str(entry[k])[:128] if entry.get(k) is not None else None)
                  for k in ("sample_no", "workflow_id", "region", "batch", "report_no")}
        self.merged_samples.append(sample)
        self._event("joined", f"sample {sample['sample_no']} ({sample['region']}) joins the merged case")
        async with self._letters:
            if self.letter_sent and self.stage != "closed":
                await self._supplement(sample)
            else:
                await self._record_case()

    def _case_problem(self, decision: Decision) -> str | None:
        """One extension per period; a filed case carries its case number."""
        kind = decision.kind
        if kind in EXTENSIBLE and decision.outcome == "extended" and kind in self.extended:
            period = "filing" if kind is DecisionKind.CASE_FILING else "handling"
            return f"{kind.value}=extended: the {period} period was already extended once; no second extension"
        if kind is DecisionKind.CASE_FILING and decision.outcome == "filed":
            case_no = decision.data.get("case_no")
            if not (isinstance(case_no, str) and case_no.strip()):
                return "data.case_no: a filed case must carry its case number (立案号)"
        return None

    # --- the branch ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: BranchInput) -> BranchReport:
        if inp.carried is None:
            what = (f"merged case of {len(self.merged_samples)} samples" if self.merged_samples
                    else f"sample {inp.order.sample_no}")
            self._event("started", f"enforcement hand-off of the {what}: {self.reason}")
        try:
            return await self._proceed()
        except WaitInterrupted:  # a merged case took over, or the history grew long (`_cut_short`)
            if not self._merged():
                await self._settle()  # a merged case taking over meanwhile is followed, not carried
            if self._merged():
                return await self._follow()
            return await self._continue_as_new(self._state())

    async def _proceed(self) -> BranchReport:
        """opened → handed_over → filed; a continued run resumes at its stage's wait (`_runs`)."""
        if self._runs("handed_over", STAGES):
            # Resumed at the filing wait: the letter is out and the period in force is the one carried.
            filing = self._resumed_waits.pop(DecisionKind.CASE_FILING, None)
            if filing is None:
                filing = await self._deadline("case_filing")
                async with self._letters:
                    await self._transfer_case(filing)
                    self.letter_sent = True
                await self._enter("handed_over")
            decision, _ = await self._await_extensible(DecisionKind.CASE_FILING, filing, "filing_due")
            if decision.outcome == "not_filed":
                await self._record_case(filing_outcome="not_filed", closed_outcome="not_filed")
                return await self._close("not_filed")
            self.case_no = CaseFilingData.model_validate(decision.data).case_no
            await self._record_case(filing_outcome="filed", case_no=self.case_no)
            await self._enter("filed")
        return await self._handle_case()

    async def _handle_case(self) -> BranchReport:
        if not self._resuming_after("filed", STAGES):
            self.handling = self._resumed_waits.pop(DecisionKind.CASE_OUTCOME, None)
            if self.handling is None:
                self.handling = await self._deadline("case_handling")  # runs from the filing, now
                await self._record_case(outcome_due=self.handling.due_date)
        while True:
            if self._runs("filed", STAGES):
                assert self.handling is not None
                decision, self.handling = await self._await_extensible(
                    DecisionKind.CASE_OUTCOME, self.handling, "outcome_due"
                )
                if decision.outcome != "crime_suspected":
                    return await self._conclude(decision)
                self.suspicion = decision.reason
            if await self._crime_review():
                return await self._close("transferred")
            # Not transferred: the administrative case goes on, under the same handling period.
            await self._enter("filed")
            assert self.handling is not None
            self.handling = self._resumed(self.handling)

    async def _conclude(self, decision: Decision) -> BranchReport:
        """The case's administrative outcome: a penalty, or none."""
        if decision.outcome == "penalty":
            data = CaseOutcomeData.model_validate(decision.data)
            await self._record_case(outcome="penalty", fine_amount=data.fine_amount, heavy=data.heavy,
                                    closed_outcome="penalty")
            # The sample forwards this to the credit branch (a heavy penalty counts for its check).
            self.data = {"fine_amount": None if data.fine_amount is None else str(data.fine_amount),
                         "heavy": data.heavy}
            if data.heavy_kind is not None:  # which 较重行政处罚 (Order 44 第二条), for the credit branch's proposal
                self.data["heavy_kind"] = data.heavy_kind.value
            return await self._close("penalty")
        await self._record_case(outcome="no_penalty", closed_outcome="no_penalty")
        return await self._close("no_penalty")

    async def _await_extensible(
        self, kind: DecisionKind, deadline: Deadline, due_column: str
    ) -> tuple[Decision, Deadline]:
        """Wait for `kind`; an approved extension (once, `_case_problem` refuses a second) moves the due
        date by the rule's extension_length. Returns the decision and the deadline in force."""
        while True:
            decision = await self._await(kind, deadline.rule_id, deadline=deadline, interrupt=self._cut_short)
            if decision.outcome != "extended":
                return decision, deadline
            self.extended.add(kind)
            deadline = await self._extend(deadline)
            self._event("extended", f"{deadline.title} extended to {deadline.due_date}: {decision.reason}")
            await self._record_case(**{due_column: deadline.due_date})

    async def _crime_review(self) -> bool:
        """涉嫌犯罪 (`suspicion`): decide within 3 days; a transfer goes to the public security organ within
        24 hours. True when transferred and its receipt recorded."""
        transfer: Deadline | None = None  # resumed at the receipt: its wait keeps its deadline (`_resumed_waits`)
        if self._runs("crime_review", STAGES):
            if DecisionKind.CRIME_TRANSFER_DECISION not in self._resumed_waits:  # not resumed at this wait
                await self._enter("crime_review")
            decision = await self._await(DecisionKind.CRIME_TRANSFER_DECISION, "crime_decision",
                                         interrupt=self._cut_short)
            await self._record_case(crime_decision=decision.outcome)
            if decision.outcome == "no_transfer":
                self._event("no_transfer", f"suspected crime not transferred: {decision.reason}")
                return False
            transfer = await self._transfer_crime(decision)
        self._runs("transferred", STAGES)
        await self._await(DecisionKind.CRIME_TRANSFER_RECEIPT, "crime_transfer", deadline=transfer,
                          interrupt=self._cut_short)
        await self._record_case(transfer_receipt_at=self.clock.now(), closed_outcome="transferred")
        return True

    async def _transfer_crime(self, decision: Decision) -> Deadline:
        """The 涉嫌犯罪案件移送书 to the public security organ; the deadline of its receipt."""
        transfer = await self._deadline("crime_transfer")
        self._stop_if_followed()
        police = f"{self.order.region} 公安机关"
        await self._notice("crime_transfer", "crime-transfer", {
            **self._case_context(),
            "recipient": police,
            "case_no": self.case_no,
            "suspicion": self.suspicion or "",
            "approval": decision.reason or "",
            "basis": transfer.basis,
            "case_notices": [{"title": n["title"], "sha256": n["sha256"]} for n in self.notices],
        })
        letter = self.notices[-1]
        self._stop_if_followed()
        await self._hand_over(
            "public_security", "transfer_crime", "crime-transfer", police,
            f"涉嫌犯罪案件移送书: {self._subject()}",
            {**self._case_payload(), "case_no": self.case_no, "suspicion": self.suspicion,
             "letter": {"title": letter["title"], "sha256": letter["sha256"]},
             "transfer_due": transfer.due.isoformat()},
        )
        await self._record_case(transferred_at=self.clock.now())
        await self._enter("transferred")
        return transfer

    async def _follow(self) -> BranchReport:
        case = self.followed_case
        assert case is not None
        self._event("merged", f"a cross-region merged case took over: {case}")
        await self._record_case(followed_case=case, closed_outcome="merged")
        self.data = {"merged_case": case}
        return await self._close("merged")

    # --- a merged case taking over --------------------------------------------------------------
    # The case stops at its next step or wait, never by cancelling the step under way: an activity cut off
    # in flight races its own completion (the time-skipping server then refuses the workflow task for good).

    def _merged(self) -> bool:
        return self.followed_case is not None

    def _cut_short(self) -> bool:
        """Every wait's interrupt: a merged case took over, or the history is long (continue as new)."""
        return self._merged() or self._continue_due()

    def _state(self) -> dict[str, Any]:
        """What the later steps need in a continued run (JSON; restored in `__init__`)."""
        return {
            "merged_samples": self.merged_samples, "reason": self.reason, "followed_case": self.followed_case,
            "case_no": self.case_no, "extended": sorted(k.value for k in self.extended),
            "handling": None if self.handling is None else self.handling.model_dump(mode="json"),
            "suspicion": self.suspicion, "letter_sent": self.letter_sent,
        }

    def _stop_if_followed(self) -> None:
        if self._merged():
            raise WaitInterrupted(f"merged case {self.followed_case} took over")

    # --- the case file -------------------------------------------------------------------------

    async def _transfer_case(self, filing: Deadline) -> None:
        """Render the 案件移送函 with the case file and hand it to the enforcement system."""
        self._stop_if_followed()
        extra: dict[str, Any] = {
            **self._case_context(),
            "recipient": self._enforcement_recipient(),
            "filing_due": str(filing.due_date),
            "filing_days": filing.length,
            "filing_unit": filing.unit,
            "filing_basis": filing.basis,
        }
        if self.merged_samples:  # a merged case is numbered after itself, not after one of its samples
            extra["notice_no"] = f"{workflow.info().workflow_id}-{len(self.notices) + 1:02d}"
        await self._notice("case_transfer", "case-transfer", extra)
        letter = self.notices[-1]
        self._stop_if_followed()
        receipt = await self._hand_over(
            "enforcement", "transfer_case", "case-transfer", self._enforcement_recipient(),
            f"案件移送函: {self._subject()}",
            {**self._case_payload(), "letter": {"title": letter["title"], "sha256": letter["sha256"]},
             "filing_due": str(filing.due_date)},
        )
        await self._record_case(handed_over_at=self.clock.now(), handover_reference=receipt.reference,
                                filing_due=filing.due_date)

    async def _supplement(self, sample: dict[str, Any]) -> None:
        """补充移送函: the case file again, now listing every sample, with the one that joined named."""
        step = f"case-transfer-supplement-{sample['sample_no']}"
        await self._notice("case_transfer", step, {
            **self._case_context(), "recipient": self._enforcement_recipient(), "supplement": sample,
            "notice_no": f"{workflow.info().workflow_id}-{len(self.notices) + 1:02d}",
        })
        letter = self.notices[-1]
        await self._hand_over(
            "enforcement", "transfer_case", step, self._enforcement_recipient(),
            f"补充案件移送函: {self._subject()} (+{sample['sample_no']})",
            {**self._case_payload(), "joined": sample,
             "letter": {"title": letter["title"], "sha256": letter["sha256"]}},
        )
        await self._record_case()

    # --- what monitors see ------------------------------------------------------------------------

    def _kind(self) -> str:
        return MERGED_CASE if self.merged_samples else super()._kind()

    def _related(self) -> list[tuple[str, str]]:
        if self.merged_samples:  # a merged case: its product case (as its "sample") and every sample in it
            return [("product case", self.input.sample_workflow_id),
                    *((f"sample {s['sample_no']} ({s.get('region')})", str(s["workflow_id"]))
                      for s in self.merged_samples if s.get("workflow_id"))]
        followed = [("merged case it follows", self.followed_case)] if self.followed_case else []
        return [*super()._related(), *followed]

    def _case_context(self) -> dict[str, Any]:
        return {"reason": self.reason, "reason_code": reason_code(self.reason),
                "merged_samples": self.merged_samples}

    def _case_payload(self) -> dict[str, Any]:
        inp = self.input
        return {
            "case": workflow.info().workflow_id,
            "sample_no": None if self.merged_samples else self.order.sample_no,
            "merged_samples": self.merged_samples,
            "reason": self.reason,
            "product": self.order.product.model_dump(mode="json"),
            "party": self.order.sampled_party.model_dump(mode="json"),
            "report_no": inp.report_no,
            "failed_items": inp.failed_items,
            "notices": inp.notices,
            "evidence": [e.model_dump(mode="json") for e in inp.evidence],
        }

    def _enforcement_recipient(self) -> str:
        # 属地管辖: the enforcement department where the party is; a merged case goes to the producer's.
        party = self.order.sampled_party
        if self.merged_samples and self.order.labelled_producer is not None:
            party = self.order.labelled_producer
        return authority_label(party.region) + "执法稽查部门"

    def _subject(self) -> str:
        p = self.order.product
        which = (f"{len(self.merged_samples)} 批次并案 ({workflow.info().workflow_id})" if self.merged_samples
                 else self.order.sample_no)
        return f"{which} {p.name} {p.brand} {p.model}"

    # --- deadlines and records -----------------------------------------------------------------

    async def _extend(self, deadline: Deadline) -> Deadline:
        """The same period from the same start with the rule's one extension added."""
        return await self._deadline(deadline.rule_id, start=deadline.start, extended=True)

    def _resumed(self, deadline: Deadline) -> Deadline:
        """A period waited on again: no second reminder for a reminder time already gone by."""
        if deadline.remind_at is not None and deadline.remind_at <= self.clock.now():
            return deadline.model_copy(update={"remind_at": None})
        return deadline

    async def _record_case(self, **changes: Any) -> None:
        await self._do(
            EnforcementRecordActivities.enforcement_record_case,
            EnforcementCaseChange(
                workflow_id=workflow.info().workflow_id,
                sample_no=None if self.merged_samples else self.order.sample_no,
                merged_samples=self.merged_samples or None,
                reason=self.reason,
                at=workflow.now(),
                **changes,
            ),
            summary=f"Record the enforcement case of {self._subject()}: {', '.join(changes) or 'its samples'}",
        )
