"""Rows of a CSV file as validated models, or every problem as `line N: field: message` — never the value.

The planning data (pool, signals, frame) arrive as CSV from other systems and from people. A file is taken
whole or not at all: one bad row refuses the import, with its line and field named, so a re-import after the
fix is the only import. Lines starting with `#` are comments (a data file says where its contents come from);
an empty cell is a missing value. Pure: the caller reads the file."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from domain.bounds import error_lines

M = TypeVar("M", bound=BaseModel)
MAX_ROWS = 200_000
MAX_CELL = 4000
MAX_PROBLEMS = 20


class CsvRefused(ValueError):
    """The file is not imported; `problems` are its lines (at most MAX_PROBLEMS, then a count)."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{where}: not imported: " + "; ".join(problems[:3])
                         + (f"; and {len(problems) - 3} more" if len(problems) > 3 else ""))


def _lines(text: str) -> Iterator[str]:
    # A comment becomes an empty line, so the reader's line numbers stay those of the file.
    for line in text.splitlines(keepends=True):
        yield "\n" if line.lstrip().startswith("#") else line


def parse_csv(text: str, model: type[M], *, where: str, key: Callable[[M], Any] | None = None) -> list[M]:
    """Every data row of `text` as a `model`; `CsvRefused` naming each bad line and field. With `key`, two rows
    with the same key are refused too (the second names the first's line)."""
    limit = csv.field_size_limit(MAX_CELL)  # the module's one setting: put back when done
    try:
        return _parse(text, model, where, key)
    finally:
        csv.field_size_limit(limit)


def _parse(text: str, model: type[M], where: str, key: Callable[[M], Any] | None) -> list[M]:
    reader = csv.reader(_lines(text))
    problems: list[str] = []
    header: list[str] | None = None
    rows: list[M] = []
    seen: dict[Any, int] = {}
    fields = set(model.model_fields)
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            line = reader.line_num
            if header is None:
                header = [c.strip() for c in cells]
                unknown = [i for i, c in enumerate(header, 1) if c not in fields]
                missing = [f for f, info in model.model_fields.items() if info.is_required() and f not in header]
                problems += [f"line {line}: header: column {i} is not a known field" for i in unknown[:5]]
                problems += [f"line {line}: header: missing column {f}" for f in missing]
                if len(set(header)) != len(header):
                    problems.append(f"line {line}: header: a column is named twice")
                if problems:
                    break
                continue
            if len(rows) >= MAX_ROWS:
                problems.append(f"line {line}: more than {MAX_ROWS} rows")
                break
            if len(cells) != len(header):
                problems.append(f"line {line}: {len(cells)} cells, the header has {len(header)}")
            else:
                data = {name: cell for name, cell in zip(header, cells, strict=True) if cell.strip()}
                try:
                    row = model.model_validate(data)
                except ValidationError as err:
                    problems += error_lines(err, prefix=f"line {line}: ")
                else:
                    k = key(row) if key else None
                    if key and k in seen:
                        problems.append(f"line {line}: the same row as line {seen[k]} (same key)")
                    elif key:
                        seen[k] = line
                    rows.append(row)
            if len(problems) > MAX_PROBLEMS:
                break
    except csv.Error as err:
        problems.append(f"line {reader.line_num}: not CSV ({str(err).split(':')[0][:60]})")
    if header is None and not problems:
        problems.append("line 1: header: no header row")
    if problems:
        raise CsvRefused(where, problems[:MAX_PROBLEMS])
    return rows
