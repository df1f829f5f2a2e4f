"""Masked values per second: `mask_values` (what the transform actor runs per masked column) for hash
and tokenize on a text column of N values with few and with all-distinct values, beside two
ceilings measured in the same run on the same column:

- `arrow only`: the vectorised frame without any HMAC (dictionary_encode + take): what masking could
  reach if the keyed hash were free;
- `hmac per value`: a plain Python loop over every value with `hmac.digest` (row by row, no
  dictionary): what masking costs without the distinct-value path. With all values distinct the
  masked path can do no better than this loop plus the Arrow frame.

Each figure is the best of `--repeat` runs. Usage:
    python benchmarks/masking_throughput.py [--values 1000000] [--distinct 10000 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.transforms.masking import mask_values
from ray_cdc.transforms.masking_key import MaskingKey


def column(values: int, distinct: int, seed: int = 7) -> pa.Array:
    """`values` emails drawn from `distinct` ones (every one of them present when distinct == values)."""
    rng = np.random.default_rng(seed)
    codes = rng.permutation(values) % distinct if distinct == values else rng.integers(0, distinct, values)
    pool = pa.array([f"user{i}@example.org" for i in range(distinct)], pa.string())
    return pool.take(pa.array(codes))


def best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def hmac_per_value(values: pa.Array) -> list[str]:
    key = hashlib.sha256(b"benchmark").digest()
    return [hmac.digest(key, v.encode(), "sha256").hex() for v in values.to_pylist()]


def arrow_only(values: pa.Array) -> pa.Array:
    encoded = pc.dictionary_encode(values)
    return encoded.dictionary.take(encoded.indices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    key = MaskingKey(b"benchmark key")
    print(f"{'distinct':>10} {'method':<16} {'seconds':>8} {'values/s':>14}")
    for distinct in args.distinct:
        values = column(args.values, min(distinct, args.values))
        runs = {"hash": lambda v=values: mask_values(v, "hash", key, "text"),
                "tokenize": lambda v=values: mask_values(v, "tokenize", key, "text"),
                "arrow only": lambda v=values: arrow_only(v),
                "hmac per value": lambda v=values: hmac_per_value(v)}
        for method, function in runs.items():
            seconds = best(function, args.repeat)
            print(f"{min(distinct, args.values):>10} {method:<16} {seconds:>8.3f} {args.values / seconds:>14,.0f}")


if __name__ == "__main__":
    main()
