"""The staff workbench through the ASGI app in-process: sign-in, sessions and CSRF, the inbox, a decision form
with evidence, the API token, and decisions refused for a role, region or enterprise the user does not hold
(a real dev server and PostgreSQL for the users; the workflows' activities in memory)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.decisions import Role
from domain.jurisdiction import area_prefix
from domain.users import User, act_problem
from starter.client import SpotcheckClient
from starter.gateway import build_app
from starter.gateway.workbench import Workbench, form_fields, inbox_query
from starter.users import UserStore
from tests import factories as f
from tests.mock_activities import Store
from tests.test_gateway import SETTINGS
from tests.workflow_env import awaiting, mocked_worker, wait_for

PASSWORD = "correct horse battery"
ORDER_REGION = "330100"  # examples/orders/offline_production.json
FIRM = "91330100MA2ABCDE1R"  # its sampled party
OTHER_FIRM = "91440300MA5G7HJK8D"


def user(role: Role, *, region: str = "330000", code: str | None = None) -> User:
    enterprise = role is Role.ENTERPRISE
    return User(id=f"{role.value}-{uuid.uuid4().hex[:8]}", display_name=f"测试 {role.value}", roles=(role,),
                regions=() if enterprise else (region,), organisation="测试单位",
                credit_code=(code or FIRM) if enterprise else None)


async def added(store: UserStore, u: User) -> User:
    assert await store.add(u, PASSWORD)
    return u


class Browserless:
    """A signed-in person, as a browser would be: cookies kept, the CSRF token read from each page."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def csrf(self, path: str = "/workbench/login") -> str:
        page = await self.http.get(path)
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match, page.text[:500]
        return match.group(1)

    async def sign_in(self, user_id: str, password: str = PASSWORD) -> httpx.Response:
        token = await self.csrf()
        return await self.http.post("/workbench/login", data={"csrf": token, "user_id": user_id, "password": password})


@asynccontextmanager
async def workbench(env: WorkflowEnvironment, task_queue: str, pool: asyncpg.Pool, tmp_path: Path,
                    session_seconds: int = 3600) -> AsyncIterator[tuple[Any, SpotcheckClient, Store, UserStore]]:
    users = UserStore(pool)
    bench = Workbench(users, "s" * 48, tmp_path / "evidence", session_seconds=session_seconds)
    async with mocked_worker(env.client, task_queue) as (client, store):
        app = build_app(env.client, SETTINGS, task_queue=task_queue, workbench=bench)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
            yield http, client, store, users


def browser(http: httpx.AsyncClient) -> Browserless:
    return Browserless(httpx.AsyncClient(transport=http._transport, base_url="http://bench"))


async def at_lab_report(client: SpotcheckClient, **overrides: Any) -> str:
    order = f.order("offline_production", **overrides)
    handle = await client.start_sample(order)
    no = order["sample_no"]
    await wait_for(handle, awaiting("sampling_record"))
    await client.decide(no, f.sealed())
    await wait_for(handle, awaiting("sample_receipt"))
    await client.decide(no, f.received())
    await wait_for(handle, awaiting("lab_report"))
    return str(no)


def test_regions_cover_their_subdivisions_and_the_refusals_name_the_field() -> None:
    assert [area_prefix(c) for c in ("330000", "330100", "330106")] == ["33", "3301", "330106"]
    lab = user(Role.LAB, region="330000")
    assert lab.covers("330106") and not lab.covers("110000")
    assert act_problem(lab, *_lab_report(), "330100", [FIRM]) is None
    assert (act_problem(lab, *_lab_report(), "110105", [FIRM]) or "").startswith("region:")
    assert (act_problem(user(Role.SAMPLER), *_lab_report(), "330100", [FIRM]) or "").startswith("role:")
    firm = user(Role.ENTERPRISE, code=OTHER_FIRM)
    from domain.decisions import DecisionKind

    assert (act_problem(firm, DecisionKind.OBJECTION, Role.ENTERPRISE, "330100", [FIRM]) or "").startswith("organisation:")
    assert "AwaitingRole IN ('lab')" in inbox_query(lab) and "Region STARTS_WITH '33'" in inbox_query(lab)
    assert f"EnterpriseCode = '{OTHER_FIRM}'" in inbox_query(firm)
    with pytest.raises(ValueError, match="credit_code"):
        User(id="e1", display_name="x", roles=(Role.ENTERPRISE,))


def _lab_report() -> tuple[Any, Role]:
    from domain.decisions import DecisionKind

    return DecisionKind.LAB_REPORT, Role.LAB


def test_the_lab_report_form_comes_from_its_payload_schema() -> None:
    from domain.decisions import PAYLOADS, DecisionKind

    # Every field's label is its Chinese title in the payload model (the one definition), never the English fallback.
    untitled = [(k.value, x.name) for k in PAYLOADS for x in form_fields(k) if x.label.isascii()]
    assert not untitled, untitled

    fields = {x.name: x for x in form_fields(DecisionKind.LAB_REPORT)}
    assert fields["report_no"].required and fields["report_no"].widget == "text"
    assert fields["failed_items"].widget == "json" and not fields["failed_items"].required
    receipt = {x.name: x for x in form_fields(DecisionKind.SAMPLE_RECEIPT)}
    assert receipt["seal_intact"].widget == "boolean" and receipt["received_at"].widget == "datetime-local"
    assert {x.name: x for x in form_fields(DecisionKind.CASE_OUTCOME)}["heavy_kind"].widget == "select"


async def test_sign_in_refuses_a_bad_password_a_missing_csrf_token_and_an_expired_session(
    dev_env: WorkflowEnvironment, task_queue: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with workbench(dev_env, task_queue, pool, tmp_path, session_seconds=1) as (http, _c, _s, users):
        lab = await added(users, user(Role.LAB))
        person = browser(http)
        assert (await person.http.get("/workbench")).headers["location"] == "/workbench/login"
        bad = await person.sign_in(lab.id, "Tr0ub4dor&3-guess")
        assert bad.status_code == 401 and "Tr0ub4dor" not in bad.text
        assert (await person.sign_in("no-such-user")).status_code == 401
        no_csrf = await person.http.post("/workbench/login", data={"user_id": lab.id, "password": PASSWORD})
        assert no_csrf.status_code == 403 and "csrf" in no_csrf.text
        good = await person.sign_in(lab.id)
        assert good.status_code == 303 and good.headers["location"] == "/workbench"
        cookie = good.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=1" in cookie
        assert (await person.http.get("/workbench")).status_code == 200
        await asyncio.sleep(2.2)  # the signed cookie's time is past its max age: no session any more
        assert (await person.http.get("/workbench")).headers["location"] == "/workbench/login"
        # A disabled user cannot sign in again.
        assert await users.set_disabled(lab.id)
        assert (await person.sign_in(lab.id)).status_code == 401


async def test_a_lab_user_decides_through_the_form_with_evidence_and_the_actor_is_the_user(
    dev_env: WorkflowEnvironment, task_queue: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with workbench(dev_env, task_queue, pool, tmp_path) as (http, client, store, users):
        no = await at_lab_report(client)
        lab = await added(users, user(Role.LAB, region="330000"))
        person = browser(http)
        await person.sign_in(lab.id)
        inbox = await person.http.get("/workbench")
        assert no in inbox.text and "lab_report" in inbox.text
        form_path = f"/workbench/samples/{no}/decide/lab_report"
        form = await person.http.get(form_path)
        assert form.status_code == 200 and 'name="data.report_no"' in form.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        content = b"%PDF-1.4 test report"
        fields = {"csrf": csrf, "role": "lab", "outcome": "pass", "data.report_no": "R-WB-1", "request_id": "wb-1"}
        missing = await person.http.post(form_path, data={**fields, "data.report_no": ""})
        assert missing.status_code == 409 or missing.status_code == 422
        answer = await person.http.post(form_path, data=fields, files={"evidence": ("report.pdf", content, "application/pdf")})
        assert answer.status_code == 303, answer.text
        sha = hashlib.sha256(content).hexdigest()
        assert (tmp_path / "evidence" / sha).read_bytes() == content
        status = await wait_for(client.client.get_workflow_handle(f"sample-{no}"), lambda s: s.stage == "retention")
        (row,) = [r for r in store.audit_trail(status.workflow_id) if r["request_id"] == "wb-1"]
        assert row["actor"]["id"] == lab.id and row["actor"]["role"] == "lab" and row["actor"]["region"] == ORDER_REGION
        assert [(e["name"], e["sha256"]) for e in row["decision"]["evidence"]] == [("report.pdf", sha)]
        page = await person.http.get(f"/workbench/samples/{no}")
        assert "retention" in page.text and "lab_report = pass" in page.text


async def test_decisions_for_a_role_region_or_enterprise_not_held_are_refused_and_audited(
    dev_env: WorkflowEnvironment, task_queue: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with workbench(dev_env, task_queue, pool, tmp_path) as (http, client, store, users):
        no = await at_lab_report(client)
        far_lab = await added(users, user(Role.LAB, region="110000"))
        sampler = await added(users, user(Role.SAMPLER))
        other_firm = await added(users, user(Role.ENTERPRISE, code=OTHER_FIRM))
        # Another region's lab sees neither the item nor the form.
        person = browser(http)
        await person.sign_in(far_lab.id)
        assert no not in (await person.http.get("/workbench")).text
        assert (await person.http.get(f"/workbench/samples/{no}/decide/lab_report")).status_code == 404
        report = {"kind": "lab_report", "outcome": "pass", "data": {"report_no": "R-X"}}
        cases = [(far_lab, "lab", "region:"), (sampler, "lab", "role:"), (sampler, "sampler", "kind:"),
                 (other_firm, "enterprise", "kind:")]
        for u, role, reason in cases:
            token = await users.issue_token(u.id)
            answer = await http.post(f"/api/samples/{no}/decisions", json={**report, "role": role,
                                     "request_id": f"refused-{u.id}-{role}"}, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 403, answer.text
            assert answer.json()["detail"].startswith(reason), (u.id, answer.text)
        firm_token = await users.issue_token(other_firm.id)
        objection = {"kind": "objection", "outcome": "filed", "role": "enterprise", "reason": "异议", "request_id": "o-1"}
        answer = await http.post(f"/api/samples/{no}/decisions", json=objection,
                                 headers={"Authorization": f"Bearer {firm_token}"})
        assert answer.status_code == 403 and answer.json()["detail"].startswith("organisation:")
        rows = await pool.fetch("SELECT actor_id, reason, via, accepted FROM decisions WHERE workflow_id = $1",
                                f"sample-{no}")
        assert {(r["actor_id"], r["via"], r["accepted"]) for r in rows} >= {
            (far_lab.id, "workbench", False), (sampler.id, "workbench", False), (other_firm.id, "workbench", False)}
        # Nothing reached the workflow: it still waits for the report, and its own trail has no such attempt.
        assert not [r for r in store.audit_trail(f"sample-{no}") if str(r["request_id"]).startswith(("refused", "o-1"))]
        assert (await http.get("/api/inbox", headers={"Authorization": "Bearer spt_forged"})).status_code == 401


async def test_the_api_token_acts_as_its_user(
    dev_env: WorkflowEnvironment, task_queue: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with workbench(dev_env, task_queue, pool, tmp_path) as (http, client, store, users):
        no = await at_lab_report(client)
        lab = await added(users, user(Role.LAB))
        headers = {"Authorization": f"Bearer {await users.issue_token(lab.id)}"}
        listed = await http.get("/api/inbox", headers=headers)
        assert listed.status_code == 200, listed.text
        entries = listed.json()
        assert {"sample_no": no, "kind": "lab_report"}.items() <= next(e for e in entries if e["sample_no"] == no).items()
        # The CLI's inbox names the awaited kind (the same listing, asked of the dev server).
        address = dev_env.client.service_client.config.target_host
        code, out = await asyncio.to_thread(_cli, ["inbox", "--role", "lab", "--kind", "lab_report", "--address",
                                                   address, "--task-queue", task_queue])
        assert code == 0 and any(line.startswith(no) and "lab_report" in line for line in out.splitlines()), out
        answer = await http.post(f"/api/samples/{no}/decisions", headers=headers, json={
            "kind": "lab_report", "outcome": "fail", "role": "lab", "request_id": "api-1",
            "data": {"report_no": "R-API", "failed_items": f.FAILED_ITEMS}})
        assert answer.status_code == 200 and answer.json()["accepted"], answer.text
        await wait_for(client.client.get_workflow_handle(f"sample-{no}"), lambda s: s.stage != "testing")
        (row,) = [r for r in store.audit_trail(f"sample-{no}") if r["request_id"] == "api-1"]
        assert row["actor"]["id"] == lab.id
        # A final fail's branches, with their deadlines, in `sample show`.
        await wait_for(client.client.get_workflow_handle(f"sample-{no}"), awaiting("result_delivery"))
        await client.decide(no, f.delivered())
        await wait_for(client.client.get_workflow_handle(f"sample-{no}"), awaiting("objection"))
        await client.decide(no, f.objection("waived"))
        await wait_for(client.client.get_workflow_handle(f"sample-{no}"),
                       lambda s: any(b.branch == "rectification" and b.awaiting for b in s.branches))
        code, out = await asyncio.to_thread(_cli, ["sample", "show", no, "--address", address])
        assert code == 0 and f"rectification  sample-{no}-rectification" in out, out
        assert "    awaiting rectification_report from" in out, out


def _cli(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    from starter import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, out.getvalue()


async def test_an_awaited_decision_is_claimed_and_assigned_only_to_a_colleague_who_may_make_it(
    dev_env: WorkflowEnvironment, task_queue: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with workbench(dev_env, task_queue, pool, tmp_path) as (http, client, _store, users):
        no = await at_lab_report(client)
        lab, colleague = await added(users, user(Role.LAB)), await added(users, user(Role.LAB, region="330100"))
        far = await added(users, user(Role.LAB, region="110000"))
        person = browser(http)
        await person.sign_in(lab.id)
        claim = {"csrf": await person.csrf("/workbench"), "sample_no": no, "workflow_id": f"sample-{no}",
                 "kind": "lab_report"}
        assert (await person.http.post("/workbench/claims", data={**claim, "assignee": lab.id})).status_code == 303
        assert (await users.claims([f"sample-{no}"])) == {(f"sample-{no}", "lab_report"): lab.id}
        refused = await person.http.post("/workbench/claims", data={**claim, "assignee": far.id})
        assert refused.status_code == 403 and "assignee:" in refused.text
        assert (await person.http.post("/workbench/claims", data={**claim, "assignee": colleague.id})).status_code == 303
        row = re.search(rf'<tr[^>]*data-sample="{no}".*?</tr>', (await person.http.get("/workbench")).text, re.S)
        assert row and f"<code>{colleague.id}</code>" in row.group(0)
        no_csrf = await person.http.post("/workbench/claims", data={k: v for k, v in claim.items() if k != "csrf"})
        assert no_csrf.status_code == 403
