"""Mask-class association on real objects: NWPU VHR-10 with oracle masks (its COCO polygons).

The same masks are clustered twice with K=10 and scored by the same evaluator against the semantic labels
(object classes only: background 0 is ignored): once from the engine's default PFL (EfficientNet-Lite0
stage5+stage7), once from the reference baseline of per-mask colour mean/std and log area. The engine must
beat the baseline clearly; the full-set numbers are in the README.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from alps.cli import main
from alps.cluster import ClusterConfig
from alps.evaluate import evaluate_label_dirs
from alps.features.shards import read_feature_shard, write_feature_shard
from alps.io import read_image
from alps.masks.shards import read_mask_shard
from alps.pipeline import run_cluster, run_paint

from conftest import shared_data

IMAGES = 60  # the first 60 of the 150 images keep the test near 30 s


@pytest.fixture(scope="module")
def nwpu_subset(tmp_path_factory):
    root = shared_data("nwpu_vhr10_train")
    folder = tmp_path_factory.mktemp("nwpu")
    (folder / "images").mkdir()
    for path in sorted((root / "images").glob("*.jpg"))[:IMAGES]:
        (folder / "images" / path.name).symlink_to(path)
    return root, folder


@pytest.mark.slow
def test_engine_beats_colour_baseline(nwpu_subset):
    root, folder = nwpu_subset
    out = folder / "alps"
    args = [
        "label",
        str(folder / "images"),
        str(out),
        "--masks",
        "coco",
        "--coco-json",
        str(root / "instances_train.json"),
        "--k",
        "10",
        "--area-threshold",
        "1.0",
        "--seed",
        "0",
    ]
    assert main(args) == 0
    engine = evaluate_label_dirs(out / "labels", root / "semantic", 11, (0, 255))

    # Baseline features for the very same masks, clustered and painted by the same code.
    masks = read_mask_shard(out / "masks.parquet")
    index = read_feature_shard(out / "features.npz")
    rows = []
    for mask_set in masks:
        image = read_image(folder / "images" / f"{mask_set.image_id}.jpg").astype(np.float32)
        for mask in mask_set.decode():
            pixels = image[mask]
            rows.append(np.concatenate([pixels.mean(0), pixels.std(0), [np.log(mask.sum())]]))
    baseline_features = np.asarray(rows)
    baseline_features = (baseline_features - baseline_features.mean(0)) / baseline_features.std(0)
    write_feature_shard(
        folder / "colour.npz",
        baseline_features,
        index.image_ids,
        index.mask_ids,
        index.area_fraction,
        "colour",
    )
    run_cluster([folder / "colour.npz"], ClusterConfig(k=10, seed=0), 1.0, folder / "colour_kmeans.npz")
    run_paint(
        out / "masks.parquet", folder / "colour.npz", folder / "colour_kmeans.npz", folder / "colour", 1.0
    )
    baseline = evaluate_label_dirs(folder / "colour" / "labels", root / "semantic", 11, (0, 255))

    print(
        json.dumps(
            {
                m: {"engine": engine[m]["miou"], "baseline": baseline[m]["miou"]}
                for m in ("hungarian", "majority")
            }
        )
    )
    assert engine["hungarian"]["coverage"] > 0.9  # oracle masks cover the objects
    assert engine["hungarian"]["miou"] > baseline["hungarian"]["miou"] + 0.05
    assert engine["majority"]["miou"] > baseline["majority"]["miou"] + 0.1
