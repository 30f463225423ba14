"""The sample's legal clock as arithmetic: with time_scale > 1 (demos, acceptance runs) the sample's clock
runs `scale` times faster than real time from its origin (the moment the sample started). Pure, so that the
workflow's clock (workflows/clock.py) and an activity that needs a wait's real due time agree exactly."""

from __future__ import annotations

from datetime import datetime


def to_sample(origin: datetime, scale: float, real: datetime) -> datetime:
    return origin + (real - origin) * scale


def to_real(origin: datetime, scale: float, sample_time: datetime) -> datetime:
    return origin + (sample_time - origin) / scale
