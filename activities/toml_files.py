"""Reading a small TOML file of settings or data: bounded in size, and every error one line naming the file
(never its content: a TOML error quotes the line, which may hold a secret)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read_toml(path: Path, where: str, max_bytes: int, error: type[ValueError]) -> dict[str, Any]:
    """The parsed file at `path`; `error` (naming `where`) when it is too large, unreadable or not TOML."""
    try:
        raw = Path(path).read_bytes()
        if len(raw) > max_bytes:
            raise error(f"{where}: larger than {max_bytes // 1024} KiB")
        return tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError:
        raise error(f"{where}: not valid TOML") from None
    except UnicodeDecodeError as err:
        raise error(f"{where}: not valid UTF-8 at byte {err.start}") from None
    except OSError as err:
        raise error(f"{where}: cannot read: {err.strerror or type(err).__name__}") from None
