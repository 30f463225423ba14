"""Schemathesis over the gateway's OpenAPI document, in-process: every generated request, signed (and, by
schemathesis's own checks, unsigned), gets an answer the document allows and never a server error. Temporal
is not the point here: a fake SpotcheckClient keeps samples and receipts in memory."""

from __future__ import annotations

from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, settings
from temporalio.service import RPCError, RPCStatusCode

from domain.decisions import Decision, Receipt
from domain.models import SampleOrder
from domain.status import SampleStatus
from starter.client import DecisionRejected, NoSuchWorkflow, SampleExists
from starter.gateway import build_app, routes
from starter.gateway.auth import SIGNATURE, signed_headers
from tests.test_gateway import SECRETS, SETTINGS

SIGN = "sign-me"


class FakeSpotcheck:
    """SpotcheckClient's answers without Temporal: samples by number; decisions are accepted once per
    request id (a repeat gets the first receipt), and a sample number starting with `R` refuses them."""

    def __init__(self) -> None:
        self.orders: dict[str, SampleOrder] = {}
        self.receipts: dict[str, Receipt] = {}

    async def start_sample(self, order: SampleOrder) -> Any:
        if order.sample_no in self.orders:
            raise SampleExists(["sample_no: already started"], order.sample_no)
        self.orders[order.sample_no] = order
        return type("Handle", (), {"id": order.workflow_id})()

    async def started_order(self, sample_no: str) -> SampleOrder:
        return self.orders[sample_no]

    async def status(self, sample_no: str) -> SampleStatus:
        if sample_no not in self.orders:
            raise RPCError("not found", RPCStatusCode.NOT_FOUND, b"")
        return SampleStatus(sample_no=sample_no, workflow_id=f"sample-{sample_no}", summary="s", stage="sampling",
                            verdict="pending", time_scale=1.0)

    async def decide(self, sample_no: str, raw: dict[str, Any]) -> Receipt:
        decision = Decision.model_validate(raw)  # what the gateway sends is always a well-formed decision
        if sample_no.startswith("N"):
            raise NoSuchWorkflow(f"no workflow sample-{sample_no}")
        first = self.receipts.get(decision.request_id)
        if first is not None:
            return first
        receipt = Receipt(request_id=decision.request_id, kind=decision.kind.value, outcome=decision.outcome,
                          accepted=not sample_no.startswith("R"), stage="sampling", recorded_at="2026-01-01T00:00:00Z",
                          reason=None if not sample_no.startswith("R") else "not awaited")
        if not receipt.accepted:
            raise DecisionRejected(receipt.reason or "", receipt)
        self.receipts[decision.request_id] = receipt
        return receipt


class SignAs(requests.auth.AuthBase):
    """Signs each prepared request (its final body bytes) as the caller the path names, the data hub else;
    only a request that asks for it (schemathesis's auth checks send it without, and must get 401)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if r.headers.get(SIGNATURE) != SIGN:
            return r
        path = r.path_url
        system = next((s for s in SECRETS if path.startswith(f"/callbacks/{s.value}")), None)
        caller = system or next(s for s in SECRETS if s.value == ("lims" if "/decisions" in path else "data_hub"))
        body = r.body.encode() if isinstance(r.body, str) else (r.body or b"")
        assert r.method is not None
        r.headers.update(signed_headers(caller.value, SECRETS[caller], r.method, path, body))
        return r


app = build_app(None, SETTINGS)  # type: ignore[arg-type]
fake = FakeSpotcheck()
app.dependency_overrides[routes.spotcheck] = lambda: fake
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
session = requests.Session()
session.auth = SignAs()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_gateway_keeps_to_its_openapi_document(case: schemathesis.Case) -> None:
    response = case.call(session=session, headers={SIGNATURE: SIGN})
    assert response.status_code < 500, response.text
    # Not positive_data_acceptance: the models keep rules a JSON schema cannot state (a credit code's check
    # character, a platform for an online sample), so schema-valid data may rightly get a 422 naming the field.
    # Not negative_data_rejection: they validate in pydantic's lax mode, as the workflow does (one model), so
    # `0` is taken for `false` where the schema says boolean.
    excluded = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]
    case.validate_response(response, excluded_checks=excluded,
                           headers={SIGNATURE: SIGN}, transport_kwargs={"session": session})


def test_the_document_is_served_and_names_the_signing() -> None:
    document = schema.raw_schema
    assert "SpotcheckSignature" in document["components"]["securitySchemes"]
    assert {"/samples", "/samples/{sample_no}", "/samples/{sample_no}/decisions", "/callbacks/lims"} <= set(
        document["paths"])
