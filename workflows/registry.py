"""Every workflow the worker runs: each `@workflow.defn` class in a module of this package."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import workflows


def all_workflows() -> list[type[Any]]:
    found: dict[str, type[Any]] = {}
    for module in pkgutil.iter_modules(workflows.__path__):
        mod = importlib.import_module(f"workflows.{module.name}")
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == mod.__name__ and hasattr(cls, "__temporal_workflow_definition"):
                found[cls.__name__] = cls
    return [found[name] for name in sorted(found)]
