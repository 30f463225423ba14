"""Proven senders, without a server: decision signatures (domain/signing.py) over every field, the target
workflow and the time; seals on internal signals; an enterprise acting only for itself; the deployment
policy; and the client signing after it routes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activities import policy as policy_activity
from domain import signing
from domain.decisions import Decision, Role, organisation_problem
from domain.plan_run import AMENDMENT_SIGNING, Amendment
from domain.policy import DeploymentPolicy
from starter.cli import main
from starter.client import Signer, SpotcheckClient

ROOT = Path(__file__).resolve().parent.parent
WF = "sample-ZJ2025-ON-0003"
KEY, SECRET = "desk-1", b"k" * 32
RING = {KEY: SECRET, "desk-old": b"o" * 32, "internal": b"i" * 32}
NOW = datetime(2025, 11, 3, 9, 30, tzinfo=UTC)
FIRM, PRODUCER = "91330100MA27XL0Q1K", "91440300MA5FUTGX3B"
SECRET_TEXT = "<<input-that-must-not-be-echoed>>"


def decision(**changes: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": "objection",
        "outcome": "filed",
        "actor": {"id": "E-1", "role": "enterprise", "name": "王经理", "organisation": FIRM, "region": "330100"},
        "request_id": "req-1",
        "reason": "对输出电压检验结果有异议",
        "evidence": [{"name": "申请书.pdf", "sha256": "a" * 64}],
        "data": {"contested_items": ["输出电压"], "retest_requested": True},
    }
    d.update(changes)
    return d


def signed(raw: dict[str, Any] | None = None, workflow_id: str = WF, at: datetime = NOW) -> dict[str, Any]:
    return signing.sign(raw or decision(), workflow_id, KEY, SECRET, at)


def over_the_wire(raw: Any) -> Any:
    return json.loads(json.dumps(raw, ensure_ascii=False))


def problem(raw: dict[str, Any], workflow_id: str = WF, now: datetime = NOW) -> str | None:
    return signing.signature_problem(
        Decision.model_validate(over_the_wire(raw)), workflow_id, RING, now, timedelta(hours=24)
    )


@pytest.fixture
def configured() -> Iterator[None]:
    """The worker's keyring for one test; the module's state as it was afterwards."""
    saved = (signing._keyring, signing._required, signing._internal_key_id)
    signing.configure(RING, require=True)
    yield
    signing._keyring, signing._required, signing._internal_key_id = saved


@pytest.fixture
def unconfigured() -> Iterator[None]:
    saved = (signing._keyring, signing._required, signing._internal_key_id)
    signing.configure({}, require=False)
    yield
    signing._keyring, signing._required, signing._internal_key_id = saved


# --- decisions ------------------------------------------------------------------------------------------


def test_a_signed_decision_verifies_after_crossing_the_wire() -> None:
    raw = signed()
    assert raw["signature"]["key_id"] == KEY and len(raw["signature"]["mac"]) == 64
    assert problem(raw) is None
    # Defaults left out, keys in another order, a naive time (UTC): the same canonical bytes.
    sparse = {"request_id": "r", "outcome": "sealed", "kind": "sampling_record", "actor": {"role": "sampler", "id": "S"}}
    assert problem(signing.sign(sparse, WF, KEY, SECRET, NOW.replace(tzinfo=None))) is None


def test_canonical_covers_the_target_and_the_signature_header() -> None:
    raw = signed()
    body = json.loads(signing.canonical(raw, WF))
    assert body["workflow_id"] == WF and body["key_id"] == KEY
    assert body["signed_at"] == "2025-11-03T09:30:00+00:00" and "signature" not in body["decision"]
    assert signing.canonical(raw, WF) == signing.canonical(over_the_wire(raw), WF)


ALTERATIONS = {
    "actor.id": lambda d: d["actor"].update(id="E-2"),
    "actor.role": lambda d: d["actor"].update(role="case_officer"),
    "actor.name": lambda d: d["actor"].update(name="李四"),
    "actor.organisation": lambda d: d["actor"].update(organisation=PRODUCER),
    "actor.region": lambda d: d["actor"].update(region="440300"),
    "kind": lambda d: d.update(kind="rectification_report"),
    "outcome": lambda d: d.update(outcome="waived"),
    "request_id": lambda d: d.update(request_id="req-2"),
    "reason": lambda d: d.update(reason=SECRET_TEXT),
    "reason removed": lambda d: d.update(reason=None),
    "data": lambda d: d["data"].update(retest_requested=False),
    "data added": lambda d: d["data"].update(extra=SECRET_TEXT),
    "evidence": lambda d: d["evidence"][0].update(sha256="b" * 64),
    "evidence dropped": lambda d: d.update(evidence=[]),
    "signature.signed_at": lambda d: d["signature"].update(signed_at="2025-11-03T09:30:01+00:00"),
    "signature.key_id": lambda d: d["signature"].update(key_id="desk-old"),
}


@pytest.mark.parametrize("field", ALTERATIONS)
def test_any_covered_field_altered_does_not_match(field: str) -> None:
    raw = deepcopy(signed())
    ALTERATIONS[field](raw)
    found = problem(raw)
    assert found is not None and found.startswith("signature: does not match"), found
    assert SECRET_TEXT not in found


def test_sent_to_another_sample_does_not_match() -> None:
    raw = signed(workflow_id="sample-ZJ2025-ON-0004")
    assert (problem(raw) or "").startswith("signature: does not match")
    # …nor to the sample's own branch: the signature names the workflow.
    assert (problem(signed(), f"{WF}-enforcement") or "").startswith("signature: does not match")


def test_missing_unknown_and_internal_keys() -> None:
    assert problem(decision()) == "signature: missing"
    assert problem(signing.sign(decision(), WF, "stolen", SECRET, NOW)) == "signature: unknown key stolen"
    # The internal key seals Spotcheck's own signals; it never signs a decision.
    assert problem(signing.sign(decision(), WF, "internal", RING["internal"], NOW)) == "signature: unknown key internal"
    # Right key id, wrong secret: a forgery.
    assert (problem(signing.sign(decision(), WF, KEY, b"x" * 32, NOW)) or "").startswith("signature: does not match")
    weird = signed()
    weird["signature"]["key_id"] = SECRET_TEXT[:60]
    assert problem(weird) == "signature: unknown key (not a key id)"


@pytest.mark.parametrize("mac", ["", "zz" * 32, "ä" * 40, "\udcff" * 10, "A" * 128])
def test_a_junk_mac_does_not_match_and_never_raises(mac: str) -> None:
    raw = signed()
    raw["signature"]["mac"] = mac
    try:
        d = Decision.model_validate(raw)
    except ValueError:
        return  # refused by the model already (e.g. empty): the workflow says "malformed"
    found = signing.signature_problem(d, WF, RING, NOW, timedelta(hours=1))
    assert found is not None and found.startswith("signature: does not match")


def test_too_old_and_too_new() -> None:
    assert problem(signed(at=NOW - timedelta(hours=23))) is None
    assert problem(signed(at=NOW - timedelta(hours=25))) == "signature: too old (signed more than 24 h before it arrived)"
    assert problem(signed(at=NOW + timedelta(minutes=4))) is None  # a sender's clock a little ahead
    assert (problem(signed(at=NOW + timedelta(minutes=6))) or "").startswith("signature: too new")
    # Forged and old: the forgery is what is said.
    old_forgery = signing.sign(decision(), WF, KEY, b"x" * 32, NOW - timedelta(days=3))
    assert (problem(old_forgery) or "").startswith("signature: does not match")


def test_a_retired_key_still_verifies_what_it_signed() -> None:
    raw = signing.sign(decision(), WF, "desk-old", RING["desk-old"], NOW)
    assert problem(raw) is None
    assert signing.decision_key_ids(RING) == ["desk-1", "desk-old"]


def test_decision_signatures_are_byte_for_byte_what_they_were() -> None:
    # MACs made before amendments were signed: clients and stored histories sign and verify these exact bytes.
    assert signed()["signature"]["mac"] == "4135474259e430b129d8cfcbbfbaa566c3fc84283119d24c10dc8be4def53a3a"
    sparse = {"request_id": "r", "outcome": "sealed", "kind": "sampling_record", "actor": {"role": "sampler", "id": "S"}}
    assert signed(sparse)["signature"]["mac"] == "905f50487c5eeb554ed3ec5aa76e30bca0ec41b59b8c9207d792ccc7744a99ad"
    assert signed({"junk": 1})["signature"]["mac"] == "84188dc5e672d5e0b08d0693a1f4de10340ab1c5ec17b071f88173a93876a5eb"


# --- plan amendments ------------------------------------------------------------------------------------

PLAN = "plan-P-2027Q1-ZJ"


def amendment(**changes: Any) -> dict[str, Any]:
    return {"request_id": "am-1", "action": "cancel", "reason": "该企业已停产",
            "sender": {"id": "organiser-1", "role": "case_officer"}, "sample_nos": ["ZJ2027-0001"], **changes}


def amendment_problem(raw: dict[str, Any], workflow_id: str = PLAN) -> str | None:
    return signing.signature_problem(Amendment.model_validate(over_the_wire(raw)), workflow_id, RING, NOW,
                                     timedelta(hours=24), AMENDMENT_SIGNING)


def test_a_signed_amendment_verifies_for_its_plan_only() -> None:
    raw = signing.sign(amendment(), PLAN, KEY, SECRET, NOW, AMENDMENT_SIGNING)
    assert amendment_problem(raw) is None
    body = json.loads(signing.canonical(raw, PLAN, AMENDMENT_SIGNING))
    assert body["tag"] == "spotcheck-amendment/1" and body["amendment"]["sample_nos"] == ["ZJ2027-0001"]
    assert amendment_problem(raw, "plan-P-OTHER") == \
        "signature: does not match (forged, altered, or signed for another plan)"
    altered = deepcopy(raw)
    altered["sample_nos"] = ["ZJ2027-0002"]
    assert (amendment_problem(altered) or "").startswith("signature: does not match")
    assert amendment_problem(amendment()) == "signature: missing"
    assert amendment_problem(signing.sign(amendment(), PLAN, KEY, SECRET, NOW - timedelta(hours=25),
                                          AMENDMENT_SIGNING)) == \
        "signature: too old (signed more than 24 h before it arrived)"


def test_a_decision_signature_never_passes_as_an_amendment_nor_the_reverse() -> None:
    # The same fields and target signed under the decision's tag: refused as an amendment…
    as_decision = signing.sign(amendment(), PLAN, KEY, SECRET, NOW)
    assert (amendment_problem(as_decision) or "").startswith("signature: does not match")
    # …and an amendment's signature moved onto a decision for the same workflow is refused as a decision.
    sig = signing.sign(decision(), WF, KEY, SECRET, NOW, AMENDMENT_SIGNING)["signature"]
    assert (problem({**decision(), "signature": sig}) or "").startswith("signature: does not match")


# --- internal signals -----------------------------------------------------------------------------------


def test_seal_and_unseal(configured: None) -> None:
    report = {"branch": "enforcement", "stage": "case_filed", "at": datetime(2025, 11, 3, tzinfo=UTC)}
    sealed = over_the_wire(signing.seal(report, WF))
    assert sealed["seal"]["key_id"] == "internal"
    payload, why = signing.unseal(sealed, WF)
    assert why is None and payload == {"branch": "enforcement", "stage": "case_filed", "at": "2025-11-03T00:00:00+00:00"}
    assert signing.unseal(signing.seal("case-X-merged-1", WF), WF) == ("case-X-merged-1", None)


def test_forged_internal_signals_are_refused(configured: None) -> None:
    sealed = over_the_wire(signing.seal({"heavy": True}, WF))
    altered = deepcopy(sealed)
    altered["payload"]["heavy"] = False
    assert signing.unseal(altered, WF)[1] == "seal: does not match (forged, altered, or sealed for another workflow)"
    assert signing.unseal(sealed, f"{WF}-credit")[1] == "seal: does not match (forged, altered, or sealed for another workflow)"
    assert (signing.unseal({"heavy": True}, WF)[1] or "").startswith("seal: missing")
    assert (signing.unseal({"payload": {"heavy": True}, "seal": None}, WF)[1] or "").startswith("seal: missing")
    # A client holds decision keys only: a seal made with one is refused.
    by_client = {"payload": {"heavy": True}, "seal": {"key_id": KEY, "mac": sealed["seal"]["mac"]}}
    assert signing.unseal(by_client, WF) == (None, f"seal: unknown key {KEY}")
    for junk in (None, 7, [], {"payload": 1, "seal": "x"}, {"payload": 1, "seal": {"key_id": 3, "mac": []}}):
        payload, why = signing.unseal(junk, WF)
        assert payload is None and why


def test_a_rotated_internal_key_seals_and_the_old_one_still_verifies(configured: None) -> None:
    old = over_the_wire(signing.seal({"n": 1}, WF))
    signing.configure({**RING, "internal-2026": b"n" * 32})
    fresh = signing.seal({"n": 2}, WF)
    assert fresh["seal"]["key_id"] == "internal-2026"
    assert signing.unseal(old, WF) == ({"n": 1}, None) and signing.unseal(fresh, WF) == ({"n": 2}, None)
    with pytest.raises(ValueError):
        signing.configure(RING, internal_key_id=KEY)


def test_without_an_internal_key_internal_signals_are_open(unconfigured: None) -> None:
    assert signing.seal({"n": 1}, WF) == {"payload": {"n": 1}, "seal": None}
    assert signing.unseal({"n": 1}, WF) == ({"n": 1}, None)  # a bare payload, as runs before sealing sent
    assert signing.unseal({"payload": {"n": 1}, "seal": None}, WF) == ({"n": 1}, None)


def test_a_worker_never_configured_requires_no_signatures() -> None:
    code = ("from domain import signing; from activities.policy import current_policy; "
            "assert not signing.required() and not signing.keyring(); "
            "p = current_policy(); assert not p.require_signatures and p.max_time_scale == 1.0, p")
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- an enterprise acts only for itself -----------------------------------------------------------------


def test_an_enterprise_acts_only_for_a_party_of_the_sample() -> None:
    def org(role: str, organisation: str | None) -> str | None:
        d = Decision.model_validate(decision(actor={"id": "A", "role": role, "organisation": organisation}))
        return organisation_problem(d, [FIRM, PRODUCER])

    assert org("enterprise", FIRM) is None and org("enterprise", PRODUCER) is None
    assert org("enterprise", f" {FIRM.lower()} ") is None
    foreign = org("enterprise", "91110000100000000X")
    assert foreign is not None and foreign.startswith("actor.organisation: an enterprise may act only for itself")
    assert "91110000100000000X" not in foreign
    assert org("enterprise", None) == foreign
    for staff in Role:
        if staff is not Role.ENTERPRISE:
            assert org(staff.value, "91110000100000000X") is None and org(staff.value, None) is None
    assert organisation_problem(Decision.model_validate(decision()), []) is not None


# --- the deployment policy ------------------------------------------------------------------------------


def test_the_policy_follows_the_worker_and_demo_mode(configured: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPOTCHECK_DEMO_MODE", raising=False)
    legal = policy_activity.current_policy()
    assert legal == DeploymentPolicy(require_signatures=True, max_time_scale=1.0, signing_key_ids=["desk-1", "desk-old"])
    assert legal.time_scale_problem(1.0) is None
    assert "cannot be compressed" in (legal.time_scale_problem(86400) or "")
    for off in ("0", "no", "", "maybe"):
        monkeypatch.setenv("SPOTCHECK_DEMO_MODE", off)
        assert policy_activity.current_policy().max_time_scale == 1.0
    monkeypatch.setenv("SPOTCHECK_DEMO_MODE", "1")
    demo = policy_activity.current_policy()
    assert demo.max_time_scale == 864000.0 and demo.time_scale_problem(86400) is None
    # Recorded in history and read back by the replaying workflow: the same policy.
    assert DeploymentPolicy.model_validate(over_the_wire(demo.model_dump(mode="json"))) == demo


# --- the client signs for the workflow it routes to -----------------------------------------------------


class _Handle:
    def __init__(self, workflow_id: str, sent: list[tuple[str, Any]]) -> None:
        self.id, self.sent = workflow_id, sent

    async def execute_update(self, name: str, payload: Any) -> dict[str, Any]:
        self.sent.append((self.id, payload))
        return {"request_id": payload["request_id"], "kind": payload["kind"], "outcome": payload["outcome"],
                "accepted": True, "stage": "objection_window", "recorded_at": NOW.isoformat()}

    async def signal(self, name: str, payload: Any) -> None:
        self.sent.append((self.id, payload))


class _Client:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def get_workflow_handle(self, workflow_id: str) -> _Handle:
        return _Handle(workflow_id, self.sent)


async def test_the_client_signs_every_decision_for_its_target() -> None:
    fake = _Client()
    spot = SpotcheckClient(fake, "tq", Signer(KEY, SECRET))  # type: ignore[arg-type]
    await spot.decide("ZJ2025-ON-0003", decision())
    await spot.decide("ZJ2025-ON-0003", decision(request_id="req-2"), signal=True)
    await spot.decide("ZJ2025-ON-0003", decision(request_id="req-3"), workflow_id=f"{WF}-recall")
    assert [target for target, _ in fake.sent] == [WF, WF, f"{WF}-recall"]
    for target, payload in fake.sent:
        d = Decision.model_validate(over_the_wire(payload))
        assert signing.signature_problem(d, target, RING, datetime.now(UTC), timedelta(minutes=1)) is None
    unsigned = SpotcheckClient(fake, "tq")  # type: ignore[arg-type]
    await unsigned.decide("ZJ2025-ON-0003", decision(request_id="req-4"), signal=True)
    assert "signature" not in fake.sent[-1][1]


def test_signer_from_a_key_file(tmp_path: Path) -> None:
    from activities.keys import KeyFileError, new_key_file

    path = tmp_path / "keys.json"
    new_key_file(path)
    assert Signer.from_key_file(path).key_id == "dev-1"
    with pytest.raises(KeyFileError, match="no decision key internal"):
        Signer.from_key_file(path, "internal")
    assert SECRET.decode() not in repr(Signer(KEY, SECRET))


@pytest.mark.parametrize(("extra", "message"), [
    (["--key-id", "dev-1"], "--key-id needs --key-file"),
    (["--key-file", "/nonexistent/keys.json"], "cannot read the key file"),
])
@pytest.mark.parametrize("command", [
    ["decide", "X-1", "objection", "waived", "--actor", "E", "--role", "enterprise"],
    ["plan", "amend", "P-1", "-"],
])
def test_decide_and_amend_refuse_an_unusable_key_before_sending(
    command: list[str], extra: list[str], message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPOTCHECK_SIGNING_KEYS", raising=False)
    code = main([*command, *extra, "--address", "127.0.0.1:1"])  # nothing listens there: nothing is sent
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: signing key: ") and message in err


# --- a sample checks the signature's age against the policy it recorded -----------------------------------


async def test_a_sample_takes_the_signature_age_from_its_recorded_policy(
    dev_env: Any, task_queue: str, configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The longest a signed decision may take to arrive is the deployment policy's `signature_max_age`, as
    the sample recorded it at its first wait (replay reads the same), not a constant: with a policy of
    one hour, a decision signed two hours ago is refused and one signed half an hour ago is taken."""
    from activities import records
    from tests import factories as f
    from tests.workflow_env import awaiting, mocked_worker, terminate_when_idle, wait_for

    policy = DeploymentPolicy(require_signatures=True, signing_key_ids=signing.decision_key_ids(),
                              signature_max_age=timedelta(hours=1))
    monkeypatch.setattr(records, "current_policy", lambda: policy)
    async with mocked_worker(dev_env.client, task_queue) as (client, _):
        order = f.order("offline_production")
        handle = await client.start_sample(order)
        await wait_for(handle, awaiting("sampling_record"))
        now = datetime.now(UTC)
        late = signing.sign(f.sealed(), handle.id, KEY, SECRET, now - timedelta(hours=2))
        receipt = await handle.execute_update("submit_decision", late)
        assert (receipt["accepted"], receipt["reason"]) == (
            False, "signature: too old (signed more than 1 h before it arrived)")
        timely = signing.sign(f.sealed(), handle.id, KEY, SECRET, now - timedelta(minutes=30))
        receipt = await handle.execute_update("submit_decision", timely)
        assert receipt["accepted"], receipt
        await terminate_when_idle(handle)
