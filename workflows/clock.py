"""The sample's legal clock. With time_scale > 1 (demos, acceptance runs) every deadline is compressed:
the sample's clock runs `scale` times faster than the workflow's, from the moment the sample started."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from domain.clock import to_real, to_sample


class SampleClock:
    def __init__(self, origin: datetime, scale: float) -> None:
        self.origin = origin
        self.scale = scale

    def now(self, *, real: datetime | None = None) -> datetime:
        """The sample's time at real time `real` (default: the workflow's now)."""
        return self.to_sample(workflow.now() if real is None else real)

    def to_sample(self, real: datetime) -> datetime:
        return to_sample(self.origin, self.scale, real)

    def to_real(self, sample_time: datetime) -> datetime:
        return to_real(self.origin, self.scale, sample_time)

    def real_delay_until(self, sample_time: datetime, *, real: datetime | None = None) -> timedelta:
        """How long to sleep from real time `real` (default: the workflow's now) until `sample_time`."""
        return max(timedelta(0), self.to_real(sample_time) - (workflow.now() if real is None else real))
