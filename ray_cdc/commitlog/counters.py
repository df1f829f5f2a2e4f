"""Counter cells in the commitlog hold counter *contexts*, not the 8-byte value CQL clients see.

Layout (format doc §13.1, `CounterContext`): int16 header count `h` (its absolute value), `h`
int16 shard indexes, then 32-byte shards (16-byte counter id, int64 clock, int64 count). The
counter's value is the sum of the shard counts.
"""

from __future__ import annotations

import struct

from ray_cdc.errors import ValueCodecError

_HEADER = struct.Struct(">h")
_SHARD_COUNT = struct.Struct(">q")
SHARD_SIZE = 32


def counter_total(context: bytes) -> int:
    if len(context) < 2:
        raise ValueCodecError(f"counter context of {len(context)} bytes is shorter than its header")
    (h,) = _HEADER.unpack_from(context)
    start = 2 + 2 * abs(h)
    body = len(context) - start
    if body < 0 or body % SHARD_SIZE:
        raise ValueCodecError(f"counter context of {len(context)} bytes does not hold whole 32-byte shards")
    return sum(_SHARD_COUNT.unpack_from(context, off + 24)[0] for off in range(start, len(context), SHARD_SIZE))
