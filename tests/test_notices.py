"""Notices: the jinja2 templates render the documents, and the activity stores each step's notice once."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jinja2
import pytest
import pytest_asyncio
from temporalio.exceptions import ApplicationError

from activities.db import apply_migrations, create_pool
from activities.notices import NoticeActivities, cn_date, cn_number, render, role_name
from activities.records import notices_for
from domain.credit_code import with_check_character
from domain.models import SampleOrder
from domain.records import NoticeRequest

T0 = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)
AUTHORITY = "杭州市市场监督管理局"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(postgres_dsn)
    await apply_migrations(p)
    yield p
    await p.close()


def order(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sample_no": "ZJ2025-330100-0042",
        "plan_id": "P2025-ZJ-01",
        "task_type": "routine",
        "channel": "online",
        "region": "330100",
        "product": {
            "name": "电热水壶",
            "classification_code": "05.01.02",
            "brand": "某牌",
            "model": "MK-15E",
            "batch": "20250801",
        },
        "sampled_party": {
            "name": "杭州某电器有限公司",
            "credit_code": with_check_character("91330100MA2B3C4D5"),
            "region": "330100",
        },
        "labelled_producer": {
            "name": "宁波某电器制造有限公司",
            "credit_code": with_check_character("91330200MA2E6F7G8"),
            "region": "330200",
        },
        "platform": {"platform": "某电商平台", "shop_name": "某电器旗舰店", "listing_id": "6688001"},
        "inspection_agency": {"name": "浙江省质量科学研究院", "code": "ZJQ"},
    }
    data.update(over)
    return SampleOrder.model_validate(data).model_dump(mode="json")


def result_context(verdict: str = "fail", evaluative: bool = False) -> dict[str, Any]:
    failed = [
        {"item": "泄漏电流", "standard": "GB 4706.1-2005", "requirement": "≤0.75 mA", "result": "1.26 mA"},
        {"item": "标志和说明", "standard": "GB 4706.19-2008", "requirement": "应有额定功率标志", "result": None},
    ]
    return {
        "order": order(task_type="evaluative") if evaluative else order(),
        "report": {"report_no": "ZJQ-2025-W0815", "failed_items": failed if verdict == "fail" else []},
        "verdict": verdict,
        "issued_on": "2025-10-20",
        "authority": AUTHORITY,
        "notice_no": "杭市监抽通〔2025〕42号",
        "objection_days": 15,
        "evaluative": evaluative,
    }


# --- rendering -----------------------------------------------------------------------------------------


def test_failed_result_names_items_standards_and_objection_right() -> None:
    title, body, digest = render("inspection_result", result_context("fail"))
    assert title == "产品质量监督抽查检验结果通知书"
    assert digest == hashlib.sha256(body.encode("utf-8")).hexdigest()
    for text in (
        "杭市监抽通〔2025〕42号",
        "ZJ2025-330100-0042",
        "电热水壶",
        "某牌",
        "MK-15E",
        "20250801",
        "杭州某电器有限公司",
        with_check_character("91330100MA2B3C4D5"),
        "浙江省质量科学研究院",
        "ZJQ-2025-W0815",
        "检验结论为：不合格",
        "| 1 | 泄漏电流 | GB 4706.1-2005 | ≤0.75 mA | 1.26 mA |",
        "| 2 | 标志和说明 | GB 4706.19-2008 | 应有额定功率标志 | — |",
        "自收到本通知书之日起十五日内，向杭州市市场监督管理局或者其上级市场监督管理部门提出书面复检申请",
        "逾期未提出的，视为承认检验结果",
        "《中华人民共和国产品质量法》第十五条",
        "《浙江省产品质量监督条例》第二十一条",
        "2025年10月20日",
    ):
        assert text in body, text
    assert "{{" not in body and "{%" not in body


def test_objection_days_come_from_the_context() -> None:
    ctx = result_context("fail") | {"objection_days": 20}
    _, body, _ = render("inspection_result", ctx)
    assert "自收到本通知书之日起二十日内" in body


def test_pass_has_no_failed_items_or_objection() -> None:
    _, body, _ = render("inspection_result", result_context("pass"))
    assert "检验结论为：合格" in body
    assert "不合格" not in body and "| 序号 |" not in body and "复检申请" not in body


def test_evaluative_is_a_risk_notice_without_objection() -> None:
    title, body, _ = render("inspection_result", result_context("fail", evaluative=True))
    assert "风险速筛" in title
    assert "泄漏电流" in body and "GB 4706.1-2005" in body
    assert "不适用异议和复检程序" in body and "风险提示" in body
    assert "书面复检申请" not in body and "视为承认检验结果" not in body


def test_same_input_same_hash() -> None:
    assert render("inspection_result", result_context()) == render("inspection_result", result_context())
    assert render("inspection_result", result_context())[2] != render("inspection_result", result_context("pass"))[2]


def test_objection_decisions() -> None:
    base = {"order": order(), "issued_on": "2025-10-28", "authority": AUTHORITY, "notice_no": "杭市监复〔2025〕3号"}
    title, body, _ = render(
        "objection_decision",
        base | {"decision": "accepted", "reason": "申请在法定期限内提出", "retest_agency": "某检测中心"},
    )
    assert title == "复检申请受理决定书"
    assert "决定受理你单位的复检申请" in body and "复检由某检测中心承担" in body and "申请在法定期限内提出。" in body
    title, body, _ = render("objection_decision", base | {"decision": "rejected", "reason": "申请已超过法定期限。"})
    assert title == "复检申请不予受理决定书"
    assert "不予受理" in body and "申请已超过法定期限。" in body and "行政复议" in body
    assert "。。" not in body
    _, body, _ = render("objection_decision", base | {"decision": "accepted", "reason": "", "retest_agency": None})
    assert "经审查" not in body and "复检机构及复检的时间、地点等具体事项另行通知" in body
    with pytest.raises(jinja2.UndefinedError):
        render("objection_decision", base | {"decision": "maybe", "reason": "x"})


def test_deadline_escalation() -> None:
    title, body, _ = render(
        "deadline_escalation",
        {
            "order": order(),
            "awaiting": "复检申请受理决定",
            "role": "case_officer",
            "due": "2025-10-31",
            "rule_title": "复检申请受理决定期限",
            "basis": "市级规定（已核对）",
            "issued_on": "2025-11-03",
        },
    )
    assert title == "超期督办通知"
    for text in ("ZJ2025-330100-0042", "复检申请受理决定", "2025年10月31日", "复检申请受理决定期限", "市级规定", "承办人员"):
        assert text in body, text


def test_missing_context_key_fails_loudly() -> None:
    ctx = result_context()
    del ctx["report"]
    with pytest.raises(jinja2.UndefinedError, match="report"):
        render("inspection_result", ctx)
    ctx = result_context()
    del ctx["order"]["product"]["brand"]
    with pytest.raises(jinja2.UndefinedError, match="brand"):
        render("inspection_result", ctx)


def test_chinese_numbers_and_dates() -> None:
    assert [cn_number(n) for n in (0, 3, 10, 15, 20, 21, 90, 99, 120)] == [
        "零", "三", "十", "十五", "二十", "二十一", "九十", "九十九", "120",
    ]
    assert cn_date("2025-10-01") == "2025年10月1日"
    assert cn_date(datetime(2025, 1, 9, 8, tzinfo=UTC)) == "2025年1月9日"
    assert cn_date("下周") == "下周"
    assert role_name("case_officer") == "产品质量监督管理部门承办人员"
    assert role_name("lab/case_officer") == "承检机构、产品质量监督管理部门承办人员"
    assert role_name(["enterprise", "someone"]) == "被抽样单位、someone"


# --- the activity --------------------------------------------------------------------------------------


def request(workflow_id: str, step_id: str = "notice:inspection_result", **kw: Any) -> NoticeRequest:
    return NoticeRequest(
        workflow_id=workflow_id,
        step_id=step_id,
        template=kw.pop("template", "inspection_result"),
        context=kw.pop("context", None) or result_context(),
        issued_at=kw.pop("issued_at", T0),
    )


async def test_render_notice_stores_once_and_returns_the_first(pool: asyncpg.Pool) -> None:
    acts = NoticeActivities(pool)
    wf = f"sample-N-{uuid.uuid4().hex[:10]}"
    first = await acts.render_notice(request(wf))
    assert first.title == "产品质量监督抽查检验结果通知书"
    assert first.template == "inspection_result" and first.workflow_id == wf
    # A retry, even one whose context has changed meanwhile, returns the notice first stored.
    changed = result_context() | {"notice_no": "杭市监抽通〔2025〕99号"}
    again = await acts.render_notice(request(wf, context=changed, issued_at=T0 + timedelta(hours=1)))
    assert again == first
    [row] = await notices_for(pool, wf)
    assert row["id"] == first.notice_id and row["sha256"] == first.sha256
    assert row["sha256"] == hashlib.sha256(row["body"].encode("utf-8")).hexdigest()
    assert "杭市监抽通〔2025〕42号" in row["body"] and row["issued_at"] == T0
    # Another step of the same workflow is another notice.
    other = await acts.render_notice(request(wf, step_id="notice:inspection_result:producer"))
    assert other.notice_id != first.notice_id and other.sha256 == first.sha256
    assert [r["step_id"] for r in await notices_for(pool, wf)] == [
        "notice:inspection_result",
        "notice:inspection_result:producer",
    ]


async def test_unknown_template_is_not_retryable(pool: asyncpg.Pool) -> None:
    acts = NoticeActivities(pool)
    wf = f"sample-N-{uuid.uuid4().hex[:10]}"
    for name in ("no_such_notice", "../pyproject"):
        with pytest.raises(ApplicationError) as err:
            await acts.render_notice(request(wf, template=name))
        assert err.value.non_retryable
        assert name in str(err.value)
    assert await notices_for(pool, wf) == []


async def test_missing_field_is_not_retryable(pool: asyncpg.Pool) -> None:
    acts = NoticeActivities(pool)
    wf = f"sample-N-{uuid.uuid4().hex[:10]}"
    ctx = result_context()
    del ctx["authority"]
    with pytest.raises(ApplicationError) as err:
        await acts.render_notice(request(wf, context=ctx))
    assert err.value.non_retryable and "authority" in str(err.value)
    assert await notices_for(pool, wf) == []
