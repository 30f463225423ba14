"""Custom search attributes: what monitors filter on in the Web UI. Never one called `Status`: it clashes
with the UI's own column."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from domain.branches import Branch
from domain.models import SampleOrder
from domain.regions import region_name

SAMPLE_NO = SearchAttributeKey.for_keyword("SampleNo")
PRODUCT_CODE = SearchAttributeKey.for_keyword("ProductCode")
REGION = SearchAttributeKey.for_keyword("Region")
CHANNEL = SearchAttributeKey.for_keyword("Channel")
TASK_TYPE = SearchAttributeKey.for_keyword("TaskType")
STAGE = SearchAttributeKey.for_keyword("Stage")
VERDICT = SearchAttributeKey.for_keyword("Verdict")
ENTERPRISE_CODE = SearchAttributeKey.for_keyword("EnterpriseCode")
PLAN_ID = SearchAttributeKey.for_keyword("PlanId")
# What a workflow is: `sample`, a branch (`rectification`, `credit`, …: domain/branches.py), `merged_case`
# or `product_case`. Every count of samples filters on it: branches carry their sample's attributes.
PROCESS_KIND = SearchAttributeKey.for_keyword("ProcessKind")
# The region's name (GB/T 2260, domain/regions.py) beside its code, for monitors who read names. A list of
# one: the dev server's SQLite visibility holds at most 10 Keyword attributes (all taken); `RegionName =
# "杭州市"` reads the same.
REGION_NAME = SearchAttributeKey.for_keyword_list("RegionName")
# A list: some decisions may come from more than one role; `AwaitingRole = "lab"` matches any member.
AWAITING_ROLE = SearchAttributeKey.for_keyword_list("AwaitingRole")
# The roles whose wait is overdue (a subset of AwaitingRole): on a sample, its own and its open branches'.
OVERDUE_ROLE = SearchAttributeKey.for_keyword_list("OverdueRole")
# The most urgent wait's deadline: the real time the earliest open wait's timer fires.
NEXT_DEADLINE = SearchAttributeKey.for_datetime("NextDeadline")
OVERDUE = SearchAttributeKey.for_bool("Overdue")
# A write failed for good and the process waits for an operator (`operator_retry`); set once it happens.
NEEDS_OPERATOR = SearchAttributeKey.for_bool("NeedsOperator")
# An open wait's deadline is an estimate (its year's holiday schedule is not known yet): what
# `spotcheck calendar load` looks for to recompute.
ESTIMATED_DEADLINE = SearchAttributeKey.for_bool("EstimatedDeadline")

ALL = (
    SAMPLE_NO, PRODUCT_CODE, REGION, CHANNEL, TASK_TYPE, STAGE, VERDICT,
    ENTERPRISE_CODE, PLAN_ID, AWAITING_ROLE, NEXT_DEADLINE, OVERDUE, NEEDS_OPERATOR, ESTIMATED_DEADLINE,
    PROCESS_KIND, REGION_NAME, OVERDUE_ROLE,
)

# ProcessKind values besides the branch names.
SAMPLE = "sample"
MERGED_CASE = "merged_case"
PRODUCT_CASE = "product_case"
PLAN = "plan"  # a sampling plan (workflows/plan.py): its Stage is the plan's (drawing, starting, running, closed)
PROCESS_KINDS = (SAMPLE, *(b.value for b in Branch), MERGED_CASE, PRODUCT_CASE, PLAN)


def identity_attributes(kind: str, region: str | None = None) -> list[SearchAttributePair[Any]]:
    """What a workflow is and where (ProcessKind, RegionName): set at its start, and by its first upsert
    when its starter did not set them."""
    name = region_name(region) if region else None
    return [SearchAttributePair(PROCESS_KIND, kind), *([SearchAttributePair(REGION_NAME, [name])] if name else [])]


def order_attributes(order: SampleOrder) -> list[SearchAttributePair[Any]]:
    """The attributes an order fixes for good (what monitors filter samples by). A sample sets them itself
    at its first step when its starter did not (the `temporal` CLI, another SDK: docs/contract.md)."""
    return [
        SearchAttributePair(SAMPLE_NO, order.sample_no),
        SearchAttributePair(PRODUCT_CODE, order.product.classification_code),
        SearchAttributePair(REGION, order.region),
        SearchAttributePair(CHANNEL, order.channel.value),
        SearchAttributePair(TASK_TYPE, order.task_type.value),
        SearchAttributePair(ENTERPRISE_CODE, order.sampled_party.credit_code),
        SearchAttributePair(PLAN_ID, order.plan_id),
    ]


def sample_attributes(
    order: SampleOrder, stage: str = "sampling", verdict: str = "pending", kind: str = SAMPLE,
) -> TypedSearchAttributes:
    """What a sample's workflows (the sample and each of its branches) start with, for the monitors'
    filters: every branch of sample X shows under `SampleNo = "X"`, and `ProcessKind` tells them apart."""
    return TypedSearchAttributes([
        *order_attributes(order),
        *identity_attributes(kind, order.region),
        SearchAttributePair(STAGE, stage),
        SearchAttributePair(VERDICT, verdict),
        SearchAttributePair(OVERDUE, False),
    ])


def order_details(order: SampleOrder) -> str:
    """A sample's static details in the Web UI (markdown): the order at a glance."""
    p = order.product
    lines: Sequence[str] = [
        f"**{order.sample_no}** · plan `{order.plan_id}` · {order.task_type.value} · {order.channel.value}",
        f"- product: {p.name} · {p.brand} {p.model} · code {p.classification_code}"
        + (f" · batch {p.batch}" if p.batch else ""),
        f"- sampled party: {order.sampled_party.name} ({order.sampled_party.credit_code}, "
        f"region {order.sampled_party.region})",
        f"- lab: {order.inspection_agency.name}",
    ]
    if order.platform:
        lines = [*lines, f"- platform: {order.platform.platform} · shop {order.platform.shop_name} · "
                 f"listing {order.platform.listing_id}"]
    return "\n".join(lines)


def sample_start_options(order: SampleOrder) -> dict[str, Any]:
    """How every sample is started, by the client or by its plan: its workflow id, the search attributes its
    order fixes, and its summary and details in the Web UI."""
    return {"id": order.workflow_id, "search_attributes": sample_attributes(order),
            "static_summary": order.summary, "static_details": order_details(order)}
