"""Seed stability of the mask-class association, and K from the data, on the NWPU VHR-10 sample.

The masks are the sample's oracle masks (its COCO polygons, ``--masks coco``), the features the default
encoder's (EfficientNet-Lite0 stage5+stage7); both are computed ONCE and cached (``--cache``), so only the
clustering varies. Every run is scored as ``tests/test_label_quality_nwpu.py`` and the README score it:
pixel mIoU over the object classes (background ignored) after mapping clusters to classes one-to-one
(Hungarian) and many-to-one (majority). Painting is exact and cheap: each mask's pixels that stay visible
after painting (largest first) are counted per ground-truth class once; a clustering's confusion matrix is
then the sum of its masks' rows.

Reported, for K = 10 and seeds 0-7 (mean, min, max):
- ``before``: the previous fit (k-means, 10 restarts, on a reservoir sample, then one
  ``MiniBatchKMeans.partial_fit`` pass), reproduced here with scikit-learn calls;
- ``alps``: ``alps.cluster.fit_kmeans`` with its defaults, through the same batch stream as ``alps cluster``;
- ``--k auto``: the K that ``estimate_k`` picks (default range) and the labels' majority mIoU at that K.

Usage: .venv/bin/python benchmarks/cluster_stability.py [--data ../shared/data/nwpu_vhr10_train]
       [--cache /tmp/nwpu_feats.npz] [--seeds 0 1 2 3 4 5 6 7] [--skip-auto]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from alps.evaluate import scores_from_confusion

NUM_CLASSES = 11  # NWPU: 0 background (not scored), 1..10 object classes
REPO = Path(__file__).resolve().parents[1]


def _visible_counts(mask_sets: list[Any], semantic_dir: Path) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per mask, its visible pixels per class after painting; and the object pixels no mask covers."""
    from PIL import Image

    from alps.paint import UNLABELED, paint_labels

    rows = []
    uncovered = np.zeros(NUM_CLASSES, np.int64)
    for mask_set in mask_sets:
        gt = np.asarray(Image.open(semantic_dir / f"{mask_set.image_id}.png")).astype(np.int64)
        # Paint mask indices instead of cluster ids: which mask owns a pixel does not depend on the ids.
        owner = paint_labels(mask_set, np.arange(len(mask_set))).astype(np.int64)
        scored = (gt > 0) & (gt < NUM_CLASSES)
        owner, gt = owner[scored], gt[scored]
        counts = np.bincount(owner * NUM_CLASSES + gt, minlength=(UNLABELED + 1) * NUM_CLASSES)
        counts = counts.reshape(UNLABELED + 1, NUM_CLASSES)
        rows.append(counts[: len(mask_set)])
        uncovered += counts[UNLABELED]
    return np.concatenate(rows), uncovered


def build_cache(data: Path, cache: Path) -> None:
    """Oracle masks and default-encoder features of every image, plus the scoring counts."""
    from alps.features.encoders import build_encoder
    from alps.features.shards import read_feature_shard
    from alps.masks.coco import CocoMaskSource
    from alps.pipeline import run_masks
    from alps.sharding import images_from_source

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        mask_sets = run_masks(
            images_from_source(data / "images"),
            CocoMaskSource(data / "instances_train.json"),
            Path(tmp) / "masks.parquet",
            encoder=build_encoder("efficientnet-lite0"),
            features_out=Path(tmp) / "features.npz",
        )
        shard = read_feature_shard(Path(tmp) / "features.npz")
        print(f"features of {len(shard)} masks in {time.perf_counter() - start:.0f} s")
    counts, uncovered = _visible_counts(mask_sets, data / "semantic")
    np.savez(
        cache,
        vectors=shard.vectors,
        image_ids=shard.image_ids,
        mask_ids=shard.mask_ids,
        area_fraction=shard.area_fraction,
        encoder=np.asarray(shard.encoder),
        counts=counts,
        uncovered=uncovered,
    )


def load_cache(cache: str | Path, data: str | Path) -> dict[str, NDArray[Any]]:
    """The cached features and scoring counts (built first if missing)."""
    cache, data = Path(cache), Path(data)
    if not cache.is_file():
        build_cache(data, cache)
    with np.load(cache, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def score(cache: dict[str, NDArray[Any]], labels: NDArray[np.integer], k: int) -> dict[str, float]:
    """Hungarian and majority object mIoU of one cluster id per mask."""
    confusion = np.zeros((k + 1, NUM_CLASSES), np.int64)
    np.add.at(confusion, np.asarray(labels), cache["counts"])
    confusion[k] = cache["uncovered"]
    return {m: scores_from_confusion(confusion, m)["miou"] for m in ("hungarian", "majority")}
