"""What one k-means fit costs, from hundreds of vectors to the paper's sample; a refit against a label run.

(a) **Fit cost by size**: ``alps.cluster.fit_kmeans`` with its defaults (Ward's agglomeration of the sample,
    Lloyd on the sample, one Lloyd pass), each case in a fresh subprocess (its own peak RSS), timed in wall
    and CPU seconds:
    - ``nwpu``: the NWPU VHR-10 sample's 793 oracle-mask features (the default encoder, 432-d), K = 10;
    - ``synthetic``: 20,000 x 256-d float16 vectors around K centres (the paper's init sample), K = 16, 46;
    - ``nwpu tiled``: the NWPU features repeated to 20,000 vectors, each copy jittered by 5 % of the
      features' spread (real structure at the paper's sample size), K = 16, 46;
    - with ``--before``, the previous default (the consensus of 800 k-means++ restarts, scikit-learn per
      restart, reproduced in ``cluster_stability.consensus_fit``) on the same data, for the ratio.
(b) **A refit against a label run** (``--scene``): a 2048 px GeoTIFF mosaic of the LoveDA tiles (4 tiles of
    1024 px; only 3 exist in the sample, so the 4th is tile 0 mirrored) is labeled with ``alps label``
    (felzenszwalb, efficientnet-lite0, K = 8; 9 tiles of 1024 px with 128 px overlap), then its features
    are clustered again with ``alps cluster`` and the defaults, each a whole process; the ratio of their wall
    times is the figure (both run back to back under the same load).

The machine may be shared: the load average is printed at the start and the end, and ratios measured in
one run are the figures to read, not the absolute seconds.

Usage: .venv/bin/python benchmarks/cluster_cost.py [--cases nwpu synthetic tiled] [--k 16 46]
    [--before] [--scene] [--workdir DIR] [--out results.json]
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
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SAMPLE = 20_000
DIM = 256

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[4])
from alps.cluster import ClusterConfig, blocks_from_arrays, fit_kmeans
with np.load(sys.argv[1]) as npz:
    vectors = npz["vectors"]
k, variant = int(sys.argv[2]), sys.argv[3]
blocks = blocks_from_arrays(np.array_split(vectors, max(1, len(vectors) // 100)))
start, cpu = time.perf_counter(), time.process_time()
if variant == "alps":
    model = fit_kmeans(blocks, ClusterConfig(k=k, seed=0))
else:
    from cluster_stability import consensus_fit
    consensus_fit(blocks, k, seed=0)
print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def load() -> str:
    """The load average, as printed."""
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def nwpu_features(cache: Path) -> np.ndarray:
    """The NWPU sample's oracle-mask features (built by ``cluster_stability.py``'s cache if missing)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from cluster_stability import DATASETS, load_set

    return load_set(DATASETS["nwpu"], cache)["vectors"]


def cases(names: list[str], ks: list[int], cache: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    """The data of every case and the K values it is fitted with."""
    out: dict[str, tuple[np.ndarray, list[int]]] = {}
    rng = np.random.default_rng(0)
    if "nwpu" in names or "tiled" in names:
        nwpu = nwpu_features(cache)
        if "nwpu" in names:
            out["nwpu (793 x 432)"] = (nwpu, [10])
        if "tiled" in names:
            copies = -(-SAMPLE // len(nwpu))
            spread = 0.05 * nwpu.astype(np.float64).std(axis=0)
            tiled = np.concatenate([nwpu] * copies)[:SAMPLE].astype(np.float64)
            tiled += spread * rng.normal(size=tiled.shape)
            out[f"nwpu tiled ({SAMPLE} x {nwpu.shape[1]})"] = (tiled.astype(np.float16), ks)
    if "synthetic" in names:
        for k in ks:
            centres = rng.normal(size=(k, DIM))
            points = centres[rng.integers(k, size=SAMPLE)] + 1.5 * rng.normal(size=(SAMPLE, DIM))
            out[f"synthetic ({SAMPLE} x {DIM}, {k} blobs)"] = (points.astype(np.float16), [k])
    return out


def fit_case(vectors: np.ndarray, k: int, variant: str, folder: Path) -> dict[str, float]:
    """One fit in a fresh interpreter; its JSON report."""
    data = folder / "vectors.npz"
    np.savez(data, vectors=vectors)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(k), variant, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{variant} fit failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def mosaic(folder: Path) -> Path:
    """The 2048 px GeoTIFF of LoveDA tiles 0, 1 / 2, 0 mirrored (EPSG:32650, 0.3 m pixels)."""
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    tiles = [
        np.asarray(Image.open(SHARED / "loveda" / "img_dir" / f"{i}.png").convert("RGB")) for i in range(3)
    ]
    top = np.concatenate([tiles[0], tiles[1]], axis=1)
    bottom = np.concatenate([tiles[2], tiles[0][:, ::-1]], axis=1)
    image = np.concatenate([top, bottom], axis=0)
    (folder / "scene").mkdir(exist_ok=True)
    path = folder / "scene" / "loveda_2048.tif"
    profile = {"driver": "GTiff", "width": 2048, "height": 2048, "count": 3, "dtype": "uint8"}
    with rasterio.open(
        path, "w", **profile, crs="EPSG:32650", transform=from_origin(500000, 3500000, 0.3, 0.3)
    ) as dst:
        dst.write(image.transpose(2, 0, 1))
    return path


def timed_command(args: list[str]) -> float:
    """Wall seconds of one ``alps`` command, a whole process."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "alps.cli", *args], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"alps {args[0]} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def scene_ratio(folder: Path) -> dict[str, Any]:
    """``alps label`` on the 2048 px mosaic, then ``alps cluster`` on its features: wall seconds, ratio."""
    from alps.features.shards import read_feature_shard

    scene = mosaic(folder)
    out = folder / "label"
    label = timed_command(["label", str(scene.parent), str(out), "--masks", "felzenszwalb", "--k", "8"])
    cluster = timed_command(
        ["cluster", str(out / "features.npz"), "--out", str(folder / "refit.npz"), "--k", "8"]
    )
    vectors = len(read_feature_shard(out / "features.npz"))
    return {"vectors": vectors, "label_s": label, "cluster_s": cluster, "ratio": cluster / label}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="*", default=["nwpu", "synthetic", "tiled"])
    parser.add_argument("--k", type=int, nargs="+", default=[16, 46])
    parser.add_argument("--before", action="store_true", help="also fit the previous default (slow)")
    parser.add_argument("--scene", action="store_true", help="(b): alps label and alps cluster, 2048 px")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "alps-cluster-cache")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    print(f"load average at the start: {load()}; {os.cpu_count()} CPUs", flush=True)
    results: dict[str, Any] = {"load_start": os.getloadavg(), "fits": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = (args.workdir or Path(tmp)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        variants = ["alps", "before"] if args.before else ["alps"]
        print(f"{'case':<36}{'K':>4}{'variant':>9}{'wall s':>9}{'CPU s':>8}{'peak MB':>9}", flush=True)
        for name, (vectors, ks) in cases(args.cases, args.k, args.cache).items():
            for k in ks:
                for variant in variants:
                    row = fit_case(vectors, k, variant, folder)
                    results["fits"].append({"case": name, "k": k, "variant": variant, **row})
                    print(
                        f"{name:<36}{k:>4}{variant:>9}{row['seconds']:>9.1f}{row['cpu_seconds']:>8.1f}"
                        f"{row['peak_rss_mb']:>9.0f}",
                        flush=True,
                    )
        if args.scene:
            scene = results["scene"] = scene_ratio(folder)
            print(
                f"\n2048 px scene, {scene['vectors']} feature vectors: alps label {scene['label_s']:.0f} s, "
                f"alps cluster (refit, defaults) {scene['cluster_s']:.1f} s: {100 * scene['ratio']:.1f} % "
                "of the label run (bar: at most 20 %)"
            )
    print(f"load average at the end: {load()}")
    results["load_end"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
