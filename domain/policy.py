"""The deployment policy a workflow runs under, recorded once at its start (a local activity,
activities/policy.py; a sample reads it with its first wait, activities/records.py `open_wait`) so that a
replay never depends on the settings of the worker that replays it."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from domain.models import MAX_TIME_SCALE
from domain.signing import DEFAULT_MAX_AGE

DEMO_MAX_TIME_SCALE = MAX_TIME_SCALE  # what SampleOrder.time_scale allows at most


class DeploymentPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    require_signatures: bool = Field(description="decisions must carry a valid signature (domain/signing.py)")
    max_time_scale: float = Field(
        default=1.0, ge=1.0, le=DEMO_MAX_TIME_SCALE,
        description="the largest order time_scale taken: 1.0 (the legal clock) unless in demo or test mode",
    )
    signing_key_ids: list[str] = Field(
        default_factory=list,
        description="decision keys of the deployment at the start, for the record: verification uses the "
        "worker's keyring, which keeps retired keys",
    )
    signature_max_age: timedelta = Field(
        default=DEFAULT_MAX_AGE, description="how long after signing a decision may arrive"
    )

    def time_scale_for(self, asked: float) -> float:
        """The clock compression a sample that asked for `asked` runs at under this policy."""
        return min(asked, self.max_time_scale)

    def time_scale_problem(self, time_scale: float) -> str | None:
        """Why an order's compressed clock is refused here, or None."""
        if time_scale <= self.max_time_scale:
            return None
        if self.max_time_scale == 1.0:
            return "time_scale: the legal clock cannot be compressed in this deployment (demo or test mode only)"
        return f"time_scale: at most {self.max_time_scale:g} in this deployment"
