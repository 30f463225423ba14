"""How long the oversight report takes over N samples (issue 13): `python -m tests.report_scale 10000`.

Rows are bulk-inserted in the shape the record activities write (projections, four decisions a sample, two
in branches for a fail, an escalation for one sample in ten, the bulletin entry of a fail) into an embedded
PostgreSQL of its own; prints the time to read the report of the plan and of a quarter in a city, and to
render each as HTML and XLSX."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from activities.db import apply_migrations, create_pool
from activities.report_render import render_html, render_xlsx
from activities.reports import read_report
from domain.reporting import ReportScope
from starter.postgres import EmbeddedPostgres
from tests import factories as f

T0 = datetime(2026, 10, 12, 2, tzinfo=UTC)
ITEMS = [{"item": "输出电压", "standard": "GB 4943.1-2022"}]


def rows(n: int) -> dict[str, list[tuple[Any, ...]]]:
    rnd = random.Random(1)
    out: dict[str, list[tuple[Any, ...]]] = {"samples": [], "decisions": [], "outbox": [], "bulletin": []}
    for i in range(n):
        channel = rnd.choice(["offline_production", "offline_circulation", "online", "livestream"])
        o = f.order(channel, plan_id="SCALE", ordered_on=f"2026-{rnd.randint(10, 12)}-{rnd.randint(1, 28):02d}",
                    inspection_agency={"name": f"承检机构{i % 12}", "code": f"L{i % 12}"})
        o["product"]["price"] = str(rnd.choice([20, 80, 300, 2000, 8000]))
        verdict = rnd.choice(["pass"] * 8 + ["fail", "pending"])
        wid = f"sample-{o['sample_no']}"
        out["samples"].append((o["sample_no"], wid, verdict, json.dumps(o, ensure_ascii=False), channel))
        report = "fail" if verdict == "fail" else "pass"
        for kind, outcome, day in (("sampling_record", "sealed", 0), ("sample_receipt", "accepted", 2),
                                   ("lab_report", report, 15), ("disposal", "disposed", 40)):
            data = {"report_no": "R", "failed_items": ITEMS if outcome == "fail" else []}
            out["decisions"].append((wid, kind, outcome, json.dumps({"data": data}), T0 + timedelta(days=day)))
        if verdict == "fail":
            out["bulletin"].append((o["sample_no"], wid, json.dumps({"failed_items": ITEMS, "report_no": "R"})))
            out["decisions"].append((f"{wid}-rectification", "rectification_report", "submitted", "{}", T0))
            out["decisions"].append((f"{wid}-enforcement", "case_filing", "filed", "{}", T0))
        if rnd.random() < 0.1:
            out["outbox"].append((wid,))
    return out


async def timed(what: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = await what()
    return result, time.perf_counter() - start


async def main(n: int) -> None:
    pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="spotcheck-scale-")) / "pgdata", keep=False)
    pool = await create_pool(pg.dsn)
    try:
        await apply_migrations(pool)
        data = rows(n)
        async with pool.acquire() as c:
            await c.executemany(
                'INSERT INTO samples (sample_no, workflow_id, seq, stage, verdict, "order", channel, plan_id,'
                " updated_at) VALUES ($1, $2, 1, 'closed', $3, $4::text::jsonb, $5, 'SCALE', now())", data["samples"])
            await c.executemany(
                "INSERT INTO decisions (workflow_id, request_id, kind, outcome, accepted, actor, decision, stage, via,"
                " received_at) VALUES ($1, md5(random()::text), $2, $3, true, '{}', $4::text::jsonb, 'x', 'update',"
                " $5)", data["decisions"])
            await c.executemany(
                "INSERT INTO outbox (workflow_id, step_id, channel, recipient, subject, payload, created_at)"
                " VALUES ($1, 'escalation-lab_report-3', 'escalation', 'lab', '超期', '{\"kind\": \"lab_report\"}',"
                " now())", data["outbox"])
            await c.executemany(
                "INSERT INTO results_bulletin (sample_no, workflow_id, period, verdict, entry, published_at)"
                " VALUES ($1, $2, '2026-Q4', 'fail', $3::text::jsonb, now())", data["bulletin"])
            await c.execute("ANALYZE")
        print(f"{n} samples, {len(data['decisions'])} decisions, {len(data['outbox'])} escalations")
        for scope in (ReportScope(plan_id="SCALE"), ReportScope(period="2026Q4", region="330100")):
            report, read = await timed(lambda s=scope: read_report(pool, s))  # type: ignore[misc]
            start = time.perf_counter()
            html = render_html(report)
            html_s = time.perf_counter() - start
            start = time.perf_counter()
            xlsx = render_xlsx(report)
            xlsx_s = time.perf_counter() - start
            print(f"{scope.title}: {report.totals.samples} samples; read {read:.2f} s, HTML {html_s:.2f} s "
                  f"({len(html) // 1024} KiB), XLSX {xlsx_s:.2f} s ({len(xlsx) // 1024} KiB)")
    finally:
        await pool.close()
        pg.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
