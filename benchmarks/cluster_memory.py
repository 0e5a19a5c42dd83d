"""Peak memory of the clustering stage against the number of feature vectors.

Writes random 256-d float16 feature shards (10^4 vectors each, as ``alps.features.shards`` stores them),
then fits K = 16 in a fresh subprocess per case and reads the child's peak RSS (``ru_maxrss``) and its RSS
after the imports, before any data is read (the floor: interpreter, numpy, scikit-learn, torch):

- ``streamed``: ``alps.pipeline.run_cluster`` over the shard files, the one path that ``alps cluster``,
  ``alps label`` and the workflow's ``cluster`` rule take (``alps.cluster.fit_kmeans`` over
  ``iter_feature_blocks``): a keyed sample of ``init_sample`` (20,000) vectors, Ward's agglomeration of
  it (of 8,192 anchors' cells: one 8,192 x 8,192 matrix of merge costs, 512 MiB) and Lloyd on it, then an
  exact Lloyd pass over every shard, one shard in memory at a time;
- ``in-memory`` baseline: the same ``fit_kmeans`` fed one block holding every vector (all shards read into
  one float32 array first, with their ids), what a script that collects all features before clustering
  does. Same algorithm, same sample keys, so both fits must give the same centres; the benchmark checks it.

The initialisation runs on the fixed-size sample, so its time and memory do not grow with the number of
vectors. Seconds are printed too, but the machine is shared: read them as an order of magnitude.

Usage: .venv/bin/python benchmarks/cluster_memory.py [--sizes 100000 300000 1000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARD_VECTORS = 10_000
DIM = 256
K = 16
MODES = ("streamed", "in-memory")

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
import psutil
from alps.cluster import ClusterConfig, FeatureBlock, fit_kmeans
from alps.features.shards import read_feature_shard
from alps.pipeline import run_cluster

mode, folder = sys.argv[1], Path(sys.argv[2])
count, k = (int(value) for value in sys.argv[3:5])
paths = sorted(folder.glob("shard_*.npz"))[: count // 10_000]
config = ClusterConfig(k=k, seed=0)
floor = psutil.Process().memory_info().rss
start = time.perf_counter()
if mode == "streamed":
    model = run_cluster(paths, config, 1.0, folder / f"km_{count}.npz")
else:
    shards = [read_feature_shard(p) for p in paths]
    block = FeatureBlock(
        np.concatenate([s.vectors.astype(np.float32) for s in shards]),
        np.concatenate([s.image_ids for s in shards]),
        np.concatenate([s.mask_ids for s in shards]),
    )
    del shards
    model = fit_kmeans(lambda: iter([block]), config)
seconds = time.perf_counter() - start
np.save(folder / f"centers_{mode}_{count}.npy", model.centers)
print(json.dumps({"seconds": seconds, "vectors": model.card["vectors_per_epoch"],
                  "floor_mb": floor / 2**20,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_shards(folder: Path, total: int) -> None:
    """Random float16 shards of ``SHARD_VECTORS`` vectors (100 masks per image) up to ``total`` vectors."""
    from alps.features.shards import write_feature_shard

    for index in range(total // SHARD_VECTORS):
        path = folder / f"shard_{index:04d}.npz"
        if path.exists():
            continue
        rng = np.random.default_rng(index)
        write_feature_shard(
            path,
            vectors=rng.normal(size=(SHARD_VECTORS, DIM)).astype(np.float16),
            image_ids=[f"img{index}_{i // 100}" for i in range(SHARD_VECTORS)],
            mask_ids=np.arange(SHARD_VECTORS) % 100,
            area_fraction=rng.uniform(0, 0.3, SHARD_VECTORS),
            encoder="random",
        )


def measure(mode: str, folder: Path, count: int) -> dict[str, float]:
    """Fit in a fresh interpreter (its own peak RSS); the child's JSON report."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(folder), str(count), str(K)],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{mode} at {count} vectors failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--workdir", type=Path, help="keep the shards here (default: a temporary folder)")
    args = parser.parse_args()
    if any(size % SHARD_VECTORS for size in args.sizes):
        sys.exit(f"--sizes must be multiples of {SHARD_VECTORS}")
    sizes = sorted(args.sizes)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average at the start: {load}; K = {K}, {DIM}-d")
    with tempfile.TemporaryDirectory() as tmp:
        folder = (args.workdir or Path(tmp)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_shards(folder, sizes[-1])
        print(f"wrote {sizes[-1]:,} random {DIM}-d float16 vectors in {time.perf_counter() - started:.1f} s")
        print(
            f"{'vectors':>10} {'mode':>10} {'floor MB':>9} {'peak MB':>8} {'peak-floor':>11} {'seconds':>8}"
        )
        rows = {}
        for count in sizes:
            for mode in MODES:
                r = rows[count, mode] = measure(mode, folder, count)
                if r["vectors"] != count:
                    raise RuntimeError(f"{mode} fitted {r['vectors']} vectors, expected {count}")
                print(
                    f"{count:>10,} {mode:>10} {r['floor_mb']:>9.0f} {r['peak_rss_mb']:>8.0f} "
                    f"{r['peak_rss_mb'] - r['floor_mb']:>11.0f} {r['seconds']:>8.1f}"
                )
            same = np.array_equal(*(np.load(folder / f"centers_{mode}_{count}.npy") for mode in MODES))
            print(f"{'':>10} centres of both fits bit for bit equal: {same}")
        small, large = sizes[0], sizes[-1]
        for mode in MODES:
            peak = rows[large, mode]["peak_rss_mb"] / rows[small, mode]["peak_rss_mb"]
            above = (rows[large, mode]["peak_rss_mb"] - rows[large, mode]["floor_mb"]) / (
                rows[small, mode]["peak_rss_mb"] - rows[small, mode]["floor_mb"]
            )
            print(f"{mode}: peak RSS x{peak:.2f}, above the floor x{above:.2f}, from {small:,} to {large:,}")
        for count in sizes:
            ratio = rows[count, "in-memory"]["peak_rss_mb"] / rows[count, "streamed"]["peak_rss_mb"]
            print(
                f"at {count:,} vectors the in-memory fit needs x{ratio:.2f} the peak memory of the streamed"
            )
        print(f"load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
