"""Peak memory of the clustering stage against the number of feature vectors.

Writes random 256-d float16 feature shards (10^4 vectors each) for 10^5 and 10^6 vectors, then fits K=16 in
a fresh subprocess per case and reads the child's peak RSS:
- ``alps`` : ``alps.pipeline.run_cluster`` (streamed ``partial_fit`` over the shards, sample-based init);
- ``in-memory`` baseline: load every shard into one array and ``MiniBatchKMeans.fit`` it (what a script that
  collects all features first does).

Usage: .venv/bin/python benchmarks/cluster_memory.py [--sizes 100000 1000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARD_VECTORS = 10_000
DIM = 256

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
mode, folder, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
paths = sorted(folder.glob("*.npz"))[: count // 10_000]
start = time.perf_counter()
if mode == "alps":
    from alps.cluster import ClusterConfig
    from alps.pipeline import run_cluster
    model = run_cluster(paths, ClusterConfig(k=16, batch_size=4096, seed=0), 1.0, folder / "km.npz")
    seen = model.card["vectors_per_epoch"]
else:
    from sklearn.cluster import MiniBatchKMeans
    from alps.features.shards import read_feature_shard
    vectors = np.concatenate([read_feature_shard(p).vectors.astype(np.float32) for p in paths])
    MiniBatchKMeans(16, batch_size=4096, random_state=0, n_init=1).fit(vectors)
    seen = len(vectors)
print(json.dumps({"seconds": time.perf_counter() - start, "vectors": seen,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_shards(folder: Path, total: int) -> None:
    from alps.features.shards import write_feature_shard

    rng = np.random.default_rng(0)
    existing = len(list(folder.glob("*.npz")))
    for index in range(existing, total // SHARD_VECTORS):
        vectors = rng.normal(size=(SHARD_VECTORS, DIM)).astype(np.float16)
        write_feature_shard(
            folder / f"shard_{index:04d}.npz",
            vectors=vectors,
            image_ids=[f"img{index}_{i // 100}" for i in range(SHARD_VECTORS)],
            mask_ids=np.arange(SHARD_VECTORS) % 100,
            area_fraction=rng.uniform(0, 0.3, SHARD_VECTORS),
            encoder="random",
        )


def measure(mode: str, folder: Path, count: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(folder), str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workdir", type=Path, help="keep the shards here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_shards(folder, max(args.sizes))
        print(f"wrote {max(args.sizes):,} random {DIM}-d vectors in {time.perf_counter() - started:.1f} s")
        print(f"{'vectors':>10} {'mode':>10} {'peak RSS MB':>12} {'seconds':>8}")
        rows = {}
        for count in args.sizes:
            for mode in ("alps", "in-memory"):
                rows[count, mode] = measure(mode, folder, count)
                r = rows[count, mode]
                print(f"{count:>10,} {mode:>10} {r['peak_rss_mb']:>12.0f} {r['seconds']:>8.1f}")
        small, large = min(args.sizes), max(args.sizes)
        for mode in ("alps", "in-memory"):
            growth = rows[large, mode]["peak_rss_mb"] / rows[small, mode]["peak_rss_mb"]
            print(f"{mode}: peak RSS x{growth:.2f} from {small:,} to {large:,} vectors")
        ratio = rows[large, "in-memory"]["peak_rss_mb"] / rows[large, "alps"]["peak_rss_mb"]
        print(f"at {large:,} vectors the in-memory fit needs x{ratio:.2f} the memory of alps")


if __name__ == "__main__":
    main()
