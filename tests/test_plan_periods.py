"""The pure rules of running a plan (domain/plan_run.py): which period a schedule's firing falls in, when a
period ends, what a template becomes, and which amendments are refused, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from domain.plan_run import Amendment, Every, ScheduledPlan, period_end, period_of
from domain.windows import CHINA

TEMPLATE = {"plan_id": "ZJ-ROUTINE", "name": "浙江省产品质量监督抽查", "level": "province", "region": "330000",
            "task_type": "routine", "budget_batches": 10, "inspection_agencies": [{"name": "浙江省产品质量安全科学研究院",
                                                                                  "code": "ZJPQ"}]}


@pytest.mark.parametrize(("at", "every", "period"), [
    # 2026-12-31 16:30 UTC is already 2027-01-01 in China: the firing at midnight China time is Q1 of 2027.
    (datetime(2026, 12, 31, 16, 30, tzinfo=UTC), Every.QUARTER, "2027Q1"),
    (datetime(2026, 12, 31, 15, 59, tzinfo=UTC), Every.QUARTER, "2026Q4"),
    (datetime(2027, 6, 30, 16, 0, tzinfo=UTC), Every.HALF, "2027H2"),
    (datetime(2027, 3, 5, tzinfo=UTC), Every.MONTH, "2027M03"),
    (datetime(2027, 3, 5, tzinfo=UTC), Every.YEAR, "2027"),
])
def test_a_firing_falls_in_its_china_time_period(at: datetime, every: Every, period: str) -> None:
    assert period_of(at, every) == period


@pytest.mark.parametrize(("period", "end"), [
    ("2026Q4", (2027, 1, 1)), ("2027Q1", (2027, 4, 1)), ("2027H1", (2027, 7, 1)), ("2027M12", (2028, 1, 1)),
    ("2027M02", (2027, 3, 1)), ("2027", (2028, 1, 1)),
])
def test_a_period_ends_at_the_next_periods_first_midnight(period: str, end: tuple[int, int, int]) -> None:
    assert period_end(period) == datetime(*end, tzinfo=CHINA)


def test_each_firing_of_a_template_is_the_plan_of_its_period() -> None:
    scheduled = ScheduledPlan(template=TEMPLATE, every=Every.QUARTER)
    first = scheduled.fill(datetime(2027, 1, 1, tzinfo=CHINA)).spec
    second = scheduled.fill(datetime(2027, 4, 1, tzinfo=CHINA)).spec
    assert (first.plan_id, first.period, second.plan_id, second.period) == \
        ("ZJ-ROUTINE-2027Q1", "2027Q1", "ZJ-ROUTINE-2027Q2", "2027Q2")
    with pytest.raises(ValidationError, match="budget_batches"):
        ScheduledPlan(template={**TEMPLATE, "budget_batches": 0}).fill(datetime(2027, 1, 1, tzinfo=CHINA))


SENDER = {"id": "organiser-1", "role": "case_officer"}


@pytest.mark.parametrize(("payload", "field"), [
    ({"request_id": "r", "action": "add", "reason": "x", "sender": SENDER}, "samples"),
    ({"request_id": "r", "action": "add", "reason": "x", "sender": SENDER, "samples": [],
      "draw": {"budget_batches": 1, "seed": 1}}, "samples"),
    ({"request_id": "r", "action": "cancel", "reason": "x", "sender": SENDER, "sample_nos": []}, "sample_nos"),
    ({"request_id": "r", "action": "cancel", "reason": "", "sender": SENDER, "sample_nos": ["A"]}, "reason"),
    ({"request_id": "r", "action": "stop", "reason": "x", "sender": SENDER}, "action"),
    ({"request_id": "r", "action": "cancel", "reason": "x", "sample_nos": ["A"]}, "sender"),
    ({"request_id": "r", "action": "cancel", "reason": "x", "sender": SENDER, "sample_nos": ["A"] * 1001},
     "sample_nos"),
])
def test_an_amendment_names_what_is_wrong(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Amendment.model_validate(payload)
