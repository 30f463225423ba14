"""A sample's issued notices as people receive them: the stored text (table `notices`, activities/notices.py) with
each issuing bureau named in full from the GB/T 2260 table (domain/regions.py; the workflows write the
authority as `<region code> 市场监督管理局`), shown on screen or printed to PDF.

The PDF uses reportlab's built-in CID font STSong-Light (Adobe's Chinese font set: no font file to ship or
install, and its text extracts back as Unicode); a reader without that font substitutes its own."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

import asyncpg

from domain.branches import BRANCHES
from domain.models import workflow_id_for
from domain.regions import authority_name

FONT = "STSong-Light"

# `330100 市场监督管理局`, `330000 省级市场监督管理局`: a bureau named by its region code in the stored text.
_BARE_AUTHORITY = re.compile(r"(?<![0-9])([0-9]{6}) ?(?:省级)?市场监督管理局")
_BRANCH_WORKFLOW = "-(?:" + "|".join(re.escape(b) for b in BRANCHES) + ")(?:-[0-9]+)?"


class UnnamedRegion(LookupError):
    """A notice names a bureau by a region code the table of names does not hold."""


def with_authority_names(text: str) -> str:
    """`text` with every bureau named by its region code named in full (杭州市市场监督管理局)."""
    def named(match: re.Match[str]) -> str:
        name = authority_name(match.group(1))
        if name is None:
            raise UnnamedRegion(f"region {match.group(1)}: no name in domain/regions.py (GB/T 2260); add it to print "
                                "the notice with its authority's name")
        return name
    return _BARE_AUTHORITY.sub(named, text)


async def sample_notices(pool: asyncpg.Pool, sample_no: str) -> list[dict[str, Any]]:
    """Every notice issued for the sample and its branches (sample-<no>, sample-<no>-<branch>[-<n>]), in order of
    issue; `intact` says whether the stored text still has its stored SHA-256."""
    wid = workflow_id_for(sample_no)
    rows = await pool.fetch(
        "SELECT id, workflow_id, step_id, template, title, body, sha256, issued_at FROM notices"
        " WHERE workflow_id = $1 OR (starts_with(workflow_id, $1 || '-') AND workflow_id ~ ('^' || $2 || '$'))"
        " ORDER BY issued_at, id",
        wid, re.escape(wid) + _BRANCH_WORKFLOW,
    )
    notices = []
    for n, row in enumerate(rows, 1):
        notice = dict(row)
        notice["n"] = n
        notice["intact"] = hashlib.sha256(row["body"].encode("utf-8")).hexdigest() == row["sha256"]
        notices.append(notice)
    return notices


def notice_pdf(notices: Sequence[dict[str, Any]]) -> bytes:
    """The notices as one A4 PDF, each from a new page: its text with the authorities named, then a footer line
    naming the stored record (workflow, step, SHA-256 of the stored text)."""
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    body = ParagraphStyle("body", fontName=FONT, fontSize=11.5, leading=19, wordWrap="CJK")
    indented = ParagraphStyle("indented", parent=body, firstLineIndent=23)
    title = ParagraphStyle("title", parent=body, fontSize=17, leading=26, alignment=TA_CENTER, spaceAfter=8)
    footer = ParagraphStyle("footer", parent=body, fontSize=7.5, leading=10, textColor="#555555")
    story: list[Any] = []
    for i, notice in enumerate(notices):
        if i:
            story.append(PageBreak())
        lines = with_authority_names(notice["body"]).splitlines()
        first = next((k for k, line in enumerate(lines) if line.strip()), 0)
        for k, line in enumerate(lines):
            if not line.strip():
                story.append(Spacer(1, 6))
                continue
            style = title if k == first else indented if line.startswith("　") else body
            story.append(Paragraph(escape(line.strip()), style))
        story.append(Spacer(1, 14))
        story.append(Paragraph(escape(f"存档：{notice['workflow_id']} / {notice['step_id']} · "
                                      f"SHA-256 {notice['sha256']}"), footer))
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=25 * mm, rightMargin=25 * mm, topMargin=22 * mm,
                            bottomMargin=20 * mm, title=notices[0]["title"] if notices else "",
                            author="Spotcheck")
    doc.build(story)
    return out.getvalue()
