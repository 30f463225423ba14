"""The layers hold: domain/ is pure, workflows/ use only what the sandbox allows and activities only by their
definitions, and nothing below the starter or the worker reaches up into them.

Read from the source with `ast` (the whole tree: imports under `TYPE_CHECKING` or inside
`workflow.unsafe.imports_passed_through()` count like any other). Each failure lists every offender as
`path:line: imports name (why)`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio import activity

ROOT = Path(__file__).resolve().parent.parent

# Standard-library modules that read or write files, the environment, processes or the network (plus the
# database driver): none of them belongs in pure or deterministic code.
IO_MODULES = frozenset({
    "os", "pathlib", "io", "shutil", "socket", "subprocess", "tomllib", "asyncpg", "urllib", "http",
    "sqlite3", "tempfile", "glob", "fileinput", "ssl", "select", "selectors", "ftplib", "smtplib",
})  # fmt: skip
UPPER = ("starter", "worker")
# The one non-pydantic import domain/ keeps: the search attribute keys are Temporal's plain data types
# (README: "domain/ ... search attributes (pure, sandbox-safe)"). Listed by file, so no other module gains it.
DOMAIN_EXCEPTIONS = {"domain/visibility.py": frozenset({"temporalio.common"})}


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repo, for the message
    line: int
    module: str  # absolute, relative imports resolved
    name: str | None  # the name taken by `from module import name`; None for `import module`

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        what = f"{self.module}.{self.name}" if self.name else self.module
        return f"{self.path}:{self.line}: imports {what}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(path: Path, level: int, module: str | None) -> str:
    """The absolute module of `from <level dots><module> import ...` in the file at `path`."""
    if level == 0:
        return module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imports(path: Path) -> Iterator[Import]:
    rel = str(path.relative_to(ROOT))
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(rel, node.lineno, alias.name, None)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(path, node.level, node.module)
            for alias in node.names:
                yield Import(rel, node.lineno, module, alias.name)


def open_calls(path: Path) -> Iterator[str]:
    rel = str(path.relative_to(ROOT))
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "open") or (
                isinstance(func, ast.Attribute)
                and func.attr == "open"
                and isinstance(func.value, ast.Name)
                and func.value.id == "builtins"
            ):
                yield f"{rel}:{node.lineno}: calls open()"


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _is_stdlib(top: str) -> bool:
    return top in sys.stdlib_module_names


def _pure_stdlib(imp: Import) -> str | None:
    """Why a standard-library import is refused in pure code, or None when it is fine (or not stdlib)."""
    if imp.top in IO_MODULES:
        return "I/O module"
    if imp.module == "builtins" and imp.name == "open":
        return "I/O: open"
    return None


def _is_activity(obj: Any) -> bool:
    return hasattr(obj, "__temporal_activity_definition")


def _is_activity_definition(obj: Any) -> bool:
    """An activity function, or a class with activity methods."""
    if inspect.isclass(obj):
        return any(_is_activity(member) for _, member in inspect.getmembers(obj))
    return callable(obj) and _is_activity(obj)


def _activity_definition(module: str, name: str | None) -> bool:
    """`from <module> import <name>` names an activity definition (`import <module>` never does: any of its
    models could be used through it). An ImportError propagates: the caller reports it."""
    return name is not None and _is_activity_definition(getattr(importlib.import_module(module), name, None))


def _offenders(found: list[str]) -> str:
    message = "\n".join(found)
    print(message)  # printed as well as put in the assertion message
    return f"{len(found)} offending import(s):\n{message}"


def _offending(paths: list[Path], judge: Callable[[Import], str | None]) -> list[str]:
    return [f"{imp} ({why})" for path in paths for imp in imports(path) if (why := judge(imp))]


def _check_pure(folder: str, judge: Callable[[Import], str | None]) -> list[str]:
    paths = sources(folder)
    return _offending(paths, judge) + [call for path in paths for call in open_calls(path)]


def _judge_domain(imp: Import) -> str | None:
    if _is_stdlib(imp.top):
        return _pure_stdlib(imp)
    if imp.top in ("pydantic", "domain") or imp.module in DOMAIN_EXCEPTIONS.get(imp.path, ()):
        return None
    return "not the standard library, pydantic or domain.*"


def _judge_workflows(imp: Import) -> str | None:
    if _is_stdlib(imp.top):
        return _pure_stdlib(imp)
    if imp.top in ("temporalio", "pydantic", "domain", "workflows"):
        return None
    if imp.top == "activities":
        try:
            if _activity_definition(imp.module, imp.name):
                return None
        except ImportError as exc:
            return f"cannot be checked: {exc}"
        return "not an activity definition: models come from domain/"
    return "not the standard library, temporalio, pydantic, domain.*, workflows.* or an activity definition"


def test_domain_imports_only_stdlib_pydantic_and_domain() -> None:
    offenders = _check_pure("domain", _judge_domain)
    assert not offenders, _offenders(offenders)


def test_workflows_import_only_the_sandbox_safe_and_activity_definitions() -> None:
    offenders = _check_pure("workflows", _judge_workflows)
    assert not offenders, _offenders(offenders)


def _judge_upward(imp: Import) -> str | None:
    return "reaches up into the starter or the worker" if imp.top in UPPER else None


def test_nothing_below_imports_starter_or_worker() -> None:
    offenders = _offending(sources("domain", "workflows", "activities"), _judge_upward)
    assert not offenders, _offenders(offenders)


def test_telemetry_does_not_import_starter_or_worker() -> None:
    offenders = _offending([ROOT / "telemetry.py"], _judge_upward)
    assert not offenders, _offenders(offenders)


# -- the checker itself ----------------------------------------------------------------------------------


def test_relative_imports_are_resolved() -> None:
    assert _resolve(ROOT / "domain" / "rules.py", 1, "models") == "domain.models"
    assert _resolve(ROOT / "domain" / "__init__.py", 1, None) == "domain"
    assert _resolve(ROOT / "workflows" / "sample.py", 2, "domain.models") == "domain.models"


@activity.defn(name="layers_probe")
async def _probe_activity() -> None: ...


class _ProbeActivities:
    @activity.defn(name="layers_probe_method")
    async def probe(self) -> None: ...


class _ProbeModel(BaseModel):
    x: int = 0


def test_activity_definitions_are_told_from_models() -> None:
    assert _is_activity_definition(_probe_activity)
    assert _is_activity_definition(_ProbeActivities)  # a class with activity methods
    assert not _is_activity_definition(_ProbeModel)
    assert not _is_activity_definition(_resolve)  # a plain function
    assert not _is_activity_definition("CHINA") and not _is_activity_definition(None)
    assert _activity_definition("activities.calendar", "compute_deadline")
    assert not _activity_definition("activities.calendar", "add_working_days")
    assert not _activity_definition("activities.calendar", None)  # the whole module


def test_io_is_refused_in_pure_code() -> None:
    def judged(module: str, name: str | None = None) -> str | None:
        return _judge_domain(Import("x.py", 1, module, name))

    assert judged("os") and judged("pathlib", "Path") and judged("urllib.parse") and judged("asyncpg")
    assert judged("builtins", "open") and judged("temporalio")
    assert judged("json") is None and judged("pydantic", "BaseModel") is None and judged("domain.rules") is None
