"""Peak memory and seconds of ``alps label`` against the scene size: flat, because scenes are tiled.

Builds square 16-bit GeoTIFF scenes (EPSG:32616) of 1024^2, 2048^2 and 4096^2 pixels by mirroring the real
SpaceNet sample (900^2, ``../shared/data/spacenet_building``) about its borders, writes them tiled, and runs
``alps label`` on each in a fresh subprocess with the default CPU backends (felzenszwalb + efficientnet-lite0,
tiles of 1024 px overlapping by 128). Prints, per size, the tiles, masks, seconds and the child's peak RSS,
and checks that the output is one label GeoTIFF of the scene's size in the scene's CRS.

For scale: before tiling, the superpixel backend alone needed 4.5 GB at 1000^2 and was OOM-killed at 2000^2.

Usage: .venv/bin/python benchmarks/scene_memory.py [--sizes 1024 2048 4096] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SAMPLE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "spacenet_building"
    / "sample_geotiff.tif"
)

CHILD = r"""
import json, resource, sys, time
from alps.cli import main
start = time.perf_counter()
code = main(["label", sys.argv[1], sys.argv[2], "--k", "16"])
print(json.dumps({"code": code, "seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_scene(size: int, target: Path) -> None:
    """A ``size`` square scene: the sample mirrored about its borders (no seam in the pixels themselves)."""
    import rasterio

    with rasterio.open(SAMPLE) as src:
        data = src.read(1)
        profile = src.profile
    reps = -(-size // data.shape[0])
    row = np.concatenate([data if i % 2 == 0 else data[:, ::-1] for i in range(reps)], axis=1)
    scene = np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(reps)], axis=0)[:size, :size]
    profile.update(height=size, width=size, tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    target.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(scene, 1)


def run(size: int, workdir: Path) -> dict[str, float]:
    import rasterio

    images = workdir / f"scene_{size}"
    scene = images / f"scene_{size}.tif"
    if not scene.exists():
        make_scene(size, scene)
    out = workdir / f"out_{size}"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(images), str(out)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"alps label failed at {size}^2:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    card = json.loads((out / "label_card.json").read_text())
    with rasterio.open(out / "labels" / f"scene_{size}.tif") as label, rasterio.open(scene) as src:
        assert (label.height, label.width) == (size, size), "the label is not of the scene's size"
        assert label.crs == src.crs and label.transform == src.transform, "the label lost the georeferencing"
    return {
        "size": size,
        "tiles": card["inputs"][0]["tiles"],
        "masks": card["masks"],
        "seconds": round(measured["seconds"], 1),
        "peak_rss_mb": round(measured["peak_rss_mb"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--workdir", type=Path, help="keep scenes and outputs here (default: a temp folder)")
    args = parser.parse_args()
    if not SAMPLE.is_file():
        sys.exit(f"the SpaceNet sample is missing: {SAMPLE}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        print(f"{'scene':>10} {'tiles':>6} {'masks':>7} {'seconds':>8} {'peak RSS MB':>12}")
        for size in args.sizes:
            row = run(size, workdir)
            print(
                f"{row['size']:>5}^2 px {row['tiles']:>6} {row['masks']:>7} {row['seconds']:>8} "
                f"{row['peak_rss_mb']:>12}",
                flush=True,
            )


if __name__ == "__main__":
    main()
