"""Official notices: jinja2 templates under templates/<name>.zh.j2 rendered from the sample's data, stored once
per workflow step with the SHA-256 of their text. A retry returns the notice first stored."""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import jinja2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.db import insert_once
from domain.decisions import Role
from domain.records import NoticeRecord, NoticeRequest

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_SUFFIX = ".zh.j2"
_TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")

ROLE_NAMES: dict[str, str] = {
    Role.SAMPLER: "抽样人员",
    Role.LAB: "承检机构",
    Role.CASE_OFFICER: "产品质量监督管理部门承办人员",
    Role.ENFORCEMENT: "执法稽查部门",
    Role.CREDIT_OFFICER: "信用监管部门",
    Role.ONLINE_OFFICER: "网络交易监管部门",
    Role.ENTERPRISE: "被抽样单位",
}

_DIGITS = "零一二三四五六七八九"


def cn_number(n: int) -> str:
    """0..99 in Chinese numerals as written in legal text (15 -> 十五, 20 -> 二十); other numbers as digits."""
    n = int(n)
    if not 0 <= n < 100:
        return str(n)
    if n < 10:
        return _DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _DIGITS[tens]) + "十" + (_DIGITS[ones] if ones else "")


def cn_date(value: Any) -> str:
    """2025-10-20 (a date, datetime or ISO string) -> 2025年10月20日; anything else unchanged."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return f"{value.year}年{value.month}月{value.day}日"
    return str(value)


@jinja2.pass_context
def cn_due(ctx: jinja2.runtime.Context, value: Any) -> str:
    """A deadline as cn_date, marked when the workflow says it is an estimate (`estimated_dates`: the ISO
    dates of its deadlines counted over a year whose holiday schedule is not published yet)."""
    text = cn_date(value)
    day = str(value)[:10]
    if day in (ctx.get("estimated_dates") or ()):
        return f"{text}（预计，{day[:4]}年节假日安排尚未公布）"
    return text


def role_name(value: Any) -> str:
    """case_officer -> its Chinese name; several roles ("lab/case_officer" or a list) joined with 、."""
    roles = value if isinstance(value, list | tuple) else re.split(r"\s*[/,，、]\s*", str(value))
    return "、".join(ROLE_NAMES.get(str(r), str(r)) for r in roles if str(r))


class UnknownTemplate(LookupError):
    pass


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR, encoding="utf-8"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text documents, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cn_number"] = cn_number
    env.filters["cn_date"] = cn_date
    env.filters["cn_due"] = cn_due
    env.filters["role_name"] = role_name
    return env


def render(template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """Render templates/<template>.zh.j2: (title = first non-empty line, body, sha256 of the UTF-8 body).
    Raises UnknownTemplate for a template that does not exist and jinja2.UndefinedError for a missing field."""
    if not _TEMPLATE_NAME.match(template):
        raise UnknownTemplate(f"unknown notice template {template!r}: not a template name")
    try:
        tpl = environment().get_template(template + TEMPLATE_SUFFIX)
    except jinja2.TemplateNotFound:
        raise UnknownTemplate(f"unknown notice template {template!r}: no templates/{template}{TEMPLATE_SUFFIX}") from None
    lines = [line.rstrip() for line in tpl.render(**context).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    body = "\n".join(lines) + "\n"
    title = next((line.strip() for line in lines if line.strip()), "")
    if not title:
        raise ValueError(f"notice template {template!r} rendered an empty document")
    return title, body, hashlib.sha256(body.encode("utf-8")).hexdigest()


_SELECT_NOTICE = """
SELECT id, workflow_id, step_id, template, title, sha256 FROM notices WHERE workflow_id = $1 AND step_id = $2
"""


class NoticeActivities:
    """Register `NoticeActivities(pool).render_notice` with the worker."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def render_notice(self, req: NoticeRequest) -> NoticeRecord:
        """Render and store the notice for (workflow id, step id) once; a retry returns the stored one.
        A template that does not exist or lacks a field fails without retry: retrying cannot fix it."""
        try:
            title, body, digest = render(req.template, req.context)
        except UnknownTemplate as err:
            raise ApplicationError(str(err), type="UnknownTemplate", non_retryable=True) from err
        except jinja2.UndefinedError as err:
            raise ApplicationError(
                f"notice template {req.template!r}: missing field: {err.message}",
                type="NoticeContextError",
                non_retryable=True,
            ) from err
        except (jinja2.TemplateError, ValueError, TypeError) as err:
            raise ApplicationError(
                f"notice template {req.template!r} failed: {err}", type="NoticeTemplateError", non_retryable=True
            ) from err
        async with self.pool.acquire() as conn:
            await insert_once(conn, "notices", {
                "workflow_id": req.workflow_id, "step_id": req.step_id, "template": req.template, "title": title,
                "body": body, "sha256": digest, "issued_at": req.issued_at,
            }, key=["workflow_id", "step_id"])
            row = await conn.fetchrow(_SELECT_NOTICE, req.workflow_id, req.step_id)
        assert row is not None
        return NoticeRecord(
            workflow_id=row["workflow_id"],
            step_id=row["step_id"],
            template=row["template"],
            title=row["title"],
            sha256=row["sha256"],
            notice_id=row["id"],
        )
