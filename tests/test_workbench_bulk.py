"""Bulk decisions in the workbench (issue 11): a selection of one kind decided with one form, each item checked
and sent as its own decision (the single decision's path), a result per item, nothing sent twice when the form
is sent again, and the size bound (a real dev server and PostgreSQL; the workflows' activities in memory)."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
from temporalio.testing import WorkflowEnvironment

from domain.decisions import Role
from starter.gateway.workbench import MAX_BULK
from tests import factories as f
from tests.test_workbench import added, at_lab_report, browser, user, workbench
from tests.workflow_env import awaiting, wait_for


def item(no: str, kind: str = "lab_report") -> str:
    return f"{kind}|{no}|sample-{no}"


async def test_a_bulk_lab_report_gives_each_item_its_own_result_and_a_second_send_sends_nothing(
    dev_env: WorkflowEnvironment, task_queue: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with workbench(dev_env, task_queue, pool, tmp_path) as (http, client, store, users):
        first, second = await at_lab_report(client), await at_lab_report(client)
        far = await at_lab_report(client, region="110105")  # outside the user's regions: refused, audited
        early = f.order("offline_production")  # still awaits its sampling record: the workflow rejects
        await wait_for(await client.start_sample(early), awaiting("sampling_record"))
        lab = await added(users, user(Role.LAB, region="330000"))
        person = browser(http)
        await person.sign_in(lab.id)
        inbox = (await person.http.get("/workbench")).text
        assert f'value="{item(first)}"' in inbox and f'value="{item(second)}"' in inbox
        chosen = [item(first), item(second), item(far), item(early["sample_no"])]
        form = await person.http.get("/workbench/bulk", params=[("item", v) for v in chosen])
        assert form.status_code == 200 and 'name="data.report_no"' in form.text and "检验报告编号" in form.text
        fields = {k: re.search(rf'name="{k}" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
                  for k in ("csrf", "bulk_id")}
        body = {**fields, "role": "lab", "outcome": "pass", "data.report_no": "R-BULK-1", "item": chosen}
        answer = await person.http.post("/workbench/bulk", data=body,
                                        files={"evidence": ("bulk.pdf", b"%PDF bulk", "application/pdf")})
        assert answer.status_code == 200, answer.text
        results = dict(re.findall(r'data-sample="([^"]+)" data-result="([^"]+)"', answer.text))
        assert results == {first: "accepted", second: "accepted", far: "refused", early["sample_no"]: "rejected"}
        assert "region:" in answer.text and "lab_report" in answer.text
        for no in (first, second):
            status = await wait_for(client.client.get_workflow_handle(f"sample-{no}"), lambda s: s.stage == "retention")
            (row,) = [r for r in store.audit_trail(status.workflow_id) if r["request_id"].startswith("bulk-")]
            assert row["request_id"] == f"bulk-{fields['bulk_id']}-sample-{no}" and row["actor"]["id"] == lab.id
            assert [e["name"] for e in row["decision"]["evidence"]] == ["bulk.pdf"]
        refused = await pool.fetch("SELECT actor_id, reason, via FROM decisions WHERE workflow_id = $1",
                                   f"sample-{far}")
        assert [(r["actor_id"], r["via"]) for r in refused] == [(lab.id, "workbench")]
        assert refused[0]["reason"].startswith("region:")
        trails = {no: len(store.audit_trail(f"sample-{no}")) for no in (first, second, early["sample_no"])}

        # The same form again: the first results, and nothing reaches a workflow or the audit table twice.
        again = await person.http.post("/workbench/bulk", data=body)
        assert dict(re.findall(r'data-sample="([^"]+)" data-result="([^"]+)"', again.text)) == results
        assert "not sent again" in again.text
        assert {no: len(store.audit_trail(f"sample-{no}")) for no in trails} == trails
        assert len(await pool.fetch("SELECT 1 FROM decisions WHERE workflow_id = $1", f"sample-{far}")) == 1

        # Over the bound, mixed kinds, no CSRF token: refused before anything is sent.
        over = [item(f"T-{n:04d}") for n in range(MAX_BULK + 1)]
        too_many = await person.http.post("/workbench/bulk", data={**body, "item": over})
        assert too_many.status_code == 422 and f"at most {MAX_BULK} items" in too_many.text
        assert (await person.http.get("/workbench/bulk", params=[("item", v) for v in over])).status_code == 422
        mixed = await person.http.post("/workbench/bulk", data={**body, "item": [item(first), item(second, "objection")]})
        assert mixed.status_code == 422 and "one kind per bulk" in mixed.text
        no_csrf = await person.http.post("/workbench/bulk", data={k: v for k, v in body.items() if k != "csrf"})
        assert no_csrf.status_code == 403
        assert {no: len(store.audit_trail(f"sample-{no}")) for no in trails} == trails
