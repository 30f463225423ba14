"""The planning data on real PostgreSQL (issue 12): the pool, signals and frame imported from CSV (a bad row
refuses the file naming its line and field, never its value; a re-import changes nothing), and the draw read
from the records — fails and leads as signals, clean records, key-list shops, higher-level plans of the period.
Each test uses product codes of its own (99.xx), so the shared database's other rows do not matter."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activities import planning
from activities.planning import FRAME, POOL, SIGNALS, import_rows, load_and_draw, read_signals
from domain.credit_code import with_check_character
from domain.csv_rows import CsvRefused
from domain.plans import PlanDraw, PlanSpec
from domain.risk import SignalSource
from starter import cli

ROOT = Path(__file__).resolve().parent.parent
FRAME_HEADER = ("candidate_id,product_code,product_name,brand,model,enterprise_name,credit_code,region,zhejiang_made,"
                "enterprise_size,channel,price_band,platform,shop_name,shop_id,listing_id")


def _credit() -> str:
    """A valid credit code of this test's own (a fresh one per call of a test)."""
    body = "91330106MA2" + "".join("0123456789ABCDEFGHJKLMNPQRTUWXY"[b % 31] for b in uuid.uuid4().bytes[:6])
    return with_check_character(body)


def _codes() -> list[str]:
    """Three codes no other test uses: 99.<two random digits>.01..03."""
    n = uuid.uuid4().int % 100
    return [f"99.{n:02d}.{i:02d}" for i in range(1, 4)]


async def _import(db: asyncpg.Pool, table: planning._Table, text: str) -> planning.Imported:
    return await import_rows(db, table, table.parse(text, "test.csv"))


async def test_the_shipped_pool_imports_once_and_a_changed_row_updates(pool: asyncpg.Pool) -> None:
    text = (ROOT / "planning" / "pool.csv").read_text(encoding="utf-8")
    rows = POOL.parse(text, "pool.csv")
    assert len(rows) >= 120 and len({r.category for r in rows}) >= 10
    assert all(r.name and r.cycle_months for r in rows)
    await import_rows(pool, POOL, rows)
    again = await import_rows(pool, POOL, rows)
    assert again == planning.Imported(0, 0, len(rows))
    changed = text.replace("01.01.01,电热水壶,家用电器,GB 4706.1;GB 4706.19,12,",
                           "01.01.01,电热水壶,家用电器,GB 4706.1;GB 4706.19,6,")
    assert changed != text
    assert await _import(pool, POOL, changed) == planning.Imported(0, 1, len(rows) - 1)
    assert await pool.fetchval("SELECT cycle_months FROM product_pool WHERE product_code = '01.01.01'") == 6
    await _import(pool, POOL, text)
    stored = await pool.fetchrow("SELECT standards, cycle_months FROM product_pool WHERE product_code = '01.01.01'")
    assert list(stored["standards"]) == ["GB 4706.1", "GB 4706.19"] and stored["cycle_months"] == 12


async def test_the_demo_frame_and_signals_import_and_re_import_changes_nothing(pool: asyncpg.Pool) -> None:
    for table, name in ((FRAME, "demo-frame.csv"), (SIGNALS, "demo-signals.csv")):
        rows = table.parse((ROOT / "planning" / name).read_text(encoding="utf-8"), name)
        assert len(rows) >= 50
        await import_rows(pool, table, rows)
        assert await import_rows(pool, table, rows) == planning.Imported(0, 0, len(rows))
    sources = {r["source"] for r in await pool.fetch("SELECT DISTINCT source FROM risk_signals")}
    assert {s.value for s in SignalSource if not s.derived} <= sources  # every source of tasks 4 and 16


@pytest.mark.parametrize(("table", "text", "expected"), [
    (POOL, "product_code,name,category,cycle_months\n# a comment\n98.01.01,水壶,家电,12\n98.01.02,杯,日用,0\n"
           "9X.SECRET,壶,家电,12\n",
     ["line 4: cycle_months:", "line 5: product_code:"]),
    (POOL, "product_code,name,category,cycle_months\n98.01.01,水壶,家电,12\n98.01.01,水壶,家电,24\n",
     ["line 3: the same row as line 2"]),
    (POOL, "product_code,name,SECRET_COLUMN\n", ["line 1: header: column 3 is not a known field", "header: missing column cycle_months"]),
    (SIGNALS, "source,reference,product_code,region,weight,observed_on\n"
              "consumer_complaint,TS-1,98.01.01,330106,1,2026-01-01\n"
              "spot_check_fail,X-1,98.01.01,330106,1,2026-01-01\n"
              "gossip,X-2,98.01.01,330106,1,2026-01-01\n"
              "consumer_complaint,TS-2,98.01.01,330106,1e9,2026-01-01\n",
     ["line 3: source: spot_check_fail is read from Spotcheck's own records", "line 4: source:",
      "line 5: weight:"]),
    (FRAME, FRAME_HEADER + "\nF-1,98.01.01,水壶,牌,型,店,91330106MA2SECRET0,330106,yes,small,offline_production,"
                           "low,,,,\nF-2,98.01.01,水壶,牌,型,店,{ok},330106,yes,small,online,low,,,,\n",
     ["line 2: credit_code: not a unified social credit code", "line 3: platform: platform, shop_name and listing_id"]),
])
async def test_a_bad_row_refuses_the_file_naming_line_and_field_never_the_value(
    pool: asyncpg.Pool, table: planning._Table, text: str, expected: list[str]
) -> None:
    before = await pool.fetchval(f"SELECT count(*) FROM {table.name}")
    with pytest.raises(CsvRefused) as refused:
        table.parse(text.replace("{ok}", _credit()), "bad.csv")
    problems = refused.value.problems
    for want in expected:
        assert any(p.startswith(want) or want in p for p in problems), (want, problems)
    assert not any("SECRET" in p or "1e9" in p or "gossip" in p for p in problems)  # the value is never echoed
    assert await pool.fetchval(f"SELECT count(*) FROM {table.name}") == before


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400) | st.lists(st.sampled_from(
    ["product_code", "name", "category", "cycle_months", ",", "\n", '"', "#", "01.01.01", "12", "\x00", "\ud800",
     "x" * 5000, "水壶"]), max_size=40).map("".join))
def test_any_text_is_rows_or_a_refusal_that_never_quotes_it(text: str) -> None:
    try:
        rows = POOL.parse(text, "fuzz.csv")
    except CsvRefused as refused:
        assert refused.problems and all(p.startswith("line ") for p in refused.problems)
        assert all(len(p) <= 300 and "xxxxxxxxxx" not in p and "\x00" not in p for p in refused.problems)
    else:
        assert all(r.cycle_months >= 1 for r in rows)


async def _province_plan(db: asyncpg.Pool, plan_id: str, period: str, code: str) -> None:
    """A stored province plan sampling `code`: the plan workflow's tables (migration 016, created here when this
    branch runs without it, with the columns the draw reads)."""
    await db.execute("""
        CREATE TABLE IF NOT EXISTS plans (plan_id text PRIMARY KEY, period text NOT NULL, level text NOT NULL,
            region text NOT NULL, task_type text NOT NULL, follow_up_of text, spec jsonb NOT NULL,
            excluded jsonb NOT NULL DEFAULT '[]', workflow_id text NOT NULL, drawn_at timestamptz,
            closed_at timestamptz, summary jsonb, created_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE IF NOT EXISTS plan_samples (plan_id text NOT NULL REFERENCES plans (plan_id),
            seq integer NOT NULL, sample_no text NOT NULL UNIQUE, product_code text NOT NULL,
            credit_code text NOT NULL, "order" jsonb NOT NULL, stratum jsonb NOT NULL,
            risk_score double precision NOT NULL, reasons jsonb NOT NULL, amendment text,
            started_at timestamptz, cancelled_at timestamptz, cancel_reason text, cancelled_by jsonb,
            PRIMARY KEY (plan_id, seq))""")
    await db.execute("INSERT INTO plans (plan_id, period, level, region, task_type, spec, workflow_id) "
                     "VALUES ($1, $2, 'province', '330000', 'linked', '{}', $3)", plan_id, period, f"plan-{plan_id}")
    await db.execute("INSERT INTO plan_samples (plan_id, seq, sample_no, product_code, credit_code, \"order\", "
                     "stratum, risk_score, reasons) VALUES ($1, 1, $2, $3, $4, '{}', '{}', 0, '[]')",
                     plan_id, f"{plan_id}-00001", code, _credit())


async def _sample(db: asyncpg.Pool, code: str, credit: str, on: date, region: str = "330106") -> str:
    """A `samples` row (the projection a sample workflow writes) started on `on`."""
    no = f"T-{uuid.uuid4().hex[:10]}"
    at = datetime(on.year, on.month, on.day, tzinfo=UTC)
    await db.execute(
        "INSERT INTO samples (sample_no, workflow_id, seq, stage, verdict, \"order\", product_code, region, "
        "enterprise_code, plan_id, created_at, updated_at) VALUES ($1, $2, 1, 'closed', 'pass', '{}', $3, $4, $5, "
        "'OLD', $6, $6)", no, f"sample-{no}", code, region, credit, at)
    return no


async def test_the_draw_reads_history_fails_key_list_shops_and_higher_plans(
    pool: asyncpg.Pool, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, in_province_plan, overdue = _codes()
    await _import(pool, POOL, "product_code,name,category,cycle_months\n" + "\n".join(
        f"{c},产品{i},测试类,12" for i, c in enumerate((kept, in_province_plan, overdue))) + "\n")
    failed, clean, shop = _credit(), _credit(), _credit()
    rows = [FRAME_HEADER]
    for code in (kept, in_province_plan, overdue):
        for who, channel, extra in ((failed, "offline_production", ",,,,"), (clean, "offline_production", ",,,,"),
                                    (shop, "online", f",某电商平台A,示例店{code},S-{code},L-{code}")):
            rows.append(f"F-{code}-{who},{code},产品,牌,型,示例企业,{who},330106,yes,small,{channel},mid{extra}")
    await _import(pool, FRAME, "\n".join(rows) + "\n")
    period = f"20{uuid.uuid4().int % 70 + 30}Q4"  # a period no other test plans
    await _province_plan(pool, f"ZJ-{uuid.uuid4().hex[:8]}", period, in_province_plan)
    year = int(period[:4])
    failed_sample = await _sample(pool, kept, failed, date(year - 1, 3, 1))
    await pool.execute("INSERT INTO enterprise_fails (sample_no, credit_code, role, region, product_code, brand, "
                       "model, failed_on) VALUES ($1, $2, 'sampled_party', '330106', $3, '牌', '型', $4)",
                       failed_sample, failed, kept, date(year - 1, 4, 1))
    await _sample(pool, kept, clean, date(year - 5, 1, 1))  # sampled five years ago, never failed: clean record
    await _sample(pool, overdue, clean, date(year - 2, 1, 1))  # cycle 12 months: overdue by the period
    await pool.execute("INSERT INTO key_list_shops (platform, shop_key, shop_name, years, listed_at) VALUES "
                       "('某电商平台A', $1, '示例店', '{2024,2025}', now()) ON CONFLICT DO NOTHING", f"S-{kept}")
    for who, source in ((shop, "key_list_shop"), (failed, "post_licence_problem")):
        await pool.execute("INSERT INTO sampling_targets (credit_code, source, sample_no, product_code, region, "
                           "added_at) VALUES ($1, $2, $3, $4, '330106', now())", who, source, failed_sample, kept)

    spec = PlanSpec(plan_id=f"XH-{uuid.uuid4().hex[:8]}", name="西湖区联动抽查", period=period, level="county",
                    region="330106", task_type="routine", budget_batches=6, seed=1,
                    product_codes=[kept, in_province_plan, overdue],
                    inspection_agencies=[{"name": "杭州市质检院", "code": "HZQT"}])
    draw = await load_and_draw(spec, pool)
    assert isinstance(draw, PlanDraw)
    assert {s.order.product.classification_code for s in draw.samples} == {kept, overdue}
    assert [e.product_code for e in draw.excluded] == [in_province_plan]
    assert "第十五条第二款" in draw.excluded[0].reason and "省级" in draw.excluded[0].reason
    assert [s.order.sample_no for s in draw.samples] == [f"{spec.plan_id}-{i:05d}" for i in range(1, 7)]
    by_party = {(s.order.product.classification_code, s.order.sampled_party.credit_code): s for s in draw.samples}
    assert any("无不合格记录" in r for r in by_party[(kept, clean)].reasons)
    assert not any("无不合格记录" in r for r in by_party[(kept, failed)].reasons)
    assert any("企业风险分" in r and "抽查不合格" in r for r in by_party[(kept, failed)].reasons)
    assert any("重点抽查名单" in r for r in by_party[(kept, shop)].reasons)
    assert not any("抽查对象清单" in r for r in by_party[(kept, shop)].reasons)  # weighed once, as a key-list shop
    assert any("抽查对象清单（证后检查问题企业" in r for r in by_party[(kept, failed)].reasons)
    assert any("应再抽" in r for r in by_party[(overdue, clean)].reasons)
    fails = [s for s in await read_signals(pool, planning.load_policy(date(year, 10, 1)))
             if s.source is SignalSource.SPOT_CHECK_FAIL and s.credit_code == failed]
    assert [(f.product_code, f.observed_on) for f in fails] == [(kept, date(year - 1, 4, 1))]
    monkeypatch.setenv("DATABASE_URL", postgres_dsn)
    assert await load_and_draw(spec) == draw  # read again (through DATABASE_URL), drawn again: the same


def _run(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_the_cli_imports_lists_overdue_codes_and_drafts_a_plan(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, postgres_dsn: str, pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_dsn)
    monkeypatch.setenv("COLUMNS", "300")  # rich's tables: wide enough to keep each cell on its lines

    async def spotcheck(*argv: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(_run, list(argv), capsys, monkeypatch)  # main runs its own loop

    for kind, name in (("pool", "pool.csv"), ("frame", "demo-frame.csv"), ("signals", "demo-signals.csv")):
        code, out, err = await spotcheck(kind, "import", str(ROOT / "planning" / name))
        assert code == 0, err
        assert "rows:" in out and "unchanged" in out
    code, out, _ = await spotcheck("pool", "import", str(ROOT / "planning" / "pool.csv"))
    assert code == 0 and " 0 new, 0 changed" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("product_code,name,category,cycle_months\n01.01.01,电热水壶,家用电器,999\n", encoding="utf-8")
    code, _, err = await spotcheck("pool", "import", str(bad))
    assert code == 1 and "line 2: cycle_months:" in err and "999" not in err and "nothing was written" in err

    code, out, _ = await spotcheck("pool", "set", "98.77.01", "--name", "测试产品", "--category", "测试",
                                   "--cycle-months", "24")
    assert code == 0 and "added" in out
    code, out, _ = await spotcheck("pool", "set", "98.77.01", "--cycle-months", "6", "--standards", "GB 1;GB 2")
    assert code == 0 and "changed" in out
    code, out, _ = await spotcheck("pool", "show", "98.77.01", "--json")
    assert json.loads(out)["entry"] | {"note": None} == {
        "product_code": "98.77.01", "name": "测试产品", "category": "测试", "standards": ["GB 1", "GB 2"],
        "cycle_months": 6, "note": None}
    code, _, err = await spotcheck("pool", "set", "98.77.01", "--cycle-months", "0")
    assert code == 1 and err.startswith("error: cycle_months:")
    code, _, err = await spotcheck("pool", "set", "98.77.02", "--cycle-months", "6")
    assert code == 1 and "a new code needs --name" in err

    code, out, _ = await spotcheck("pool", "list", "--region", "330106", "--overdue", "--json", "--at", "2026-10-01")
    overdue = json.loads(out)
    assert code == 0 and overdue and all(row["overdue"] for row in overdue)
    code, out, _ = await spotcheck("pool", "show", "08.01.01", "--region", "330000", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["entry"]["name"] == "电动自行车" and sum(shown["frame"].values()) > 0

    code, out, _ = await spotcheck("signals", "scores", "--region", "330100", "--limit", "5", "--json")
    scores = json.loads(out)
    assert code == 0 and len(scores["codes"]) == 5 and scores["half_life_days"] == planning.load_policy(
        date.today()).half_life_days
    assert [r["score"] for r in scores["codes"]] == sorted((r["score"] for r in scores["codes"]), reverse=True)

    code, out, err = await spotcheck("plan", "draft", str(ROOT / "examples" / "plans" / "2026Q4-province-linked.json"),
                                     "--json")
    assert code == 0, err
    draw = PlanDraw.model_validate_json(out)
    assert len(draw.samples) == draw.plan.budget_batches
    assert {s.order.channel.value for s in draw.samples} <= {"offline_circulation", "online", "livestream"}
    code, out, _ = await spotcheck("plan", "draft", str(ROOT / "examples" / "plans" / "2026Q4-county-linked.json"),
                                   "--limit", "3")
    assert code == 0 and "分层构成" in out and "XH-2026Q4-LINK-00001" in out
