"""What every `ray-cdc` command shares: exit codes, the CLI's own errors, loading a config with its
sources checked, and joining Ray."""

from __future__ import annotations

from pathlib import Path

from ray_cdc.errors import RayCdcError

EXIT_OK = 0  # done
EXIT_ERROR = 1  # the input or a service was wrong (one line on stderr says what, where and what to do)
EXIT_USAGE = 2  # the command line was wrong (argparse's own code)
EXIT_NOT_RUNNING = 3  # `status`: no pipeline answered; an offline summary was printed instead
EXIT_NEEDS_CONFIRMATION = 4  # `offsets reset` without --yes: nothing changed, the plan was printed

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}  done
  {EXIT_ERROR}  the input or a service was wrong: one line on stderr names what, where, and what to do
  {EXIT_USAGE}  the command line was wrong
  {EXIT_NOT_RUNNING}  status: no pipeline answered on observability.host:port (offline summary printed)
  {EXIT_NEEDS_CONFIRMATION}  offsets reset or dlq purge without --yes: nothing was changed (the plan was printed)"""


class SourceDirectoryError(RayCdcError):
    """A node's commitlog directory is missing or is not a directory; names the config key and path."""


class UnreachableDestinationError(RayCdcError):
    """A destination did not answer; names the setting and the host:port (or directory) tried.
    `retryable`: the server may come back (down, refused); not: it answered no (login, database)."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class UnknownNameError(RayCdcError):
    """--node or --destination names something the configuration does not have; lists what it has."""


class OffsetResetError(RayCdcError):
    """`offsets reset` cannot do what it was asked (a malformed position, a pipeline still running)."""


def load(path: Path):
    """The validated configuration of `path` (ConfigError names the key)."""
    from ray_cdc.config import load_config

    return load_config(path)


def source_problem(index: int, source) -> SourceDirectoryError | None:
    """The error for `sources[index]` when its commitlog_dir is not a directory here, else None."""
    directory = Path(source.commitlog_dir)
    if directory.is_dir():
        return None
    state = "is not a directory" if directory.exists() else "does not exist"
    return SourceDirectoryError(
        f"sources[{index}].commitlog_dir (node {source.name!r}): {directory} {state}; point it at the "
        f"node's cdc_raw directory (on a cluster, the directory on the Ray node with resource "
        f"{source.ray_resource})")


def source_problems(config) -> list[SourceDirectoryError]:
    return [p for i, s in enumerate(config.sources) if (p := source_problem(i, s)) is not None]


def check_sources(config) -> None:
    """Raise the first source problem: before Ray starts, not deep inside the coordinator."""
    problems = source_problems(config)
    if problems:
        raise problems[0]


def init_ray(pipeline=None) -> None:
    """Join the cluster of `ray job submit` / RAY_ADDRESS, else start a local one sized by `pipeline`."""
    from ray_cdc.pipeline.local_ray import init_ray as join_or_start

    join_or_start(pipeline)
