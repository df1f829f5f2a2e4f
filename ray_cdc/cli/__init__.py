"""`ray-cdc` command line.

Exit codes: 0 success (for `run`, also after SIGTERM/SIGINT: the change sets in flight were committed
with their offsets); 1 the input or a service was wrong (a typed ray_cdc error, printed on one
line with what, where and what to do); 2 the command line itself was wrong; 3 `status` found no
running pipeline (an offline summary was printed); 4 `offsets reset` or `dlq purge`
without --yes (nothing changed). `dlq replay` exits 1 when an entry could not be written.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ray_cdc.cli import offsets, running, segments, status
from ray_cdc.cli.common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_NEEDS_CONFIRMATION,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_USAGE,
)
from ray_cdc.dlq import cli as dlq
from ray_cdc.errors import RayCdcError

__all__ = ["EXIT_ERROR", "EXIT_NEEDS_CONFIRMATION", "EXIT_NOT_RUNNING", "EXIT_OK", "EXIT_USAGE", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if not args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args) or EXIT_OK
    except RayCdcError as e:
        print(f"ray-cdc: error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `ray-cdc segments dump ... | head`
        sys.stderr.close()
        return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ray-cdc", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES_HELP,
        description="Replicates Apache Cassandra changes (commitlog segments of cdc_raw) into PostgreSQL, "
        "TimescaleDB and ClickHouse, on Ray. `ray-cdc COMMAND --help` explains each command.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = _Commands(parser.add_subparsers(title="commands", metavar="COMMAND"))
    running.add_commands(commands)
    status.add_commands(commands)
    offsets.add_commands(commands)
    segments.add_commands(commands)
    dlq.add_commands(commands)
    return parser


class _Commands:
    """The subparsers action, giving every command (and its own subcommands) the exit codes epilog."""

    def __init__(self, action):
        self._action = action

    def add_parser(self, name: str, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("epilog", EXIT_CODES_HELP)
        kwargs.setdefault("description", kwargs.get("help"))
        parser = self._action.add_parser(name, **kwargs)
        parser.add_subparsers = _nested(parser, parser.add_subparsers)
        return parser


def _nested(parser: argparse.ArgumentParser, add_subparsers):
    """A command group (`offsets`, `segments`): given without a subcommand, it shows its own help."""
    def wrapped(**kwargs):
        parser.set_defaults(handler=lambda _args: _usage(parser))
        return _Commands(add_subparsers(**kwargs))
    return wrapped


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
