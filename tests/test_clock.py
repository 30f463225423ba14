"""The sample's clock without a workflow: real time in, sample time out (and back), `scale` times faster
from the origin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows.clock import SampleClock

ORIGIN = datetime(2025, 11, 3, 2, 0, tzinfo=UTC)
MOMENTS = [
    ORIGIN,
    ORIGIN + timedelta(seconds=1),
    ORIGIN + timedelta(days=3, hours=7, microseconds=250),
    ORIGIN - timedelta(hours=5),
    ORIGIN - timedelta(days=3),  # at 86400 that is some 700 years before: still a valid datetime
]


@pytest.mark.parametrize("moment", MOMENTS)
def test_scale_one_is_the_identity(moment: datetime) -> None:
    clock = SampleClock(ORIGIN, 1)
    assert clock.now(real=moment) == moment
    assert clock.to_sample(moment) == moment
    assert clock.to_real(moment) == moment


def test_a_day_per_second_from_the_origin() -> None:
    clock = SampleClock(ORIGIN, 86400)
    assert clock.now(real=ORIGIN) == ORIGIN
    assert clock.now(real=ORIGIN + timedelta(seconds=1)) == ORIGIN + timedelta(days=1)
    assert clock.now(real=ORIGIN + timedelta(seconds=30)) == ORIGIN + timedelta(days=30)
    assert clock.to_real(ORIGIN + timedelta(days=15)) == ORIGIN + timedelta(seconds=15)


@pytest.mark.parametrize("scale", [1, 2.5, 60, 86400])
@pytest.mark.parametrize("moment", MOMENTS)
def test_to_real_undoes_to_sample(scale: float, moment: datetime) -> None:
    clock = SampleClock(ORIGIN, scale)
    assert clock.to_real(clock.to_sample(moment)) == moment


def test_times_before_the_origin_run_backwards_as_fast() -> None:
    clock = SampleClock(ORIGIN, 86400)
    assert clock.now(real=ORIGIN - timedelta(seconds=2)) == ORIGIN - timedelta(days=2)
    assert clock.to_real(ORIGIN - timedelta(days=10)) == ORIGIN - timedelta(seconds=10)


def test_the_delay_until_a_sample_time_is_in_real_time() -> None:
    clock = SampleClock(ORIGIN, 86400)
    now = ORIGIN + timedelta(seconds=5)  # sample day 5
    assert clock.real_delay_until(ORIGIN + timedelta(days=15), real=now) == timedelta(seconds=10)
    assert SampleClock(ORIGIN, 1).real_delay_until(ORIGIN + timedelta(days=2), real=ORIGIN) == timedelta(days=2)


@pytest.mark.parametrize("scale", [1, 86400])
@pytest.mark.parametrize(
    "target", [ORIGIN, ORIGIN - timedelta(days=30), ORIGIN + timedelta(seconds=4)], ids=["origin", "before", "just-past"],
)
def test_the_delay_is_never_negative(scale: float, target: datetime) -> None:
    clock = SampleClock(ORIGIN, scale)
    assert clock.real_delay_until(target, real=ORIGIN + timedelta(days=1)) == timedelta(0)
    assert clock.real_delay_until(clock.now(real=ORIGIN), real=ORIGIN) == timedelta(0)
