"""The HTTP gateway end to end: signed calls through the ASGI app in-process, a real Temporal dev server, and
the in-memory activities (the database is not the point here)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain import signing
from domain.systems import System
from starter.client import Signer, SpotcheckClient
from starter.gateway import GatewaySettings, build_app, gateway_settings
from starter.gateway.auth import SIGNATURE, TIMESTAMP, signed_headers
from starter.gateway.settings import Caller, load_callers, new_gateway_key_file
from tests import factories as f
from tests.mock_activities import Store
from tests.workflow_env import awaiting, mocked_worker, wait_for

SECRETS = {system: bytes([i + 1]) * 32 for i, system in enumerate(System)}
SETTINGS = GatewaySettings(callers={
    s.value: Caller(system=s, secret=base64.b64encode(SECRETS[s]).decode(), starts_samples=s is System.DATA_HUB)
    for s in System
})


class Gateway:
    """Signed calls to the app as one caller (by default the system named like it)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def call(self, method: str, path: str, body: Any = None, *, caller: System = System.DATA_HUB,
                   raw: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        signed = signed_headers(caller.value, SECRETS[caller], method, path, content)
        return await self.http.request(method, path, content=content,
                                       headers={"content-type": "application/json", **signed, **(headers or {})})


@asynccontextmanager
async def gateway(env: WorkflowEnvironment, task_queue: str, signer: Signer | None = None
                  ) -> AsyncIterator[tuple[Gateway, SpotcheckClient, Store]]:
    async with mocked_worker(env.client, task_queue) as (client, store):
        app = build_app(env.client, SETTINGS, task_queue=task_queue, signer=signer)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield Gateway(http), client, store


async def started(gw: Gateway, client: SpotcheckClient) -> str:
    """A sample started through the gateway, waiting for its sampling record."""
    order = f.order("online")
    assert (await gw.call("POST", "/samples", order)).status_code == 201
    await wait_for(client.client.get_workflow_handle(f"sample-{order['sample_no']}"), awaiting("sampling_record"))
    return str(order["sample_no"])


def lims(no: str, kind: str, outcome: str, **fields: Any) -> dict[str, Any]:
    return {"sample_no": no, "kind": kind, "outcome": outcome, "request_id": f"lims-{kind}-{no}", **fields}


async def test_a_lims_callback_is_accepted_end_to_end(dev_env: WorkflowEnvironment, task_queue: str) -> None:
    async with gateway(dev_env, task_queue) as (gw, client, store):
        no = await started(gw, client)
        sealed = {k: v for k, v in f.sealed().items() if k != "actor"}
        # A sampler's decision through the generic route needs a sampler caller: the data hub makes none.
        assert (await gw.call("POST", f"/samples/{no}/decisions", sealed)).status_code == 403
        await client.decide(no, f.sealed())
        await wait_for(client.client.get_workflow_handle(f"sample-{no}"), awaiting("sample_receipt"))

        answer = await gw.call("POST", "/callbacks/lims", lims(no, "sample_receipt", "accepted"), caller=System.LIMS)
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] is True and answer.json()["kind"] == "sample_receipt"

        # The answer comes first; the sample moves on in a later workflow task (docs/design.md §8).
        await wait_for(client.client.get_workflow_handle(f"sample-{no}"), awaiting("lab_report"))
        status = await gw.call("GET", f"/samples/{no}")
        assert status.status_code == 200
        assert status.json()["stage"] == "testing"
        assert "sample_receipt = accepted by lab lims" in [e["text"] for e in status.json()["timeline"]]
        # The actor is the proven caller in its system's role, whatever the body might have wished.
        (row,) = [r for r in store.audit_trail(f"sample-{no}") if r["request_id"] == f"lims-sample_receipt-{no}"]
        assert row["actor"]["id"] == "lims" and row["actor"]["role"] == "lab"


async def test_a_duplicate_callback_gets_the_same_answer_and_no_second_effect(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with gateway(dev_env, task_queue) as (gw, client, store):
        no = await started(gw, client)
        await client.decide(no, f.sealed())
        handle = client.client.get_workflow_handle(f"sample-{no}")
        await wait_for(handle, awaiting("sample_receipt"))
        body = lims(no, "sample_receipt", "accepted")
        first = await gw.call("POST", "/callbacks/lims", body, caller=System.LIMS)
        await wait_for(handle, awaiting("lab_report"))
        before = await gw.call("GET", f"/samples/{no}")
        again = await gw.call("POST", "/callbacks/lims", body, caller=System.LIMS)
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()  # the first receipt, recorded_at and stage included
        after = await gw.call("GET", f"/samples/{no}")
        assert after.json()["timeline"] == before.json()["timeline"]
        rows = [r for r in store.audit_trail(handle.id) if r["request_id"] == body["request_id"]]
        assert len(rows) == 1


async def test_a_bad_signature_is_401_and_nothing_is_delivered(dev_env: WorkflowEnvironment, task_queue: str) -> None:
    async with gateway(dev_env, task_queue) as (gw, client, store):
        no = await started(gw, client)
        handle = client.client.get_workflow_handle(f"sample-{no}")
        trail = list(store.audit_trail(handle.id))
        body = lims(no, "sample_receipt", "accepted")
        forged = {SIGNATURE: "0" * 64}
        stale = signed_headers("lims", SECRETS[System.LIMS], "POST", "/callbacks/lims",
                               json.dumps(body).encode(), now=time.time() - 3600)
        for headers in (forged, stale, {SIGNATURE: ""}):
            answer = await gw.call("POST", "/callbacks/lims", body, caller=System.LIMS, headers=headers)
            assert answer.status_code == 401, answer.text
            assert "unauthenticated" in answer.json()["detail"]
        # Signed by another system's key: the platform cannot pose as the LIMS.
        posing = await gw.call("POST", "/callbacks/lims", body, caller=System.PLATFORM)
        assert posing.status_code == 403
        # A body altered after signing does not match (the signature covers the raw body).
        good = signed_headers("lims", SECRETS[System.LIMS], "POST", "/callbacks/lims", json.dumps(body).encode())
        altered = json.dumps({**body, "outcome": "rejected"}).encode()
        answer = await gw.http.post("/callbacks/lims", content=altered, headers=good)
        assert answer.status_code == 401
        assert stale[TIMESTAMP] not in answer.text
        assert list(store.audit_trail(handle.id)) == trail
        assert not any(e["event"] == "rejected" for e in (await gw.call("GET", f"/samples/{no}")).json()["timeline"])


async def test_malformed_bodies_are_422_naming_the_field_never_the_value(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with gateway(dev_env, task_queue) as (gw, client, store):
        no = await started(gw, client)
        secretish = "SECRET-VALUE-" + "x" * 30
        cases = [
            ("/callbacks/lims", lims(no, "lab_report", "pass", data={"report_no": "", "conclusion": secretish})),
            ("/callbacks/lims", lims(no, "lab_report", secretish)),
            ("/callbacks/lims", {**lims(no, "lab_report", "pass"), "sample_no": secretish + "!"}),
            (f"/samples/{no}/decisions", {"kind": "lab_report", "outcome": "pass", "request_id": "r",
                                          "data": {"report_no": "R-1", "extra": secretish}}),
            ("/samples", {**f.order(), "region": secretish}),
        ]
        for path, body in cases:
            answer = await gw.call("POST", path, body, caller=System.DATA_HUB if path == "/samples" else System.LIMS)
            assert answer.status_code == 422, (path, answer.text)
            assert secretish[:20] not in answer.text
            assert answer.json()["problems"]
        fields = [(await gw.call("POST", p, b, caller=System.LIMS)).json()["problems"][0] for p, b in cases[:1]]
        assert fields[0].startswith("data.report_no:")
        bad_json = await gw.call("POST", "/callbacks/lims", raw=b"{not json", caller=System.LIMS)
        assert bad_json.status_code == 422 and bad_json.json()["problems"] == ["body: not valid JSON"]
        assert store.audit_trail(f"sample-{no}") == []


async def test_unknown_sample_is_404(dev_env: WorkflowEnvironment, task_queue: str) -> None:
    async with gateway(dev_env, task_queue) as (gw, _client, _store):
        assert (await gw.call("GET", "/samples/NO-SUCH-1")).status_code == 404
        answer = await gw.call("POST", "/callbacks/lims", lims("NO-SUCH-1", "sample_receipt", "accepted"),
                               caller=System.LIMS)
        assert answer.status_code == 404 and "NO-SUCH-1" in answer.json()["detail"]
        # A branch kind for a sample that does not exist: no workflow takes it either.
        platform = {"sample_no": "NO-SUCH-1", "kind": "delist_confirmation", "outcome": "delisted", "request_id": "p1"}
        assert (await gw.call("POST", "/callbacks/platform", platform, caller=System.PLATFORM)).status_code == 404


async def test_starting_is_idempotent_by_sample_number(dev_env: WorkflowEnvironment, task_queue: str) -> None:
    async with gateway(dev_env, task_queue) as (gw, _client, _store):
        order = f.order("offline_production")
        first = await gw.call("POST", "/samples", order)
        again = await gw.call("POST", "/samples", order)
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json() == {**first.json(), "created": False}
        other = await gw.call("POST", "/samples", {**order, "plan_id": "ANOTHER-PLAN"})
        assert other.status_code == 409 and "another order" in other.json()["detail"]
        # Only a caller allowed to start samples may.
        assert (await gw.call("POST", "/samples", f.order(), caller=System.LIMS)).status_code == 403


async def test_a_refused_decision_is_409_with_the_workflows_receipt(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with gateway(dev_env, task_queue) as (gw, client, store):
        no = await started(gw, client)  # waiting for the sampling record, not a report
        answer = await gw.call("POST", "/callbacks/lims",
                               lims(no, "lab_report", "pass", data={"report_no": "R-1"}), caller=System.LIMS)
        assert answer.status_code == 409
        receipt = answer.json()["receipt"]
        assert receipt["accepted"] is False and "not awaited" in receipt["reason"]
        assert answer.json()["detail"] == receipt["reason"]


@pytest.fixture
def deployment_keys() -> Iterator[dict[str, bytes]]:
    """A deployment that requires signed decisions: the worker's keyring for one test."""
    ring = {"internal": b"i" * 32, "gateway-1": b"g" * 32}
    saved = (signing._keyring, signing._required, signing._internal_key_id)
    signing.configure(ring, require=True)
    yield ring
    signing._keyring, signing._required, signing._internal_key_id = saved


async def test_where_signatures_are_required_the_gateway_signs_for_the_proven_caller(
    dev_env: WorkflowEnvironment, task_queue: str, deployment_keys: dict[str, bytes]
) -> None:
    async with gateway(dev_env, task_queue, Signer("gateway-1", deployment_keys["gateway-1"])) as (gw, client, _s):
        sampler = SpotcheckClient(client.client, task_queue, Signer("gateway-1", deployment_keys["gateway-1"]))
        no = await started(gw, client)
        await sampler.decide(no, f.sealed())
        await wait_for(client.client.get_workflow_handle(f"sample-{no}"), awaiting("sample_receipt"))
        answer = await gw.call("POST", "/callbacks/lims", lims(no, "sample_receipt", "accepted"), caller=System.LIMS)
        assert answer.status_code == 200 and answer.json()["accepted"], answer.text
    async with gateway(dev_env, f"{task_queue}-unsigned") as (gw, client, _s):
        no = await started(gw, client)
        answer = await gw.call("POST", "/callbacks/lims", lims(no, "sample_receipt", "accepted"), caller=System.LIMS)
        assert answer.status_code == 409 and answer.json()["detail"] == "signature: missing"


def test_the_key_file_spotcheck_up_makes_loads_and_bad_ones_name_the_field(tmp_path: Any) -> None:
    path = tmp_path / "gateway-keys.json"
    new_gateway_key_file(path)
    callers = load_callers(path)
    assert set(callers) == {s.value for s in System} and callers["data_hub"].starts_samples
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert gateway_settings({"SPOTCHECK_GATEWAY_KEYS": str(path)}).callers == callers
    path.write_text(json.dumps({"lims": {"system": "lims", "secret": "c2hvcnQ="}}))
    with pytest.raises(ValueError, match="lims.secret: must be base64") as err:
        load_callers(path)
    assert "c2hvcnQ" not in str(err.value)
    with pytest.raises(ValueError, match="SPOTCHECK_GATEWAY_KEYS"):
        gateway_settings({})


async def test_a_body_over_the_limit_is_413_before_anything_is_read(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with gateway(dev_env, task_queue) as (gw, _client, _store):
        big = b"{" + b" " * SETTINGS.max_body_bytes + b"}"
        assert (await gw.call("POST", "/callbacks/lims", raw=big, caller=System.LIMS)).status_code == 413
