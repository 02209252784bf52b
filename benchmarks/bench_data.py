"""Time loading AV-digits: a cold load (features computed) vs a warm one (the feature cache hit).

Usage: python benchmarks/bench_data.py [--fsdd PATH] [--repeats 3] [--json PATH] [--no-targets]

Both loads use a fresh temporary cache folder, so the first is always a miss (every recording decoded
and turned into log-mel features, then cached) and the following ones hits (the cache key still hashes
every recording, then the cached features are read). The baseline is the cold load in the same run.

* ``cold_load_s``: the first load (one run; a miss).
* ``warm_load_s``: median of ``--repeats`` loads that hit the cache. Target: <= 5 s.
* ``cold_over_warm``: what the cache saves.

FSDD is read from ``--fsdd``, else ``$EDGEFUSE_FSDD``, else ``../shared/data/fsdd`` beside the repository.
Exit status: see benchmarks/_targets.py (1 when a target is missed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _targets
from _targets import Target

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [Target("warm_load_s", "<=", 5.0, "AV-digits load that hits the feature cache")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fsdd", default=None, help="FSDD folder (default $EDGEFUSE_FSDD or ../shared/data/fsdd)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="warm loads to take the median of")
    parser.add_argument("--json", type=Path, default=None)
    _targets.add_arguments(parser)
    args = parser.parse_args(argv)

    from edgefuse.data.avdigits import load_av_digits

    fsdd = args.fsdd or os.environ.get("EDGEFUSE_FSDD") or ROOT.parent / "shared" / "data" / "fsdd"
    with tempfile.TemporaryDirectory(prefix="bench_data_") as cache:
        t0 = time.perf_counter()
        cold = load_av_digits(fsdd, cache_dir=cache)
        cold_s = time.perf_counter() - t0
        if cold.meta["audio_cache"]["hit"]:
            raise RuntimeError("the first load into an empty cache folder was a hit")
        warm = []
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            ds = load_av_digits(fsdd, cache_dir=cache)
            warm.append(time.perf_counter() - t0)
            if not ds.meta["audio_cache"]["hit"]:
                raise RuntimeError("a load after the first missed the feature cache")
    warm_s = statistics.median(warm)
    results = {
        "cold_load_s": cold_s,
        "warm_load_s": warm_s,
        "warm_loads_s": warm,
        "cold_over_warm": cold_s / warm_s,
        "counts": cold.meta["counts"],
    }
    print(
        f"AV-digits ({sum(cold.meta['counts'].values())} pairs): cold load (cache miss) {cold_s:.2f} s; "
        f"warm load (cache hit, median of {len(warm)}) {warm_s:.2f} s -> {cold_s / warm_s:.1f}x"
    )
    status, results["targets"] = _targets.check(TARGETS, results, enforce=not args.no_targets)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
