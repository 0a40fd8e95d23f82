"""Time the meshfleet.mesh.cjdns_ipv6 filter over 10,000 distinct valid public keys.

Not a test.  Run with the project's venv:  .venv/bin/python benchmarks/bench_cjdns_ipv6.py
Keys are prepared first (random 32-byte strings whose address starts with fc, which is
everything the filter checks; about 256 draws per key, a few seconds), then only the
filter calls are timed.  Target: under 1 s for 10,000 keys.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".build" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "meshfleet" / "mesh"
if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT, LINK)
sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.meshfleet.mesh.plugins.filter.cjdns import FilterModule
from ansible_collections.meshfleet.mesh.plugins.module_utils.cjdns import (
    base32_encode,
)


def make_keys(count, seed):
    """Distinct .k keys whose address starts with fc."""
    rng = random.Random(seed)
    keys = set()
    while len(keys) < count:
        raw = rng.randbytes(32)
        if hashlib.sha512(hashlib.sha512(raw).digest()).digest()[0] == 0xFC:
            keys.add(base32_encode(raw) + ".k")
    return sorted(keys)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs")
    args = parser.parse_args()

    started = time.perf_counter()
    keys = make_keys(args.count, args.seed)
    print(f"prepared {len(keys)} keys in {time.perf_counter() - started:.2f} s")

    cjdns_ipv6 = FilterModule().filters()["cjdns_ipv6"]
    best = None
    for _i in range(args.repeat):
        started = time.perf_counter()
        addresses = [cjdns_ipv6(key) for key in keys]
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    assert len(set(addresses)) == len(keys) and all(a.startswith("fc") for a in addresses)
    verdict = "met" if best < 1 else "MISSED"
    print(
        f"cjdns_ipv6: {len(keys)} keys in {best:.4f} s (best of {args.repeat}), "
        f"{len(keys) / best:.0f} keys/s, target < 1 s: {verdict}"
    )
    return 0 if best < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
