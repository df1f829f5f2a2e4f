"""TimescaleDbDestination: the PostgreSQL destination, plus hypertables where TimescaleDB exists.

Everything the PostgreSQL destination does (tables, types, staging, merge, offsets, error
classification) is inherited unchanged. On top of it:
- `open` makes sure the extension is there: installed (`pg_extension`), or available
  (`pg_available_extensions`) and then created with `CREATE EXTENSION IF NOT EXISTS timescaledb`.
  When it is neither (or cannot be created), `on_missing_extension: error` stops with a
  TimescaleExtensionMissingError saying how to fix it, and `warn` logs one warning and carries on with
  plain PostgreSQL tables.
- `ensure_table` creates the tables as the PostgreSQL destination does, then turns the state table
  into a hypertable on its time column (`plan.py` says which tables and columns) with
  `create_hypertable(..., if_not_exists => TRUE, migrate_data => TRUE)`: idempotent, and rows that
  are already there move into chunks. An existing hypertable on another column is a ConfigError.
"""

from __future__ import annotations

import logging

from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.destinations.postgres.ddl import TableNames
from ray_cdc.destinations.timescaledb import sql
from ray_cdc.destinations.timescaledb.errors import TimescaleExtensionMissingError
from ray_cdc.destinations.timescaledb.plan import HypertablePlan, HypertableSettings, plan_hypertable
from ray_cdc.errors import ConfigError, FatalDestinationError
from ray_cdc.schema.model import TableSchema

log = logging.getLogger(__name__)

MISSING_HINT = ("install TimescaleDB on the server (the timescaledb package, "
                "shared_preload_libraries = 'timescaledb', a restart) and let this user run "
                "CREATE EXTENSION timescaledb in this database, or set on_missing_extension: warn "
                "to replicate into plain PostgreSQL tables")


class TimescaleDbDestination(PostgresDestination):
    def __init__(self, dsn: str, *, name: str = "timescaledb", schema: str | None = None,
                 hypertables: HypertableSettings | None = None, on_missing_extension: str = "error",
                 **postgres_options):
        if on_missing_extension not in ("error", "warn"):
            raise ConfigError(f"{name}: on_missing_extension must be error or warn")
        super().__init__(dsn, name=name, schema=schema, **postgres_options)
        self.hypertables = hypertables or HypertableSettings(config_key=f"destinations.{name}")
        self.on_missing_extension = on_missing_extension
        self.extension_version: str | None = None  # the timescaledb version in use, once checked
        self._extension_checked = False
        self._planned: dict[TableSchema, HypertablePlan | None] = {}
        self._hypertables: set[TableSchema] = set()  # converted (or found converted) by this object

    # --- the extension -----------------------------------------------------------------------------

    def open(self) -> None:
        self._check_extension()  # a missing extension (on_missing_extension: error) stops before any DDL
        super().open()

    def _check_extension(self) -> None:
        if self._extension_checked:
            return
        version, problem = self._install_extension()
        if version is None:
            message = f"the timescaledb extension is not usable on this server ({problem}): {MISSING_HINT}"
            if self.on_missing_extension == "error":
                raise TimescaleExtensionMissingError(message, destination=self.name)
            log.warning("%s: %s; on_missing_extension is warn: replicating into plain PostgreSQL tables",
                        self.name, message.split(": install")[0])
        self.extension_version = version
        self._extension_checked = True

    def _install_extension(self) -> tuple[str | None, str]:
        """(installed version, "") or (None, why not)."""
        installed = self._run("look for the timescaledb extension", lambda cur: cur.execute(
            sql.INSTALLED_VERSION, (sql.EXTENSION,)).fetchone())
        if installed:
            return installed[0], ""
        available = self._run("look for the timescaledb extension", lambda cur: cur.execute(
            sql.AVAILABLE_VERSION, (sql.EXTENSION,)).fetchone())
        if not available:
            return None, "not in pg_available_extensions"
        try:
            self._run("create the timescaledb extension", lambda cur: cur.execute(sql.CREATE_EXTENSION))
        except FatalDestinationError as exc:  # e.g. not preloaded, or no permission; transient ones propagate
            return None, f"available but CREATE EXTENSION failed: {exc.args[0]}"
        installed = self._run("look for the timescaledb extension", lambda cur: cur.execute(
            sql.INSTALLED_VERSION, (sql.EXTENSION,)).fetchone())
        return installed[0], ""

    # --- tables --------------------------------------------------------------------------------------

    def hypertable_plan(self, table: TableSchema) -> HypertablePlan | None:
        """The hypertable `table` becomes (None: a plain table); a ConfigError for a bad time column,
        with or without the extension."""
        if table not in self._planned:
            self._planned[table] = plan_hypertable(table, self.hypertables)
        return self._planned[table]

    def ensure_table(self, table: TableSchema) -> TableNames:
        plan = self.hypertable_plan(table)  # a bad time column stops before any table is created
        self._check_extension()
        names = super().ensure_table(table)
        if plan is not None and self.extension_version is not None and table not in self._hypertables:
            self._make_hypertable(names, plan)
            self._hypertables.add(table)
        return names

    def _make_hypertable(self, names: TableNames, plan: HypertablePlan) -> None:
        target = names.rows
        statement, params = sql.create_hypertable(target.qstate, plan)

        def convert(cur) -> str | None:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (names.table.qualified_name,))
            row = cur.execute(sql.TIME_DIMENSION, (target.schema, target.state)).fetchone()
            if row is None:
                cur.execute(statement, params)
                return None
            return row[0]

        existing = self._run(f"make {target.qstate} a hypertable on {plan.time_column}", convert)
        if existing is not None and existing != plan.time_column:
            raise ConfigError(
                f"{self.hypertables.key_of(names.table.qualified_name)}: "
                f"{target.qstate} is already a hypertable on {existing!r}, not {plan.time_column!r} "
                "(TimescaleDB cannot change a hypertable's time column: configure it back, or "
                "recreate the table)")
