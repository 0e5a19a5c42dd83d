"""Seed stability, quality and cost of the mask-class association on several real sets.

Every set's masks and features (the default encoder, EfficientNet-Lite0 stage5+stage7, 432-d) are computed
ONCE and cached (``--cache``), with the counts that score a clustering, so only the clustering varies. Each
fit variant runs with seeds 0-7 on every set and is scored as ``tests/test_label_quality_nwpu.py`` and the
README score it: pixel mIoU after mapping clusters to classes one-to-one (Hungarian) and many-to-one
(majority). Painting is exact and cheap: each mask's pixels that stay visible after painting (largest first)
are counted per ground-truth class once; a clustering's confusion matrix is the sum of its masks' rows.

Sets (``--sets``; all from ``../shared/data``):
- ``nwpu``: the 150 NWPU VHR-10 images, their 793 oracle masks (COCO polygons), K = 10, the 10 object
  classes scored (background ignored);
- ``nwpu-a`` / ``nwpu-b``: the same features, every other image (75 each, ~400 masks): halves the method
  was not chosen on;
- ``loveda``: the 3 LoveDA tiles, felzenszwalb masks (scale 150, sigma 0.8, min size 40, as the demo),
  K = 7, the 7 land-cover classes scored;
- ``loveda-fine``: the same tiles cut finer (felzenszwalb scale 30, min size 10): more vectors than
  ``alps.ward.ANCHORS``, so the default fit summarises its sample by anchors, the path of the paper's
  20,000-vector samples, where the seed picks the anchors;
- ``isaid``: the 3 full iSAID images, felzenszwalb masks, K = 16 (the paper's iSAID K), all 16 labels
  scored (only background, storage tank and the two vehicle classes occur);
- ``nwpu-pool``: 370 NWPU VHR-10 images not in ``nwpu``, their class-agnostic oracle masks, K = 10: no
  classes, so only the agreement between seeds (adjusted Rand index) is reported.

Variants (``--variants``):
- ``before``: the fit before the consensus (best of 10 k-means++ restarts on a reservoir sample, then one
  ``MiniBatchKMeans.partial_fit`` pass), reproduced with scikit-learn calls;
- ``consensus``: the previous default, the consensus of 800 k-means++ restarts (``consensus_fit``: each
  restart scikit-learn's ``KMeans`` on a subsample of at most 4,096 vectors, pooled centres clustered into
  K, Lloyd on the sample, one exact Lloyd pass), reproduced here;
- ``alps``: ``alps.cluster.fit_kmeans`` with its defaults (Ward's agglomeration of the sample, Lloyd);
- ``alps-anchors-N``: the same with the sample summarised by N anchors' cells (``alps.ward``), the path a
  sample larger than ``alps.ward.ANCHORS`` takes; shows how much the anchors' draw moves the result;
- ``restarts-N``: scikit-learn's ``KMeans`` with N k-means++ restarts, the lowest objective kept: a
  reference for how low the objective gets, not a candidate (it is not thread-count invariant).

Per set and variant: mean, min and max of both scores over the seeds, the largest distance of a seed from
the mean, the smallest adjusted Rand index between two seeds' partitions, CPU seconds per fit, and the
k-means objective (SSE: squared distances to the cluster means over every vector; mean and lowest). With
``--extras`` (NWPU only): the colour baseline and the K that ``--k auto`` picks.

Whether two variants differ beyond the luck of which images were sampled: with ``--reference V``, every
other variant's seed-mean score minus V's, and its 95 % interval from a paired bootstrap over the images
(scipy's BCa interval, ``BOOTSTRAP`` resamples; each resample draws the set's images with replacement and
scores every seed of both variants on the same draw). An interval that holds 0 says the difference is
within that noise. Sets
of fewer than ``MIN_BOOTSTRAP_IMAGES`` images (LoveDA, iSAID: 3 large scenes) get no interval.

Usage: .venv/bin/python benchmarks/cluster_stability.py [--sets nwpu nwpu-a nwpu-b loveda isaid nwpu-pool]
       [--variants before consensus alps alps-anchors-2048] [--seeds 0 1 2 3 4 5 6 7]
       [--reference consensus] [--cache /tmp/alps-cluster-cache] [--extras] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from alps.evaluate import scores_from_confusion

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
FELZENSZWALB = {"scale": 150.0, "sigma": 0.8, "min_size": 40}
# Finer segments: more than ``alps.ward.ANCHORS`` vectors, so the default fit takes its anchor path.
FELZENSZWALB_FINE = {"scale": 30.0, "sigma": 0.8, "min_size": 10}
BOOTSTRAP = 2000
MIN_BOOTSTRAP_IMAGES = 20


@dataclass(frozen=True)
class DataSet:
    """A scored set: the cache it reads, its K, and which of the cache's images it keeps."""

    name: str
    cache: str
    k: int
    half: int | None = None  # 0 / 1: every other image of the cache (sorted by id), from the first / second


DATASETS = {
    "nwpu": DataSet("nwpu", "nwpu", 10),
    "nwpu-a": DataSet("nwpu-a", "nwpu", 10, half=0),
    "nwpu-b": DataSet("nwpu-b", "nwpu", 10, half=1),
    "loveda": DataSet("loveda", "loveda", 7),
    "loveda-fine": DataSet("loveda-fine", "loveda-fine", 7),
    "isaid": DataSet("isaid", "isaid", 16),
    "nwpu-pool": DataSet("nwpu-pool", "nwpu-pool", 10),
}


def _owner_counts(
    mask_sets: list[Any], truth: Callable[[str], NDArray[Any] | None], scored: list[int]
) -> Any:
    """Per mask, its visible pixels per class after painting (largest first); per image, the uncovered."""
    from pycocotools import mask as mask_utils

    classes = max(scored) + 1
    rows, uncovered = [], []
    for mask_set in mask_sets:
        gt = truth(mask_set.image_id)
        if gt is None:
            rows.append(np.zeros((len(mask_set), classes), np.int64))
            uncovered.append(np.zeros(classes, np.int64))
            continue
        # Owner of every pixel by mask index (int32: felzenszwalb makes more masks than a uint8 label holds).
        owner = np.full(gt.shape, len(mask_set), np.int64)
        for index in np.argsort(-mask_set.area, kind="stable"):
            owner[mask_utils.decode(mask_set.rles[index]).astype(bool)] = index
        keep = np.isin(gt, scored)
        counts = np.bincount(
            owner[keep] * classes + gt[keep].astype(np.int64), minlength=(len(mask_set) + 1) * classes
        ).reshape(len(mask_set) + 1, classes)
        rows.append(counts[:-1])
        uncovered.append(counts[-1])
    return np.concatenate(rows), np.stack(uncovered)


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


def _png(path: Path) -> NDArray[Any]:
    from PIL import Image

    return np.asarray(Image.open(path))


def build_cache(name: str, path: Path) -> None:
    """Masks, default-encoder features and scoring counts of one cache (``DataSet.cache``)."""
    from alps.features.encoders import build_encoder
    from alps.features.shards import read_feature_shard
    from alps.masks.coco import CocoMaskSource
    from alps.masks.superpixel import FelzenszwalbMaskGenerator
    from alps.pipeline import run_masks
    from alps.sharding import images_from_source

    felzenszwalb = FelzenszwalbMaskGenerator(**FELZENSZWALB)
    nwpu = SHARED / "nwpu_vhr10_train"
    extra: dict[str, Any] = {}
    if name == "nwpu":
        items, masks = images_from_source(nwpu / "images"), CocoMaskSource(nwpu / "instances_train.json")
        truth, scored = (lambda i: _png(nwpu / "semantic" / f"{i}.png")), list(range(1, 11))
    elif name == "nwpu-pool":
        pool = SHARED / "nwpu_vhr10_pool"
        items, masks = (
            images_from_source(pool / "images"),
            CocoMaskSource(pool / "instances_class_agnostic.json"),
        )
        truth, scored = (lambda i: None), [0]
    elif name in ("loveda", "loveda-fine"):
        root = SHARED / "loveda"
        fine = FelzenszwalbMaskGenerator(**FELZENSZWALB_FINE)
        items, masks = images_from_source(root / "img_dir"), felzenszwalb if name == "loveda" else fine
        truth, scored = (lambda i: _png(root / "ann_dir" / f"{i}.png")), list(range(1, 8))
    elif name == "isaid":
        root = SHARED / "isaid" / "full"
        items, masks = images_from_source(root / "images"), felzenszwalb
        truth, scored = (lambda i: _png(root / "labels_index_derived" / f"{i}.png")), list(range(16))
    else:
        raise ValueError(f"unknown cache {name!r}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        mask_sets = run_masks(
            items,
            masks,
            Path(tmp) / "masks.parquet",
            encoder=build_encoder("efficientnet-lite0"),
            features_out=Path(tmp) / "features.npz",
        )
        shard = read_feature_shard(Path(tmp) / "features.npz")
        seconds = time.perf_counter() - start
        print(f"{name}: features of {len(shard)} masks of {len(items)} images in {seconds:.0f} s")
    counts, uncovered = _owner_counts(mask_sets, truth, scored)
    if name == "nwpu":
        extra["colour"] = _colour_features(mask_sets, nwpu / "images")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        vectors=shard.vectors,
        image_ids=shard.image_ids,
        mask_ids=shard.mask_ids,
        counts=counts,
        uncovered=uncovered,
        image_order=np.array([m.image_id for m in mask_sets]),
        scored=np.asarray(scored),
        **extra,
    )


def load_set(spec: DataSet, cache_dir: Path) -> dict[str, Any]:
    """A set's vectors, ids and scoring counts (its cache built first if missing)."""
    path = cache_dir / f"{spec.cache}.npz"
    if not path.is_file():
        build_cache(spec.cache, path)
    with np.load(path, allow_pickle=False) as npz:
        data = {name: npz[name] for name in npz.files}
    order = list(data["image_order"])
    kept = order if spec.half is None else order[spec.half :: 2]
    rows = np.isin(data["image_ids"], kept)
    out = {
        key: data[key][rows]
        for key in ("vectors", "image_ids", "mask_ids", "counts", *(["colour"] if "colour" in data else []))
    }
    out["uncovered_per_image"] = data["uncovered"][[order.index(i) for i in kept]]
    out["uncovered"] = out["uncovered_per_image"].sum(axis=0)
    out["image_order"] = np.asarray(kept)
    out["scored"] = data["scored"]
    out["k"] = spec.k
    return out


def score(data: dict[str, Any], labels: NDArray[np.integer], k: int) -> dict[str, float]:
    """Hungarian and majority mIoU of one cluster id per mask (NaN for a set without classes)."""
    if not data["counts"].any():
        return {"hungarian": float("nan"), "majority": float("nan")}
    confusion = np.zeros((k + 1, data["counts"].shape[1]), np.int64)
    np.add.at(confusion, np.asarray(labels), data["counts"])
    confusion[k] = data["uncovered"]
    return {m: scores_from_confusion(confusion, m)["miou"] for m in ("hungarian", "majority")}


def image_confusions(data: dict[str, Any], labels: NDArray[np.integer], k: int) -> NDArray[np.int64]:
    """``(images, K + 1, C)``: each image's confusion matrix of one clustering (its uncovered pixels last)."""
    images = data["image_order"]
    index = np.searchsorted(np.sort(images), data["image_ids"])
    image_of_mask = np.argsort(images, kind="stable")[index]
    out = np.zeros((len(images), k + 1, data["counts"].shape[1]), np.int64)
    np.add.at(out, (image_of_mask, np.asarray(labels)), data["counts"])
    out[:, k] = data["uncovered_per_image"]
    return out


def paired_bootstrap(
    variant: list[NDArray[np.int64]], reference: list[NDArray[np.int64]], metric: str, seed: int = 0
) -> dict[str, float]:
    """Seed-mean score difference (variant - reference) and its 95 % interval, resampling images.

    ``variant`` and ``reference`` hold one ``image_confusions`` array per seed; every resample scores all
    of them on the same draw of images, so the interval is of the paired difference. The interval is
    scipy's bias-corrected and accelerated (BCa) bootstrap: the clusters are mapped to classes again on
    each draw, which makes the statistic's distribution skewed, and plain percentiles then miss its centre.
    """
    from scipy.stats import bootstrap

    def mean_score(per_seed: list[NDArray[np.int64]], weights: NDArray[np.int64]) -> float:
        return float(
            np.mean([scores_from_confusion(np.tensordot(weights, c, 1), metric)["miou"] for c in per_seed])
        )

    images = len(variant[0])

    def delta(drawn: NDArray[np.int64]) -> float:
        weights = np.bincount(drawn, minlength=images)
        return mean_score(variant, weights) - mean_score(reference, weights)

    observed = delta(np.arange(images))
    if all(np.array_equal(a, b) for a, b in zip(variant, reference, strict=True)):
        return {"delta": observed, "low": observed, "high": observed, "images": images}
    result = bootstrap(
        (np.arange(images),),
        delta,
        vectorized=False,
        n_resamples=BOOTSTRAP,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return {"delta": observed, "low": float(interval.low), "high": float(interval.high), "images": images}


def _blocks(data: dict[str, Any], key: str = "vectors") -> Callable[[], Any]:
    """A ``BlockSource`` with one block per image, as in a feature shard."""
    from alps.cluster import FeatureBlock

    image_ids = data["image_ids"]
    per_image = [np.flatnonzero(image_ids == i) for i in np.unique(image_ids)]

    def source() -> Any:
        for rows in per_image:
            yield FeatureBlock(data[key][rows], image_ids[rows], data["mask_ids"][rows])

    return source


def before_fit(data: dict[str, Any], k: int, seed: int) -> NDArray[np.int64]:
    """The fit before the consensus, step for step (it is no longer in the library).

    The stream: images in an order drawn by ``default_rng([seed, epoch])``, each image's rows permuted by
    the same generator; the reservoir sample kept the whole stream (fewer than 20,000 vectors) in that
    order; best of 10 k-means++ restarts on it; one ``MiniBatchKMeans.partial_fit`` pass in batches of 4,096.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    vectors = data["vectors"].astype(np.float32)
    image_ids = data["image_ids"]
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


def consensus_fit(source: Callable[[], Any], k: int, seed: int, restarts: int = 800) -> NDArray[np.float64]:
    """The previous default fit (until Ward's initialisation replaced it), reproduced; its centres.

    The keyed sample (``alps.cluster.keyed_sample``, at most 20,000 vectors); ``restarts`` k-means++ runs of
    scikit-learn's ``KMeans``, each on a seeded subsample of at most 4,096 sample vectors; their centres
    pooled and clustered into K (best of 10); Lloyd on the sample from there; one exact Lloyd pass over all
    vectors.
    """
    from sklearn.cluster import KMeans

    from alps.cluster import keyed_sample
    from alps.ward import nearest

    sample, _ = keyed_sample(source(), 20000, seed)
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(restarts):
        restart_seed = int(rng.integers(2**31 - 1))
        subset = sample
        if len(sample) > 4096:
            subset = sample[np.sort(rng.choice(len(sample), 4096, replace=False))]
        pool.append(KMeans(k, n_init=1, random_state=restart_seed).fit(subset).cluster_centers_)
    pooled = KMeans(k, n_init=10, random_state=seed).fit(np.concatenate(pool)).cluster_centers_
    centers = KMeans(k, init=pooled, n_init=1, random_state=seed).fit(sample).cluster_centers_
    labels = nearest(sample, centers)[0]
    centers = np.stack([sample[labels == c].mean(0) if (labels == c).any() else sample[c] for c in range(k)])
    vectors = np.concatenate([block.vectors for block in source()]).astype(np.float64)
    labels = nearest(vectors, centers.astype(np.float32).astype(np.float64))[0]
    sums = np.zeros_like(centers)
    np.add.at(sums, labels, vectors)
    counts = np.bincount(labels, minlength=k)
    filled = counts > 0
    centers[filled] = sums[filled] / counts[filled, None]
    return centers


def partition_sse(vectors: NDArray[np.floating], labels: NDArray[np.integer], k: int) -> float:
    """The k-means objective of a partition: the sum of squared distances to the cluster means."""
    from alps.ward import cluster_sums

    points = np.asarray(vectors, np.float64)
    sums, counts = cluster_sums(points, np.asarray(labels, np.int64), k)
    filled = counts > 0
    return float((points**2).sum() - ((sums[filled] ** 2).sum(axis=1) / counts[filled]).sum())


def fit_labels(
    variant: str, data: dict[str, Any], k: int, seed: int, key: str = "vectors"
) -> NDArray[np.int64]:
    """One fit of ``variant`` on a set; the cluster of every mask."""
    import alps.cluster as cluster
    from alps.ward import nearest

    vectors = data[key].astype(np.float64)
    if variant == "before":
        return before_fit({**data, "vectors": data[key]}, k, seed)
    if variant == "consensus":
        centers = consensus_fit(_blocks(data, key), k, seed).astype(np.float32)  # stored as float32
        return nearest(vectors, centers.astype(np.float64))[0]
    if variant == "alps":
        return cluster.fit_kmeans(_blocks(data, key), cluster.ClusterConfig(k=k, seed=seed)).predict(
            data[key]
        )
    if variant.startswith("restarts-"):
        from sklearn.cluster import KMeans

        restarts = int(variant.rsplit("-", 1)[1])
        return KMeans(k, n_init=restarts, random_state=seed).fit(vectors).labels_.astype(np.int64)
    if variant.startswith("alps-anchors-"):
        default = cluster.ANCHORS
        cluster.ANCHORS = int(variant.rsplit("-", 1)[1])
        try:
            model = cluster.fit_kmeans(_blocks(data, key), cluster.ClusterConfig(k=k, seed=seed))
        finally:
            cluster.ANCHORS = default
        return model.predict(data[key])
    raise ValueError(f"unknown variant {variant!r}")


def evaluate(variant: str, data: dict[str, Any], seeds: list[int], key: str = "vectors") -> dict[str, Any]:
    """Scores of every seed, their spread, the agreement between seeds and the CPU seconds per fit."""
    from sklearn.metrics import adjusted_rand_score

    k = data["k"]
    partitions, runs, cpu, sse = [], [], [], []
    for seed in seeds:
        start = time.process_time()
        labels = fit_labels(variant, data, k, seed, key)
        cpu.append(time.process_time() - start)
        partitions.append(labels)
        runs.append(score(data, labels, k))
        sse.append(partition_sse(data[key], labels, k))
    row: dict[str, Any] = {
        "variant": variant,
        "masks": len(data[key]),
        "k": k,
        "cpu_s_per_fit": float(np.mean(cpu)),
        # The objective every variant minimises: which of near-equal minima scores best is luck.
        "sse": {"mean": float(np.mean(sse)), "min": float(min(sse)), "per_seed": np.round(sse, 2).tolist()},
    }
    for metric in ("hungarian", "majority"):
        values = np.array([run[metric] for run in runs])
        row[metric] = {
            "mean": float(values.mean()),
            "min": float(values.min()),
            "max": float(values.max()),
            "max_dev": float(np.abs(values - values.mean()).max()),
            "per_seed": [round(float(v), 3) for v in values],
        }
    pairs = [(i, j) for i in range(len(partitions)) for j in range(i)]
    row["ari_min"] = min((adjusted_rand_score(partitions[i], partitions[j]) for i, j in pairs), default=1.0)
    row["partitions"] = partitions  # for the paired bootstrap; not written to --out
    return row


def compare(data: dict[str, Any], row: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any] | None:
    """``paired_bootstrap`` of both scores against ``reference`` (None: too few images or no classes)."""
    if len(data["image_order"]) < MIN_BOOTSTRAP_IMAGES or not data["counts"].any():
        return None
    k = data["k"]
    ours = [image_confusions(data, labels, k) for labels in row["partitions"]]
    theirs = [image_confusions(data, labels, k) for labels in reference["partitions"]]
    return {m: paired_bootstrap(ours, theirs, m) for m in ("hungarian", "majority")}


def _compare_line(name: str, variant: str, reference: str, result: dict[str, Any]) -> str:
    cells = []
    for metric in ("hungarian", "majority"):
        r = result[metric]
        noise = "within noise" if r["low"] <= 0 <= r["high"] else "beyond noise"
        cells.append(f"{metric} {r['delta']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] {noise}")
    images = result["hungarian"]["images"]
    return f"{name:<12}{variant} - {reference} ({images} images): " + "; ".join(cells)


def _line(name: str, row: dict[str, Any]) -> str:
    def cell(metric: str) -> str:
        m = row[metric]
        if np.isnan(m["mean"]):
            return f"{'-':>24}"
        return f"{m['mean']:>7.3f} [{m['min']:.3f}, {m['max']:.3f}]"[:24].rjust(24)

    devs = [row[m]["max_dev"] for m in ("hungarian", "majority")]
    stable = "-" if np.isnan(devs).any() else ("yes" if max(devs) <= 0.02 else "NO")
    return (
        f"{name:<12}{row['variant']:<20}{row['masks']:>6}{row['k']:>4}{cell('hungarian')}{cell('majority')}"
        f"{max(devs):>8.3f}{stable:>6}{row['ari_min']:>8.3f}{row['cpu_s_per_fit']:>10.2f}"
        f"{row['sse']['mean']:>12.1f}{row['sse']['min']:>12.1f}"
    )


def k_auto(data: dict[str, Any], seeds: list[int], fixed: dict[int, float]) -> list[dict[str, Any]]:
    """The K that ``--k auto`` picks per seed, with its labels' scores (and the majority score at K)."""
    from alps.cluster import ClusterConfig, fit_kmeans

    rows = []
    for seed in seeds:
        model = fit_kmeans(_blocks(data), ClusterConfig(k=None, seed=seed))
        scores = score(data, model.predict(data["vectors"]), model.k)
        rows.append({"seed": seed, "k": model.k, **scores, "majority_at_fixed_k": fixed.get(seed)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--variants", nargs="+", default=["before", "consensus", "alps", "alps-anchors-2048"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "alps-cluster-cache")
    parser.add_argument(
        "--reference", help="a variant of --variants: the others' paired bootstrap difference against it"
    )
    parser.add_argument("--extras", action="store_true", help="NWPU: the colour baseline and --k auto")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.reference is not None and args.reference not in args.variants:
        parser.error(f"--reference {args.reference} is not one of --variants")

    results: dict[str, Any] = {"seeds": args.seeds, "rows": [], "comparisons": []}
    header = (
        f"{'set':<12}{'variant':<20}{'masks':>6}{'K':>4}{'Hungarian [min, max]':>24}"
        f"{'majority [min, max]':>24}{'max dev':>8}{'<=.02':>6}{'min ARI':>8}{'CPU s/fit':>10}"
        f"{'SSE mean':>12}{'SSE min':>12}"
    )
    print(header, flush=True)
    for name in args.sets:
        data = load_set(DATASETS[name], args.cache)
        rows = {}
        for variant in args.variants:
            rows[variant] = row = {"set": name, **evaluate(variant, data, args.seeds)}
            results["rows"].append(row)
            print(_line(name, row), flush=True)
        if args.reference is not None:
            for variant, row in rows.items():
                result = None if variant == args.reference else compare(data, row, rows[args.reference])
                if result is not None:
                    print(_compare_line(name, variant, args.reference, result), flush=True)
                    results["comparisons"].append(
                        {"set": name, "variant": variant, "reference": args.reference, **result}
                    )
        if args.extras and name == "nwpu":
            colour = {
                "set": name,
                **evaluate("alps", data, args.seeds, key="colour"),
                "variant": "alps, colour",
            }
            results["rows"].append(colour)
            print(_line(name, colour), flush=True)
            fixed = {}
            for row in results["rows"]:
                if row["set"] == name and row["variant"] == "alps":
                    fixed = dict(zip(args.seeds, row["majority"]["per_seed"], strict=True))
            results["k_auto"] = k_auto(data, args.seeds[:4], fixed)
    for row in results["rows"]:
        row.pop("partitions", None)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
