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
- ``alps``: ``alps.cluster.fit_kmeans`` with its defaults, one block per image as in a feature shard;
- ``colour baseline``: the same fit on the reference baseline's features (colour mean/std + log area);
- ``--k auto``: the K that ``estimate_k`` picks (default range) and the labels' majority mIoU at that K.

Usage: .venv/bin/python benchmarks/cluster_stability.py [--data ../shared/data/nwpu_vhr10_train]
       [--cache /tmp/nwpu_feats.npz] [--seeds 0 1 2 3 4 5 6 7] [--auto-seeds 0 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
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
    colour = _colour_features(mask_sets, data / "images")
    np.savez(
        cache,
        vectors=shard.vectors,
        image_ids=shard.image_ids,
        mask_ids=shard.mask_ids,
        area_fraction=shard.area_fraction,
        encoder=np.asarray(shard.encoder),
        counts=counts,
        uncovered=uncovered,
        colour=colour,
    )


def _colour_features(mask_sets: list[Any], image_dir: Path) -> NDArray[np.float16]:
    """The reference baseline's PFL: per-mask colour mean/std and log area, standardised (as the test)."""
    from alps.io import read_image

    rows = []
    for mask_set in mask_sets:
        image = read_image(image_dir / f"{mask_set.image_id}.jpg").astype(np.float32)
        for mask in mask_set.decode():
            pixels = image[mask]
            rows.append(np.concatenate([pixels.mean(0), pixels.std(0), [np.log(mask.sum())]]))
    features = np.asarray(rows)
    return ((features - features.mean(0)) / features.std(0)).astype(np.float16)


def load_cache(cache: str | Path, data: str | Path) -> dict[str, NDArray[Any]]:
    """The cached features and scoring counts (built first if missing)."""
    cache, data = Path(cache), Path(data)
    if not cache.is_file():
        build_cache(data, cache)
    with np.load(cache, allow_pickle=False) as npz:
        loaded = {name: npz[name] for name in npz.files}
    if "colour" not in loaded:  # a cache from before the baseline was added
        from alps.io import read_image
        from alps.masks.coco import CocoMaskSource
        from alps.sharding import images_from_source

        source = CocoMaskSource(data / "instances_train.json")
        items = images_from_source(data / "images")
        mask_sets = [source.generate(read_image(item.path), item.image_id) for item in items]
        loaded["colour"] = _colour_features(mask_sets, data / "images")
        np.savez(cache, **loaded)
    return loaded


def score(cache: dict[str, NDArray[Any]], labels: NDArray[np.integer], k: int) -> dict[str, float]:
    """Hungarian and majority object mIoU of one cluster id per mask."""
    confusion = np.zeros((k + 1, NUM_CLASSES), np.int64)
    np.add.at(confusion, np.asarray(labels), cache["counts"])
    confusion[k] = cache["uncovered"]
    return {m: scores_from_confusion(confusion, m)["miou"] for m in ("hungarian", "majority")}


def before_fit(cache: dict[str, NDArray[Any]], seed: int, k: int) -> NDArray[np.int64]:
    """The previous default fit of ``alps label``, step for step (it is no longer in the library).

    The stream: images in an order drawn by ``default_rng([seed, epoch])``, each image's rows permuted by
    the same generator; the reservoir sample kept the whole stream (793 < 20,000 vectors) in that order;
    best of 10 k-means++ restarts on it (k-means++ depends on the row order); one
    ``MiniBatchKMeans.partial_fit`` pass over the stream in batches of 4,096.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    vectors = cache["vectors"].astype(np.float32)
    image_ids = cache["image_ids"]
    _, starts = np.unique(image_ids, return_index=True)
    per_image = [vectors[image_ids == image_ids[start]] for start in np.sort(starts)]
    rng = np.random.default_rng([seed, 0])
    blocks = []
    for index in rng.permutation(len(per_image)):
        block = per_image[index]
        blocks.append(block[rng.permutation(len(block))])
    stream = np.concatenate(blocks)
    init = KMeans(k, n_init=10, random_state=seed).fit(stream).cluster_centers_
    online = MiniBatchKMeans(
        k, init=init, n_init=1, batch_size=4096, random_state=seed, reassignment_ratio=0.0
    )
    for start in range(0, len(stream), 4096):
        online.partial_fit(stream[start : start + 4096])
    return online.predict(vectors)


def alps_fit(cache: dict[str, NDArray[Any]], config: Any) -> tuple[NDArray[np.int64], int]:
    """``alps.cluster.fit_kmeans`` over the cached features, one block per image (as in a shard)."""
    from alps.cluster import FeatureBlock, fit_kmeans

    image_ids = cache["image_ids"]

    def source() -> Any:
        for image_id in np.unique(image_ids):
            rows = np.flatnonzero(image_ids == image_id)
            yield FeatureBlock(cache["vectors"][rows], image_ids[rows], cache["mask_ids"][rows])

    model = fit_kmeans(source, config)
    return model.predict(cache["vectors"]), model.k


def _summary(name: str, runs: list[dict[str, float]]) -> dict[str, Any]:
    row: dict[str, Any] = {"method": name}
    for metric in ("hungarian", "majority"):
        values = np.array([run[metric] for run in runs])
        row[metric] = {
            "mean": round(float(values.mean()), 3),
            "min": round(float(values.min()), 3),
            "max": round(float(values.max()), 3),
            "per_seed": [round(float(v), 3) for v in values],
        }
    return row


def _timed(label: str, runs: Callable[[], list[dict[str, float]]]) -> list[dict[str, float]]:
    start = time.perf_counter()
    result = runs()
    print(f"{label}: {time.perf_counter() - start:.0f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "nwpu_vhr10_train")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/nwpu_feats.npz"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--auto-seeds",
        type=int,
        nargs="*",
        default=[0, 1, 2, 3],
        help="seeds of the --k auto runs (none: skip)",
    )
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    from alps.cluster import ClusterConfig

    cache = load_cache(args.cache, args.data)
    vectors = cache["vectors"].astype(np.float32)
    print(f"{len(vectors)} masks, {vectors.shape[1]}-d features ({cache['encoder']}), K = {args.k}")
    results: dict[str, Any] = {"masks": len(vectors), "k": args.k, "seeds": args.seeds}
    before = _timed(
        "before", lambda: [score(cache, before_fit(cache, s, args.k), args.k) for s in args.seeds]
    )
    after = _timed(
        "alps",
        lambda: [
            score(cache, alps_fit(cache, ClusterConfig(k=args.k, seed=s))[0], args.k) for s in args.seeds
        ],
    )
    colour = {**cache, "vectors": cache["colour"]}
    baseline = _timed(
        "colour baseline",
        lambda: [
            score(cache, alps_fit(colour, ClusterConfig(k=args.k, seed=s))[0], args.k) for s in args.seeds
        ],
    )
    results["stability"] = [
        _summary("before", before),
        _summary("alps", after),
        _summary("colour baseline (alps fit)", baseline),
    ]
    for row in results["stability"]:
        print(json.dumps(row))
    if args.auto_seeds:
        auto = []
        fixed_k = dict(zip(args.seeds, after, strict=True))
        for seed in args.auto_seeds:
            fixed = fixed_k.get(seed) or score(
                cache, alps_fit(cache, ClusterConfig(k=args.k, seed=seed))[0], args.k
            )
            labels, k = alps_fit(cache, ClusterConfig(k=None, seed=seed))
            auto.append(
                {"seed": seed, "k": k, **score(cache, labels, k), "majority_at_fixed_k": fixed["majority"]}
            )
            print(json.dumps(auto[-1]), flush=True)
        results["k_auto"] = auto
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
