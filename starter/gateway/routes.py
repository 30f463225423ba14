"""The gateway's routes: start a sample, send a decision, read a sample, and one callback per outside system.
Everything goes through SpotcheckClient, so the gateway validates, routes and signs as the CLI does."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError
from temporalio.service import RPCError, RPCStatusCode

from domain.bounds import error_lines, within
from domain.decisions import PAYLOADS, DecisionKind, Receipt
from domain.models import SAMPLE_NO_PATTERN, SampleOrder, workflow_id_for
from domain.systems import System
from starter.client import DecisionRejected, NoSuchWorkflow, SampleExists, SampleView, SpotcheckClient
from starter.gateway.auth import CALLER, SIGNATURE, TIMESTAMP, SignedRoute, proven_caller
from starter.gateway.models import DecisionRequest, Problem, Started, callback_body
from starter.gateway.settings import Caller

# Documents the signing (the check itself is SignedRoute's, before any parsing).
_signed = APIKeyHeader(
    name=SIGNATURE, scheme_name="SpotcheckSignature", auto_error=False,
    description=f"hex HMAC-SHA256 by the caller's secret over `METHOD\\npath?query\\n{TIMESTAMP}\\nbody`, "
    f"with the headers {CALLER} (caller id) and {TIMESTAMP} (Unix seconds, within 5 minutes)",
)

router = APIRouter(route_class=SignedRoute, dependencies=[Security(_signed)])

SampleNoPath = Annotated[str, Path(pattern=SAMPLE_NO_PATTERN, description="抽样单编号")]
CallerDep = Annotated[tuple[str, Caller], Depends(proven_caller)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": what} for code, what in (
        (401, "not signed by a caller of this gateway, or stale"), (403, "the caller may not do this"),
        (413, "body too large"), (422, "malformed: each bad field named"), (503, "Temporal did not answer"),
    )
}
_DECISION_ERRORS = {**_ERRORS, 404: {"model": Problem, "description": "no such sample (or branch)"},
                    409: {"model": Problem, "description": "refused by the workflow: the reason and its receipt"}}


def spotcheck(request: Request) -> SpotcheckClient:
    client: SpotcheckClient = request.app.state.spotcheck
    return client


ClientDep = Annotated[SpotcheckClient, Depends(spotcheck)]


@router.post("/samples", status_code=201, response_model=Started, summary="start a sample from an order",
             responses={**_ERRORS, 200: {"model": Started, "description": "the same order was started before"},
                        409: {"model": Problem, "description": "another order holds this sample number"}})
async def start_sample(order: SampleOrder, caller: CallerDep, client: ClientDep) -> Any:
    if not caller[1].starts_samples:
        raise HTTPException(403, f"caller {caller[0]} may not start samples")
    try:
        handle = await client.start_sample(order)
    except SampleExists:
        if await client.started_order(order.sample_no) != order:
            raise HTTPException(409, f"sample_no: sample {order.sample_no} was started with another order") from None
        return JSONResponse(Started(sample_no=order.sample_no, workflow_id=order.workflow_id, created=False)
                            .model_dump(mode="json"), status_code=200)
    return Started(sample_no=order.sample_no, workflow_id=handle.id, created=True)


# SampleView: once the sample has closed, its open branches (a credit listing) as they answer now.
@router.get("/samples/{sample_no}", response_model=SampleView, summary="a sample's status",
            responses={**_ERRORS, 404: {"model": Problem, "description": "no such sample"}})
async def sample_status(sample_no: SampleNoPath, caller: CallerDep, client: ClientDep) -> Any:
    try:
        return await client.status(sample_no)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no sample {sample_no} (no workflow {workflow_id_for(sample_no)})") from None
        raise


@router.post("/samples/{sample_no}/decisions", response_model=Receipt, summary="send a decision; its actor is "
             "the calling system", responses=_DECISION_ERRORS)
async def decide(sample_no: SampleNoPath, decision: DecisionRequest, caller: CallerDep,  # type: ignore[valid-type]
                 client: ClientDep) -> Any:
    fields = decision.model_dump(mode="json")  # type: ignore[attr-defined]
    payload = PAYLOADS.get(DecisionKind(fields["kind"]))
    if payload is not None:  # validated here too, so a bad payload is a 422 naming the field
        try:
            payload.model_validate(fields["data"])
        except ValidationError as err:
            raise RequestProblem(error_lines(err, "data.")) from None
    return await deliver(client, caller, sample_no, fields)


def _callback_route(system: System, body: Any) -> None:
    async def callback(decision: Any, caller: CallerDep, client: ClientDep) -> Any:
        if caller[1].system is not system:
            raise HTTPException(403, f"caller {caller[0]} is not a {system.value} system")
        fields = decision.model_dump(mode="json")
        return await deliver(client, caller, fields.pop("sample_no"), fields)

    # FastAPI reads the body's model from the signature: the one generated for this system.
    signature = inspect.signature(callback)
    callback.__signature__ = signature.replace(parameters=[  # type: ignore[attr-defined]
        signature.parameters["decision"].replace(annotation=Annotated[body, Body()]),
        signature.parameters["caller"].replace(annotation=CallerDep),
        signature.parameters["client"].replace(annotation=ClientDep),
    ])
    router.add_api_route(
        f"/callbacks/{system.value}", callback, methods=["POST"], response_model=Receipt,
        name=f"callback_{system.value}", responses=_DECISION_ERRORS,
        summary=f"a decision from the {system.value} system (role {system.role}); its kinds and outcomes are "
        "those the role matrix allows the role",
    )


for _system in System:
    if (_body := callback_body(_system)) is not None:
        _callback_route(_system, _body)


async def deliver(client: SpotcheckClient, caller: tuple[str, Caller], sample_no: str,
                  fields: dict[str, Any]) -> Any:
    """Send a decision as the `submit_decision` update with the proven caller as its actor: the workflow's
    receipt (a repeated request id gets the first one), 409 with the receipt when it refuses, 404 when no
    workflow takes it."""
    actor = caller[1].actor(caller[0])
    if actor is None:
        raise HTTPException(403, f"caller {caller[0]} makes no decisions")
    decision = {**fields, "actor": actor.model_dump(mode="json", exclude_none=True)}
    try:
        return await client.decide(sample_no, decision)
    except NoSuchWorkflow as err:
        raise HTTPException(404, err.reason) from None
    except DecisionRejected as err:
        return JSONResponse(Problem(detail=err.reason, receipt=err.receipt).model_dump(mode="json"), status_code=409)


class RequestProblem(Exception):
    """A request FastAPI parsed but the domain refuses (a decision's payload): 422 naming each field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = within(problems)
        super().__init__("; ".join(self.problems))


def problem(status: int, detail: str, problems: list[str] | None = None, **headers: str) -> JSONResponse:
    body: BaseModel = Problem(detail=detail, problems=problems or [])
    return JSONResponse(body.model_dump(mode="json", exclude_defaults=True), status_code=status,
                        headers=headers or None)
