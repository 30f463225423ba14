"""What the gateway takes and answers. Every request model is derived from the domain's (the Decision model,
the role matrix, PAYLOADS), never declared again: a field added there reaches the gateway and its OpenAPI
document at once."""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from domain.bounds import Data
from domain.decisions import PAYLOADS, Decision, DecisionKind, Receipt
from domain.models import SAMPLE_NO_PATTERN
from domain.systems import System, decisions_of

SampleNo = Annotated[str, Field(pattern=SAMPLE_NO_PATTERN, description="抽样单编号")]

# What the gateway fills in itself: the actor is the proven caller, the signature the gateway's own.
_SET_BY_GATEWAY = frozenset({"actor", "signature"})


def _decision_fields(*leave_out: str) -> dict[str, Any]:
    return {name: (info.annotation, info) for name, info in Decision.model_fields.items()
            if name not in _SET_BY_GATEWAY | set(leave_out)}


DecisionRequest: type[BaseModel] = create_model(
    "DecisionRequest", __config__=Decision.model_config, __doc__="A decision: its actor is the calling system.",
    **_decision_fields(),
)


def _callback_model(system: System, kind: DecisionKind, outcomes: tuple[str, ...]) -> type[BaseModel]:
    payload = PAYLOADS.get(kind)
    name = "".join(part.title() for part in f"{system.value}_{kind.value}".split("_"))
    return create_model(
        name, __config__=ConfigDict(extra="forbid"), __doc__=f"{kind.value} from the {system.value} system",
        sample_no=(SampleNo, ...),
        kind=(Literal[kind.value], ...),  # type: ignore[valid-type,arg-type]
        outcome=(Literal[outcomes], Field(description="allowed to this system by the role matrix")),  # type: ignore[valid-type,arg-type]
        **_decision_fields("kind", "outcome", "data"),
        data=(payload, Field(default_factory=payload)) if payload else (Data, Field(default_factory=dict)),
    )


def callback_body(system: System) -> Any:
    """The body a system's callback takes: one shape per decision kind its role may send (told apart by
    `kind`), each with the outcomes allowed to it and the kind's payload; None for a system that decides
    nothing."""
    role = system.role
    if role is None:
        return None
    models = [_callback_model(system, kind, outcomes) for kind, outcomes in decisions_of(role).items()]
    if len(models) == 1:
        return models[0]
    return Annotated[functools.reduce(operator.or_, models), Field(discriminator="kind")]


class Started(BaseModel):
    sample_no: str
    workflow_id: str
    created: bool = Field(description="false: the same order was started before (the answer is the same)")


class Problem(BaseModel):
    """Why a request was refused: `detail` in one line; `problems` names each bad field (never its value);
    `receipt` is the workflow's answer when it refused a decision."""

    model_config = ConfigDict(extra="forbid")
    detail: str
    problems: list[str] = Field(default_factory=list)
    receipt: Receipt | None = None
