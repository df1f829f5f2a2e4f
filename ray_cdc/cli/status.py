"""`ray-cdc status CONFIG`: ask the running pipeline's HTTP API; when nothing answers, summarise from
the configuration (segments on disk against the offsets each destination committed) and exit 3.

The HTTP side reads whatever JSON the API returns and prints every field it finds, so fields added
to the API later show up without a change here."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ray_cdc.cli.common import EXIT_NOT_RUNNING, EXIT_OK, load, source_problem
from ray_cdc.errors import RayCdcError

_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class StatusError(RayCdcError):
    """The pipeline answered, but not with a status (refused token, server error, not JSON)."""


class NotRunning(Exception):
    """Nothing answered at the status URL."""


def add_commands(commands) -> None:
    status = commands.add_parser(
        "status", help="the running pipeline's status (lag per node/segment, rows/s per destination, DLQ "
        "size, snapshot progress); exit 3 and an offline summary when it is not running",
        description="Asks GET http://<observability.host>:<observability.port>/status (with "
        "observability.bearer_token if set). When nothing answers, says the pipeline is not running, "
        "prints segments on disk per node against the offsets each destination committed, and exits 3.")
    status.add_argument("config", type=Path, help="YAML configuration")
    status.add_argument("--json", action="store_true", help="print the API's JSON as it came")
    status.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                        help="how long to wait for the API's answer (default 20: it asks every actor)")
    status.set_defaults(handler=_status)


def status_url(observability) -> str:
    host = _ANY_ADDRESS.get(observability.host, observability.host)  # listening everywhere: ask loopback
    return f"http://{f'[{host}]' if ':' in host else host}:{observability.port}/status"


def fetch_status(url: str, token: str | None, timeout: float) -> object:
    """The decoded JSON of the status endpoint. Raises NotRunning when nothing answers, StatusError
    when something answers wrongly (the token never appears in either)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        hint = ("set observability.bearer_token to the running pipeline's token" if exc.code in (401, 403)
                else "see the pipeline's log")
        raise StatusError(f"{url} answered HTTP {exc.code} {exc.reason}; {hint}") from None
    except urllib.error.URLError as exc:  # refused, unknown host, or no connection within the timeout
        raise NotRunning(f"nothing answered at {url} ({exc.reason})") from None
    except (TimeoutError, ConnectionError) as exc:  # connected: something listens there, but did not answer
        raise StatusError(f"{url} accepted the connection but sent no status within {timeout:g} s "
                          f"({type(exc).__name__}); try a larger --timeout") from None
    try:
        return json.loads(body)
    except ValueError:
        raise StatusError(f"{url} answered with something that is not JSON; is observability.port "
                          "the ray-cdc health API?") from None


def running_at(observability, timeout: float = 3.0) -> str | None:
    """The status URL when a pipeline answers there (even with an error or a refused token), else None."""
    url = status_url(observability)
    token = observability.bearer_token.get_secret_value() if observability.bearer_token else None
    try:
        fetch_status(url, token, timeout)
    except NotRunning:
        return None
    except StatusError:
        pass  # something answered: a pipeline is there
    return url


def render(value: object, indent: int = 0) -> list[str]:
    """Any JSON value as indented `key: value` lines (lists of objects as `- ` items)."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines += [f"{pad}{key}:", *render(item, indent + 1)]
            else:
                lines.append(f"{pad}{key}: {json.dumps(item) if isinstance(item, (dict, list)) else item}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            sub = render(item, indent + 1)
            lines += [f"{pad}- {sub[0].lstrip()}", *sub[1:]] if sub else [f"{pad}-"]
        return lines
    return [f"{pad}{value}"]


def _status(args) -> int:
    config = load(args.config)
    token = config.observability.bearer_token
    try:
        answer = fetch_status(status_url(config.observability), token.get_secret_value() if token else None,
                              args.timeout)
    except NotRunning as exc:
        print(f"pipeline not running: {exc}")
        offline_summary(config)
        return EXIT_NOT_RUNNING
    print(json.dumps(answer, indent=2) if args.json else "\n".join(render(answer)))
    return EXIT_OK


def offline_summary(config) -> None:
    """Per node, its segments on disk by state; per destination, what it has committed or why it
    could not be asked."""
    from ray_cdc.cli.inventory import node_segments, state_counts
    from ray_cdc.cli.stores import opened

    committed = {}
    for name in config.destinations:
        try:
            with opened(config, name) as stores:
                committed[name] = stores[0].committed_offsets()
            book = committed[name]
            print(f"destination {name}: {len(book)} partition(s) with offsets, "
                  f"{sum(o.completed for o in book.values())} segment(s) completed")
        except RayCdcError as exc:
            print(f"destination {name}: not asked: {exc}")
    for index, source in enumerate(config.sources):
        problem = source_problem(index, source)
        if problem is not None:
            print(f"node {source.name}: {problem}")
            continue
        segments = node_segments(source.name, Path(source.commitlog_dir))
        counts = state_counts(segments, committed)
        print(f"node {source.name}: {len(segments)} segment(s), {sum(s.size for s in segments) / 2**20:.1f} MiB "
              f"on disk: {counts['committed']} committed by every destination, {counts['partial']} partially, "
              f"{counts['pending']} pending")
    if len(committed) < len(config.destinations):
        print("(states count only the destinations that answered)", file=sys.stderr)
