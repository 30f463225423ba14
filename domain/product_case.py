"""Cross-region merge (并案, the opinion's task 14): the product key, the report every final fail sends to
its product case, and the merge rule.

Pure (no Temporal imports): the workflow, the activity and the tests share it.

The rule: fails of one product (producer credit code + brand + model) from at least two different regions
whose fail dates lie within one merge window of each other open ONE merged enforcement case. A fail of a
batch already reported (same non-empty batch) counts as one with the first: it never makes a region count,
so the same batch sampled twice never merges. Once a merged case is open, every later fail inside its window
joins it instead of opening a second case.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from domain.branches import Branch, BranchInput, branch_workflow_id
from domain.decisions import EvidenceRef
from domain.models import Party, SampleOrder

CASE_PREFIX = "case-"
MERGE_WINDOW_RULE = "merge_window"


# --- the product key -------------------------------------------------------------------------------


def producer_of(order: SampleOrder) -> Party:
    """The product's producer: the labelled producer, or the sampled party when sampled at the producer."""
    return order.labelled_producer or order.sampled_party


def _id_part(text: str, *, hyphen: bool) -> str:
    """One part of a workflow id: NFKC (full-width letters become ASCII), letters and digits of any script
    kept (CJK included), upper case, everything else one `_`. Brands lose their hyphens so that the first
    `-` after the credit code always ends the brand ("A-B"+"C" and "A"+"B-C" stay two products)."""
    text = unicodedata.normalize("NFKC", text).strip().upper()
    keep = "-._" if hyphen else "._"
    safe = "".join(ch if ch.isalnum() or ch in keep else "_" for ch in text)
    return re.sub(r"_+", "_", safe).strip("_") or "_"


def product_case_id(order: SampleOrder) -> str:
    """`case-<credit code>-<brand>-<model>`: one product case per product, whoever sampled it."""
    p = order.product
    return f"{CASE_PREFIX}{producer_of(order).credit_code}-{_id_part(p.brand, hyphen=False)}-" \
           f"{_id_part(p.model, hyphen=True)}"


def merged_case_id(case_id: str, n: int) -> str:
    return f"{case_id}-merged-{n}"


def batch_key(batch: str | None) -> str | None:
    """Batches compare without case, width or surrounding blanks; an empty batch is no batch."""
    if batch is None:
        return None
    key = unicodedata.normalize("NFKC", batch).strip().upper()
    return key or None


# --- what a final fail sends -----------------------------------------------------------------------


class FailReport(BaseModel):
    """One final fail, sent to its product case by signal-with-start (`report_fail`). It carries the
    sample's order and case file so that, when it is the first fail of a merge, the merged enforcement
    case can be opened from it."""

    sample_no: str
    sample_workflow_id: str
    enforcement_workflow_id: str = Field(description="the sample's enforcement branch, sample-<no>-enforcement")
    region: str = Field(description="the order's region (organising regulator)")
    batch: str | None = None
    product_name: str
    failed_on: date = Field(description="the day the fail became final, on the sample's clock")
    time_scale: float = Field(default=1.0, ge=1.0)
    order: SampleOrder
    clock_origin: datetime = Field(description="the sample's clock origin (for the merged case's clock)")
    failed_items: list[dict[str, Any]] = Field(default_factory=list)
    report_no: str | None = None
    evidence: list[EvidenceRef] = Field(default_factory=list)
    notices: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(cls, inp: BranchInput, failed_on: date) -> FailReport:
        """From what a post-handling branch is started with (the sample's final-fail data)."""
        o = inp.order
        return cls(
            sample_no=o.sample_no, sample_workflow_id=inp.sample_workflow_id,
            enforcement_workflow_id=branch_workflow_id(inp.sample_workflow_id, Branch.ENFORCEMENT.value),
            region=o.region, batch=o.product.batch, product_name=o.product.name, failed_on=failed_on,
            time_scale=o.time_scale, order=o, clock_origin=inp.clock_origin, failed_items=inp.failed_items,
            report_no=inp.report_no, evidence=inp.evidence, notices=inp.notices,
        )


# --- the product case's state ----------------------------------------------------------------------


class CaseFail(BaseModel):
    """One fail as the product case keeps it (small: no order)."""

    sample_no: str
    sample_workflow_id: str
    enforcement_workflow_id: str
    region: str
    batch: str | None = None
    report_no: str | None = Field(default=None, description="the test report (none in runs before it was kept)")
    failed_on: date
    window_ends: date = Field(description="last day of the merge window opened by this fail")
    duplicate_of: str | None = Field(default=None, description="the earlier sample of the same batch")
    merged_case: str | None = None
    followed: bool | None = Field(
        default=None, description="the sample's enforcement branch took `follow_merged_case` (False: gone)"
    )


class MergedCase(BaseModel):
    workflow_id: str
    opened_on: date = Field(description="fail date of its earliest member")
    window_ends: date = Field(description="end of the window of the fail that opened it: fails up to it join")
    members: list[str] = Field(description="sample numbers, in the order they joined")
    regions: list[str]
    stage: str = "opened"
    outcome: str | None = None


class ProductKey(BaseModel):
    """The product a case is about: producer credit code + brand + model, and how people name it."""

    case_id: str
    credit_code: str
    producer_name: str
    brand: str
    model: str
    product_code: str = Field(description="SAMR classification code of the first fail")
    product_name: str

    @classmethod
    def of(cls, order: SampleOrder) -> ProductKey:
        producer = producer_of(order)
        return cls(
            case_id=product_case_id(order), credit_code=producer.credit_code, producer_name=producer.name,
            brand=order.product.brand, model=order.product.model,
            product_code=order.product.classification_code, product_name=order.product.name,
        )

    @property
    def summary(self) -> str:
        """The Web UI's static summary: the product in one line."""
        return (f"并案 product case · {self.product_name} {self.brand} {self.model} · "
                f"{self.producer_name} ({self.credit_code})")


class ProductCaseState(BaseModel):
    """The product case's input: the product key when started, everything it keeps when it continues as
    new. Kept small: fails outside every open window leave `fails`, and only their dedup keys stay."""

    key: ProductKey
    fails: list[CaseFail] = Field(default_factory=list)
    merged: list[MergedCase] = Field(default_factory=list)
    merges_before: int = Field(default=0, description="merged cases already numbered (earlier runs)")
    reports: dict[str, FailReport] = Field(
        default_factory=dict, description="full reports of the fails that may still open a merge"
    )
    pending: list[Any] = Field(default_factory=list, description="signals not yet handled at continue-as-new")
    seen_samples: list[str] = Field(default_factory=list, description="sample numbers of dropped fails")
    seen_batches: dict[str, str] = Field(default_factory=dict, description="batch key → first sample, dropped")
    closes_at: datetime | None = Field(default=None, description="real time the quiet window ends")
    continue_after_events: int = Field(default=2000, ge=50, description="history length that continues as new")


class ProductCaseStatus(BaseModel):
    """The `status` query: the fails received and the merged case (the latest one, if any)."""

    key: ProductKey
    stage: str
    fails: list[CaseFail]
    merged_case_id: str | None
    merged: list[MergedCase]
    closes_at: datetime | None
    rejected: list[str] = Field(default_factory=list, description="signals that were not fail reports")


# --- the merge rule --------------------------------------------------------------------------------


class Assessment(BaseModel):
    duplicate_of: str | None = None
    join: str | None = Field(default=None, description="an open merged case the new fail follows")
    members: list[str] = Field(default_factory=list, description="a new merge: the fails that make it")
    followers: list[str] = Field(default_factory=list, description="a new merge: earlier duplicates following")
    regions: list[str] = Field(default_factory=list)

    @property
    def merges(self) -> bool:
        return bool(self.members)


def _within(a: CaseFail, b: CaseFail) -> bool:
    """Each lies within the other's merge window (either may be reported late)."""
    return a.failed_on <= b.window_ends and b.failed_on <= a.window_ends


def assess(fails: list[CaseFail], merged: list[MergedCase], new: CaseFail,
           seen_batches: dict[str, str] | None = None) -> Assessment:
    """What the new fail does, given the fails already received (in arrival order, `new` not among them)."""
    key = batch_key(new.batch)
    if key is not None:
        original = next((f for f in fails if batch_key(f.batch) == key), None)
        if original is not None:
            # The same batch counts once: follow whatever case the first one is part of, trigger nothing.
            return Assessment(duplicate_of=original.sample_no, join=original.merged_case)
        if seen_batches and key in seen_batches:
            return Assessment(duplicate_of=seen_batches[key])
    open_case = next((m for m in reversed(merged) if m.opened_on <= new.failed_on <= m.window_ends), None)
    if open_case is not None:
        return Assessment(join=open_case.workflow_id)
    counted = [f for f in fails if f.duplicate_of is None and f.merged_case is None and _within(f, new)]
    regions = sorted({f.region for f in counted} | {new.region})
    if len(regions) < 2:
        return Assessment()
    members = [f.sample_no for f in counted]
    followers = [f.sample_no for f in fails if f.duplicate_of in members and f.merged_case is None]
    return Assessment(members=[*members, new.sample_no], followers=followers, regions=regions)
