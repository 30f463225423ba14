"""Issue 13: a sample's issued notices shown and printed to PDF (`spotcheck notice show|print`), the issuing
bureau named in full from the GB/T 2260 table; the PDF's text, extracted, is the stored notice's."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pypdf import PdfReader

from activities.notice_print import UnnamedRegion, notice_pdf, sample_notices, with_authority_names
from activities.notices import NoticeActivities
from domain.records import NoticeRequest
from domain.regions import authority_name
from tests import factories as f
from tests.test_reports import _cli

AT = datetime(2026, 10, 20, 2, 0, tzinfo=UTC)


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


async def _issue(pool: asyncpg.Pool, workflow_id: str, step: str, template: str, context: dict[str, Any],
                 at: datetime = AT) -> None:
    await NoticeActivities(pool).render_notice(NoticeRequest(
        workflow_id=workflow_id, step_id=step, template=template, context=context, issued_at=at))


async def _sample_with_notices(pool: asyncpg.Pool, authority: str = "330100 市场监督管理局") -> str:
    """A failed sample's result notice, an escalation in its rectification branch, and a notice of its
    follow-up sample (sample-<no>-FU1, another sample: not one of its notices)."""
    order = f.order("online")
    no, wid = order["sample_no"], f"sample-{order['sample_no']}"
    await _issue(pool, wid, "inspection-result", "inspection_result", {
        "order": order, "report": {"report_no": "R-9", "failed_items": f.FAILED_ITEMS}, "verdict": "fail",
        "issued_on": "2026-10-20", "authority": authority, "notice_no": f"{no}-01", "objection_days": 15,
        "evaluative": False})
    await _issue(pool, f"{wid}-rectification", "escalation-rectification_report-3", "deadline_escalation", {
        "order": order, "awaiting": "整改报告", "role": "enterprise", "due": "2026-12-19", "rule_title": "责令整改",
        "basis": "《产品质量监督抽查管理暂行办法》第四十六条", "issued_on": "2026-12-21",
        "authority": "330000 省级市场监督管理局"}, at=AT.replace(month=12))
    await _issue(pool, f"{wid}-FU1", "inspection-result", "deadline_escalation", {
        "order": order, "awaiting": "x", "role": "lab", "due": "2027-01-01", "rule_title": "x", "basis": "x",
        "issued_on": "2027-01-02"})
    return no


def test_bureaus_are_named_in_full_and_never_by_a_bare_code() -> None:
    assert authority_name("330106") == "杭州市西湖区市场监督管理局"
    assert authority_name("330782") == "义乌市市场监督管理局"
    assert with_authority_names("330100 市场监督管理局\n依法……330000 省级市场监督管理局执法稽查部门") == (
        "杭州市市场监督管理局\n依法……浙江省市场监督管理局执法稽查部门")
    with pytest.raises(UnnamedRegion, match="region 339999"):
        with_authority_names("339999 市场监督管理局")


async def test_a_samples_notices_are_its_own_and_its_branches_in_order_of_issue(pool: asyncpg.Pool) -> None:
    no = await _sample_with_notices(pool)
    notices = await sample_notices(pool, no)
    assert [(n["n"], n["workflow_id"], n["title"]) for n in notices] == [
        (1, f"sample-{no}", "产品质量监督抽查检验结果通知书"), (2, f"sample-{no}-rectification", "超期督办通知")]
    assert all(n["intact"] for n in notices)
    # A stored text changed behind the record's back shows as such.
    await pool.execute("UPDATE notices SET body = body || '篡改' WHERE workflow_id = $1", f"sample-{no}-rectification")
    assert [n["intact"] for n in await sample_notices(pool, no)] == [True, False]


async def test_the_printed_notice_reads_as_the_stored_one(pool: asyncpg.Pool) -> None:
    no = await _sample_with_notices(pool)
    notices = await sample_notices(pool, no)
    pdf = notice_pdf(notices[:1])
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    stored = notices[0]["body"]
    assert "330100 市场监督管理局" in stored
    assert _squeezed(with_authority_names(stored)) in _squeezed(text)
    assert "杭州市市场监督管理局" in text and "330100" not in text
    assert notices[0]["sha256"] in _squeezed(text)  # the footer names the stored record
    both = PdfReader(io.BytesIO(notice_pdf(notices)))
    assert len(both.pages) >= 2 and "浙江省市场监督管理局" in both.pages[-1].extract_text()


async def test_the_cli_shows_and_prints_notices(pool: asyncpg.Pool, postgres_dsn: str, tmp_path: Path) -> None:
    no = await _sample_with_notices(pool)
    code, out, err = await _cli("notice", "show", no, dsn=postgres_dsn)
    assert code == 0, err
    assert "=== 1. 产品质量监督抽查检验结果通知书" in out and "=== 2. 超期督办通知" in out
    assert "杭州市市场监督管理局" in out and "市场监督管理局" not in re.sub(r"(杭州市|浙江省)市场监督管理局", "", out)
    code, out, err = await _cli("notice", "print", no, "1", "-o", str(tmp_path / "n.pdf"), dsn=postgres_dsn)
    assert code == 0, err
    text = PdfReader(tmp_path / "n.pdf").pages[0].extract_text()
    assert "产品质量监督抽查检验结果通知书" in text and "超期督办通知" not in text

    code, _, err = await _cli("notice", "show", no, "3", dsn=postgres_dsn)
    assert code == 1 and "no notice 3 of sample" in err
    code, _, err = await _cli("notice", "show", "x;rm -rf /", dsn=postgres_dsn)
    assert code == 2 and "not a sample number" in err and "rm -rf" not in err
    unnamed = await _sample_with_notices(pool, authority="339999 市场监督管理局")
    code, _, err = await _cli("notice", "print", unnamed, "1", "-o", str(tmp_path / "u.pdf"), dsn=postgres_dsn)
    assert code == 1 and "region 339999: no name" in err and not (tmp_path / "u.pdf").exists()
