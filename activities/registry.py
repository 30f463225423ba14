"""Every activity the worker runs: `@activity.defn` functions of the modules in this package, and the
`@activity.defn` methods of their classes, each class built with the database pool as its one argument."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

import asyncpg

import activities


def _is_activity(obj: Any) -> bool:
    return hasattr(obj, "__temporal_activity_definition")


def all_activities(pool: asyncpg.Pool) -> list[Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}

    def add(fn: Callable[..., Any]) -> None:
        name = fn.__temporal_activity_definition.name  # type: ignore[attr-defined]
        if name in found and getattr(found[name], "__qualname__", None) != getattr(fn, "__qualname__", None):
            raise RuntimeError(f"two activities are named {name!r}")
        found[name] = fn

    for module in pkgutil.iter_modules(activities.__path__):
        mod = importlib.import_module(f"activities.{module.name}")
        for _, obj in inspect.getmembers(mod):
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj) and _is_activity(obj):
                add(obj)
            elif inspect.isclass(obj) and any(_is_activity(m) for _, m in inspect.getmembers(obj)):
                factory: Any = obj
                instance = factory(pool)
                for _, method in inspect.getmembers(instance, inspect.ismethod):
                    if _is_activity(method):
                        add(method)
    return [found[name] for name in sorted(found)]
