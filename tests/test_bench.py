"""`make bench BENCH_ARGS=--quick` end to end (issue 9): every figure of the issue in RESULTS.md's format.
Timings are never asserted here; bench/RESULTS.md is where they are read. Marked `bench`: conftest.py runs
it first, so that under `make test` (xdist) it overlaps the rest of the suite instead of trailing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import FIGURES

pytestmark = [pytest.mark.integration, pytest.mark.bench]
ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    run = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    text = out.read_text(encoding="utf-8")
    for field in ("- date:", "- git commit:", "- command: `make bench BENCH_ARGS='--quick --out", "- machine:",
                  "logical CPUs", "- Python 3.", "temporalio ", "dev server (in memory"):
        assert field in text, field
    assert "forceSearchAttributesCacheRefreshOnRead=true" not in text  # measured without the test flags

    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0] == "| figure | Spotcheck | bare workflow | ratio | goal | met |"
    rows = table[1:]
    for figure in FIGURES:
        row = next((r for r in rows if r.startswith(f"| {figure}")), None)
        assert row is not None, f"no row for {figure!r}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 6 and all(cells), row
        assert cells[5] in ("**met**", "not met", "—"), row
    assert len(rows) == len(FIGURES)
