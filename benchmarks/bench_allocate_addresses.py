#!/usr/bin/env python3
"""Time allocate_addresses() for a large gateway pool (a script, not a test).

    .venv/bin/python benchmarks/bench_allocate_addresses.py [--clients 10000] [--repeat 5]

Target: 10,000 clients in 10.64.0.0/16 in well under 1 s, both from scratch and with
``previous`` (the first result) plus 100 new clients.  Prints the best and median of
``--repeat`` runs in seconds and exits 1 if the best run misses the target.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

MODULE = Path(__file__).resolve().parents[1] / "plugins" / "module_utils" / "addressing.py"
TARGET_SECONDS = 1.0


def load_addressing():
    # The module is standard library only, so load it by path: no collection loader needed.
    spec = importlib.util.spec_from_file_location("meshfleet_addressing", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(repeat, function, *args, **kwargs):
    times, result = [], None
    for _i in range(repeat):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        times.append(time.perf_counter() - started)
    return result, min(times), statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--pool", default="10.64.0.0/16")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    addressing = load_addressing()
    names = [f"client-{i:05d}" for i in range(args.clients)]
    first, best, median = timed(args.repeat, addressing.allocate_addresses, names, args.pool)
    print(
        f"no previous:        {len(first)} clients in {args.pool}: "
        f"best {best:.3f} s, median {median:.3f} s"
    )

    more = names + [f"new-client-{i:03d}" for i in range(100)]
    second, best2, median2 = timed(
        args.repeat, addressing.allocate_addresses, more, args.pool, previous=first
    )
    moved = sum(second[name] != first[name] for name in names)
    print(
        f"previous + 100 new: {len(second)} clients in {args.pool}: "
        f"best {best2:.3f} s, median {median2:.3f} s, existing clients moved: {moved}"
    )

    ok = max(best, best2) < TARGET_SECONDS and moved == 0
    print(f"target < {TARGET_SECONDS:.1f} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
