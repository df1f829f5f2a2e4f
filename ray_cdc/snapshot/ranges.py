"""Token ranges: the ring from the driver's token metadata, split into ranges of similar size.

A `TokenRange` is `(start, end]` on the Murmur3 ring, the form CQL reads it in
(`token(pk) > start AND token(pk) <= end`). The whole ring is `(MIN_TOKEN, MAX_TOKEN]`: Murmur3 never
gives a key the minimum token (Cassandra maps it to the maximum), so nothing is left out.

Sizing: `system.size_estimates` (Cassandra 2.1.5+; per node, for its primary ranges) gives the
estimated partitions of each range; the plan then aims at `partitions_per_split` partitions per
range. Without estimates (Cassandra 2.1.0 has no such table) or with a configured `split_count`, the
ring is cut by token width, which for Murmur3's uniform hashing is cut by expected rows.
Ranges never cross a vnode boundary of a different primary replica (a range query then goes to one
replica set), and are at most `MAX_WIDTH` tokens wide: a range's progress is an offset *relative to
its start* (`progress.py`) that must fit the destinations' offset columns with room to spare.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ray_cdc.snapshot.errors import SnapshotPlanError

log = logging.getLogger(__name__)

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
#: widest range planned: positions (token - start) stay below 2**61, so ClickHouse's offset version
#: (position * 2 + completed, Int64) cannot overflow
MAX_WIDTH = 2**61
MURMUR3 = "org.apache.cassandra.dht.Murmur3Partitioner"


@dataclass(frozen=True, order=True)
class TokenRange:
    """`(start, end]`; `replicas`: the hosts holding it, primary first (for locality, not identity)."""

    start: int
    end: int
    replicas: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        if not MIN_TOKEN <= self.start < self.end <= MAX_TOKEN:
            raise SnapshotPlanError(f"not a token range: ({self.start}, {self.end}]")

    @property
    def width(self) -> int:
        return self.end - self.start

    def split(self, parts: int) -> list[TokenRange]:
        """`parts` contiguous ranges of (nearly) equal width; fewer when the range is too narrow."""
        parts = max(1, min(parts, self.width))
        cuts = [self.start + self.width * i // parts for i in range(parts + 1)]
        return [TokenRange(a, b, self.replicas) for a, b in itertools.pairwise(cuts) if a < b]

    def __str__(self) -> str:
        return f"({self.start}, {self.end}]"


@dataclass(frozen=True)
class RangeEstimate:
    """One row of `system.size_estimates`: `(start, end]` (may wrap around the ring)."""

    start: int
    end: int
    partitions: int
    mean_partition_size: int = 0


def ring_ranges(tokens: Sequence[int], owners: Mapping[int, Sequence[str]] | None = None) -> list[TokenRange]:
    """The ring `(MIN_TOKEN, MAX_TOKEN]` cut at every node token; a range `(t_i, t_i+1]` belongs to
    the owner of `t_i+1`, the last one `(t_last, MAX]` wraps around to the owner of the first token."""
    ordered = sorted(set(tokens))
    owners = owners or {}
    if not ordered:
        return [TokenRange(MIN_TOKEN, MAX_TOKEN)]
    first = tuple(owners.get(ordered[0], ()))
    bounds = [MIN_TOKEN] + [t for t in ordered if t > MIN_TOKEN]
    out = [TokenRange(a, b, tuple(owners.get(b, ()))) for a, b in itertools.pairwise(bounds)]
    if bounds[-1] < MAX_TOKEN:
        out.append(TokenRange(bounds[-1], MAX_TOKEN, first))
    return out


def ring_from_metadata(metadata, keyspace: str) -> list[TokenRange]:
    """The ring from cassandra-driver's token metadata (`cluster.metadata`), with each range's
    replicas for `keyspace` (primary first)."""
    partitioner = getattr(metadata, "partitioner", None)
    if partitioner and partitioner != MURMUR3:
        raise SnapshotPlanError(f"the snapshot reads Murmur3 token ranges; the cluster uses {partitioner}")
    token_map = metadata.token_map
    if token_map is None:
        raise SnapshotPlanError("the driver has no token metadata (token_metadata_enabled=False?)")
    values = {}
    owners = {}
    for token in token_map.ring:
        value = int(token.value)
        values[value] = token
        replicas = token_map.get_replicas(keyspace, token) or [token_map.token_to_host_owner[token]]
        owners[value] = tuple(str(h.address) for h in replicas)
    return ring_ranges(list(values), owners)


def read_size_estimates(session, keyspace: str, table: str) -> list[RangeEstimate] | None:
    """`system.size_estimates` of the table from every node the driver knows (each node lists only
    its primary ranges); None when the cluster has no such table (Cassandra before 2.1.5)."""
    from cassandra import InvalidRequest

    query = ("SELECT range_start, range_end, partitions_count, mean_partition_size FROM system.size_estimates "
             "WHERE keyspace_name = %s AND table_name = %s")
    estimates: dict[tuple[int, int], RangeEstimate] = {}
    for host in session.cluster.metadata.all_hosts():
        try:
            rows = session.execute(query, (keyspace, table), host=host)
        except InvalidRequest as exc:  # "unconfigured columnfamily size_estimates": 2.1.0 - 2.1.4
            log.info("no system.size_estimates on %s (%s): ranges are cut by token width", host, exc)
            return None
        for r in rows:
            start, end = int(r.range_start), int(r.range_end)
            estimates[(start, end)] = RangeEstimate(start, end, int(r.partitions_count or 0),
                                                    int(r.mean_partition_size or 0))
    return list(estimates.values()) or None


def _unwrapped(estimates: Iterable[RangeEstimate]) -> list[tuple[int, int, float]]:
    """(start, end, partitions per token) with wrapping ranges cut in two at the ring's ends."""
    out = []
    for e in estimates:
        pieces = [(e.start, e.end)] if e.start < e.end else [(e.start, MAX_TOKEN), (MIN_TOKEN, e.end)]
        width = sum(b - a for a, b in pieces) or 1
        out += [(a, b, e.partitions / width) for a, b in pieces if a < b]
    return sorted(out)


def weight(r: TokenRange, density: list[tuple[int, int, float]] | None) -> float:
    """Expected partitions in `r` (from the estimates' densities), or its token width without them."""
    if density is None:
        return float(r.width)
    total = 0.0
    for a, b, per_token in density:
        overlap = min(b, r.end) - max(a, r.start)
        if overlap > 0:
            total += overlap * per_token
    return total


@dataclass(frozen=True)
class PlanSettings:
    """How many ranges: `split_count` over the whole ring when set; else from the estimates
    (`partitions_per_split`), else `ranges_per_node` per node."""

    split_count: int | None = None
    ranges_per_node: int = 64
    partitions_per_split: int = 100_000


def target_count(settings: PlanSettings, nodes: int, estimates: list[RangeEstimate] | None) -> int:
    if settings.split_count:
        count = settings.split_count
    elif estimates:
        total = sum(e.partitions for e in estimates)
        count = max(nodes, math.ceil(total / max(1, settings.partitions_per_split)))
    else:
        count = settings.ranges_per_node * max(1, nodes)
    return max(count, math.ceil((MAX_TOKEN - MIN_TOKEN) / MAX_WIDTH))


def plan_ranges(todo: Sequence[TokenRange], ring: Sequence[TokenRange], settings: PlanSettings,
                estimates: list[RangeEstimate] | None = None) -> list[TokenRange]:
    """Cut the intervals still to read (`todo`, usually the whole ring) into ranges of about equal
    expected size: first at every vnode boundary (one replica set per range), then each piece into as
    many parts as its weight needs, then neighbours of the same primary replica merged up to the target."""
    nodes = len({r.replicas[0] for r in ring if r.replicas}) or 1
    count = target_count(settings, nodes, estimates)
    density = _unwrapped(estimates) if estimates else None
    whole = [TokenRange(MIN_TOKEN, MAX_TOKEN)]
    target = sum(weight(r, density) for r in whole) / count
    cuts = sorted({t for a, b, _ in density for t in (a, b)}) if density else []
    pieces = []
    for interval in sorted(todo):
        for owned in (p for o in _intersect(interval, ring) for p in _cut(o, cuts)):
            w = weight(owned, density)
            parts = max(1, round(w / target)) if target > 0 else 1
            parts = max(parts, math.ceil(owned.width / MAX_WIDTH))
            pieces += [(p, w / parts) for p in owned.split(parts)]
    return _merge(pieces, target)


def _cut(r: TokenRange, cuts: list[int]) -> list[TokenRange]:
    """`r` cut at every estimate boundary inside it: the density is uniform within each piece."""
    inside = [t for t in cuts if r.start < t < r.end]
    bounds = [r.start, *inside, r.end]
    return [TokenRange(a, b, r.replicas) for a, b in itertools.pairwise(bounds)]


def _intersect(interval: TokenRange, ring: Sequence[TokenRange]) -> list[TokenRange]:
    out = []
    for r in ring:
        a, b = max(r.start, interval.start), min(r.end, interval.end)
        if a < b:
            out.append(TokenRange(a, b, r.replicas))
    return out or [interval]


def _merge(pieces: list[tuple[TokenRange, float]], target: float) -> list[TokenRange]:
    out: list[TokenRange] = []
    acc, acc_w = None, 0.0
    for piece, w in pieces:
        if (acc is not None and acc.end == piece.start and acc.replicas[:1] == piece.replicas[:1]
                and acc_w + w <= target * 1.05 and piece.end - acc.start <= MAX_WIDTH):
            acc, acc_w = TokenRange(acc.start, piece.end, acc.replicas), acc_w + w
            continue
        if acc is not None:
            out.append(acc)
        acc, acc_w = piece, w
    if acc is not None:
        out.append(acc)
    return out


def complement(done: Iterable[tuple[int, int]], within: TokenRange | None = None) -> list[TokenRange]:
    """The parts of `within` (default: the whole ring) not covered by the `(start, end]` intervals."""
    within = within or TokenRange(MIN_TOKEN, MAX_TOKEN)
    out, cursor = [], within.start
    for a, b in union(done):
        if b <= cursor or a >= within.end:
            continue
        if a > cursor:
            out.append(TokenRange(cursor, min(a, within.end)))
        cursor = max(cursor, b)
    if cursor < within.end:
        out.append(TokenRange(cursor, within.end))
    return out


def union(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """`(start, end]` intervals merged where they touch or overlap, in order."""
    out: list[list[int]] = []
    for a, b in sorted(i for i in intervals if i[0] < i[1]):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def intersection(sets: Sequence[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    """The tokens every one of `sets` (each a union of intervals) covers."""
    if not sets:
        return []
    current = union(sets[0])
    for other in sets[1:]:
        other = union(other)
        merged = []
        for a, b in current:
            for c, d in other:
                lo, hi = max(a, c), min(b, d)
                if lo < hi:
                    merged.append((lo, hi))
        current = union(merged)
    return current
