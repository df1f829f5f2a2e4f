"""A real PostgreSQL server for the tests (see docs/test-services.md).

    server = PostgresServer(base_dir)   # Debian's /usr/lib/postgresql/15 binaries, else pgserver
    server.start()                      # raises PostgresServerError with the log tail on failure
    server.dsn                          # postgresql://postgres:<password>@127.0.0.1:<port>/postgres
    server.stop(); server.start()       # restartable: same data dir, same port (outage tests)

The Debian cluster listens on TCP 127.0.0.1 with a free port and password (scram) authentication,
so tests can check bad credentials. initdb refuses to run as root: as root, the cluster runs as
`nobody` from a data dir it owns, created in a fresh /tmp folder (pytest's own tmp folders are 0700
root, which `nobody` cannot enter). Without the Debian binaries, pgserver's bundled PostgreSQL 16
serves on a Unix socket (trust authentication: no password test possible there).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

DEBIAN_BIN = Path(os.environ.get("RAY_CDC_PG_BIN", "/usr/lib/postgresql/15/bin"))
RUN_AS = "nobody"


class PostgresServerError(RuntimeError):
    """The server could not be initialised, started or stopped; the message carries the log tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def debian_available() -> bool:
    return (DEBIAN_BIN / "initdb").is_file() and (DEBIAN_BIN / "pg_ctl").is_file()


class PostgresServer:
    def __init__(self, base_dir: Path | str, *, prefer: str = "debian"):
        self.base_dir = Path(base_dir)
        self.kind = "debian" if prefer == "debian" and debian_available() else "pgserver"
        self.password = secrets.token_urlsafe(12)
        self.user = "postgres"
        self.port: int | None = None
        self._root_tmp: Path | None = None
        self._pgserver = None
        self._uri: str | None = None
        self.data_dir: Path | None = None

    # --- public API --------------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        if self.kind == "pgserver":
            return self._uri
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def dsn_with_password(self, password: str) -> str:
        return f"postgresql://{self.user}:{password}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if self.kind == "pgserver":
            self._start_pgserver()
            return
        if self.data_dir is None:
            self._initdb()
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_path),
                     "-o", f"-k {self.data_dir} -p {self.port} -c listen_addresses=127.0.0.1 "
                           "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")

    def stop(self) -> None:
        if self.kind == "pgserver":
            if self._pgserver is not None:
                self._pgserver.cleanup()
            return
        if self.data_dir is not None and (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl("stop", "-w", "-m", "fast")

    def remove(self) -> None:
        """Stop, then delete the data directory."""
        self.stop()
        if self._root_tmp is not None:
            shutil.rmtree(self._root_tmp, ignore_errors=True)

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, TypeError, AttributeError):
            return "(no log)"

    # --- Debian binaries -----------------------------------------------------------------------------

    def _as_user(self) -> list[str]:
        return ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []

    def _initdb(self) -> None:
        if os.geteuid() == 0:
            self._root_tmp = Path(tempfile.mkdtemp(prefix="ray-cdc-pg-"))
            os.chmod(self._root_tmp, 0o755)
            home = self._root_tmp
        else:
            home = self.base_dir
            home.mkdir(parents=True, exist_ok=True)
        data = home / "data"
        pwfile = home / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(home, RUN_AS)
            shutil.chown(pwfile, RUN_AS)
        self.port = free_port()
        result = subprocess.run(
            [*self._as_user(), str(DEBIAN_BIN / "initdb"), "-D", str(data), "-U", self.user,
             "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
             "--locale=C.UTF-8"], check=False, capture_output=True, text=True, cwd=str(home))
        pwfile.unlink()
        if result.returncode != 0:
            raise PostgresServerError(f"initdb failed ({result.returncode}): {result.stderr[-2000:]}")
        self.data_dir = data

    def _pg_ctl(self, *args: str) -> None:
        result = subprocess.run([*self._as_user(), str(DEBIAN_BIN / "pg_ctl"), "-D", str(self.data_dir), *args], check=False,
                                capture_output=True, text=True, cwd=str(self.data_dir.parent))
        if result.returncode != 0:
            raise PostgresServerError(f"pg_ctl {args[0]} failed ({result.returncode}): "
                                      f"{result.stderr[-1000:]}\n--- log ---\n{self.log_tail()}")

    # --- pgserver --------------------------------------------------------------------------------------

    def _start_pgserver(self) -> None:
        import pgserver

        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.base_dir / "pgdata"
        self._pgserver = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        self._uri = self._pgserver.get_uri()
