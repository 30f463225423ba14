"""The deployment policy from the worker's settings, for a workflow to record once at its start (as a
local activity): whether decisions must be signed (as the worker was configured, activities/keys.py: `spotcheck up` and
`spotcheck worker` require them unless SPOTCHECK_REQUIRE_SIGNATURES=0; a worker never configured, as in the
test suite, does not), and whether the legal clock may be compressed (SPOTCHECK_DEMO_MODE=1: time_scale up
to 864000; default off)."""

from __future__ import annotations

import os

from temporalio import activity

from domain import signing
from domain.policy import DEMO_MAX_TIME_SCALE, DeploymentPolicy

DEMO_ENV = "SPOTCHECK_DEMO_MODE"
TRUE = frozenset({"1", "true", "yes", "on"})


def demo_mode() -> bool:
    """Only a plain yes turns demo mode on."""
    return os.environ.get(DEMO_ENV, "").strip().lower() in TRUE


def current_policy() -> DeploymentPolicy:
    return DeploymentPolicy(
        require_signatures=signing.required(),
        max_time_scale=DEMO_MAX_TIME_SCALE if demo_mode() else 1.0,
        signing_key_ids=signing.decision_key_ids(),
    )


@activity.defn
async def deployment_policy() -> DeploymentPolicy:
    return current_policy()
