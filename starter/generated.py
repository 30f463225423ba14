"""Docs with a section written from the code between two marker lines (the contract's tables, the monitors'
views): the section is replaced, the hand-written text around it kept; tests compare a doc with itself
regenerated to find it stale."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def replace_section(doc: str, begin: str, end: str, body: str) -> str:
    """`doc` with what stands between its `begin` and `end` markers replaced by `body`."""
    head, rest = doc.split(begin, 1)
    return f"{head}{begin}{body}{end}{rest.split(end, 1)[1]}"


def rewrite(path: Path, update: Callable[[str], str]) -> None:
    """Regenerate the doc at `path` in place (the `make …-doc` targets)."""
    path.write_text(update(path.read_text(encoding="utf-8")), encoding="utf-8")
