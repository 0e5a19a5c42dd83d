"""K-means over feature shards: the mask-class association of ALPS.

The paper clusters the pseudo feature labels (PFLs) of hundreds of thousands of images with online k-means,
because the whole feature set does not fit in memory. ``fit_kmeans`` streams the gated feature blocks of
the shards (``alps.features.shards.iter_feature_blocks``), one block in memory at a time:

1. **Sample.** Every vector gets a key hashed from ``(seed, image id, mask id)``; the ``init_sample``
   vectors with the smallest keys form the sample, sorted by key. The sample is a uniform draw that does
   not depend on how the vectors are split into shards or in which order they arrive.
2. **Initialise** by Ward's agglomeration of the sample (``alps.ward``): vectors are merged bottom-up,
   always the pair whose merge raises the squared error least, until K clusters are left; Lloyd's
   algorithm on the sample then runs from their means until no vector changes cluster. Nothing there is
   random, so the seed acts only through the sample. It replaced the consensus of 800 k-means++ restarts,
   which cost minutes and still moved with the seed on data it was not chosen on (``docs/clustering.md``).
3. **Refine.** ``epochs`` passes of Lloyd's algorithm over every vector: each pass assigns all vectors to
   their nearest centre and moves each centre to the mean of its vectors. The per-centre sums are taken in
   float64 over the shards' float16 values, which is exact, so the result is the same bit for bit whatever
   the sharding and the order of the blocks: ``alps label`` (one shard) and the workflow (many shards) fit
   the same model from the same features and seed.

The distances live in the PFL space itself (``normalize="none"``, the paper) or among unit vectors
(``"l2"``, cosine), optionally projected on the sample's leading principal components (``pca_dim``); the
model stores that projection. With ``k=None``, ``estimate_k`` picks K on the sample (BIC).

A fitted model is stored as plain arrays and JSON (``ClusterModel.save``): an ``.npz`` read with
``allow_pickle=False``, never an unpickled object, because models are shared between users.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans

from alps import __version__
from alps.io.atomic import atomic_output, atomic_write_text
from alps.limits import check_archive
from alps.progress import Progress, track
from alps.ward import ANCHORS, lloyd, nearest, ward_centers

log = logging.getLogger(__name__)

MAX_K = 255  # label PNGs are uint8 and 255 means "not covered"
MODEL_FORMAT = "alps-kmeans/2"
MODEL_SUFFIX = ".npz"
DEFAULT_MODEL_NAME = "kmeans.npz"
"""File name of the model in ``alps label``'s output and in the workflow's cluster folder."""


@dataclass(frozen=True)
class FeatureBlock:
    """Some gated feature vectors with the ids that name them (their masks).

    Attributes:
        vectors: ``(n, D)`` PFLs (float16 as stored in feature shards, or any float array).
        image_ids: ``(n,)`` the image of each vector.
        mask_ids: ``(n,)`` the index of each vector's mask in its image.
    """

    vectors: NDArray[np.floating]
    image_ids: NDArray[np.str_]
    mask_ids: NDArray[np.integer]


BlockSource = Callable[[], Iterable[FeatureBlock]]
"""Called once per pass over the data; yields the feature blocks, in any order."""


@dataclass(frozen=True)
class ClusterConfig:
    """Settings of the k-means fit.

    Attributes:
        k: number of clusters (pseudo-classes); ``None`` estimates it from the data (``estimate_k``).
        batch_size: vectors assigned at once in the Lloyd passes (memory only: the result does not
            depend on it).
        epochs: Lloyd passes over all vectors after the initialisation.
        seed: seeds the sample keys: the only source of randomness (with at most ``init_sample`` vectors,
            all of them form the sample and the centres are the same for every seed).
        init_sample: size of the sample used to initialise (and to estimate K).
        normalize: ``"none"`` clusters raw PFLs (the paper); ``"l2"`` clusters unit vectors (cosine).
        pca_dim: cluster in the span of this many leading principal components of the sample (``None``:
            the full space).
        k_range: candidate K values (inclusive bounds) when ``k`` is ``None``.
    """

    k: int | None = 16
    batch_size: int = 4096
    epochs: int = 1
    seed: int = 0
    init_sample: int = 20000
    normalize: str = "none"
    pca_dim: int | None = None
    k_range: tuple[int, int] = (2, 64)

    def __post_init__(self) -> None:
        if self.k is not None and not 2 <= self.k <= MAX_K:
            raise ValueError(f"k must be between 2 and {MAX_K} (255 marks unlabeled pixels), got {self.k}")
        if self.batch_size < 1 or self.epochs < 0 or self.init_sample < 2:
            raise ValueError("batch_size must be >= 1, epochs >= 0 and init_sample >= 2")
        if self.normalize not in ("none", "l2"):
            raise ValueError(f"normalize must be 'none' or 'l2', got {self.normalize!r}")
        if self.pca_dim is not None and self.pca_dim < 1:
            raise ValueError(f"pca_dim must be at least 1 or None, got {self.pca_dim}")
        low, high = self.k_range
        if not 2 <= low <= high <= MAX_K:
            raise ValueError(f"k_range must satisfy 2 <= MIN <= MAX <= {MAX_K}, got {self.k_range}")


@dataclass
class ClusterModel:
    """A fitted k-means model: its centres, the space they live in, and the facts of the fit.

    Attributes:
        centers: ``(K, D)`` float32 centres in the PFL space (after ``normalize``).
        normalize: ``"none"`` or ``"l2"``, applied to a vector before anything else.
        mean: ``(D,)`` float64 centre of the projection (zeros without one).
        projection: ``(D, d)`` float64 projection of the distances (the identity without PCA).
        card: JSON-ready facts: K, whether it was estimated and the criterion of every K tried, the
            config, the area threshold of the gate, vector counts, versions.
    """

    centers: NDArray[np.float32]
    normalize: str = "none"
    mean: NDArray[np.float64] | None = None
    projection: NDArray[np.float64] | None = None
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.centers = np.ascontiguousarray(self.centers, dtype=np.float32)
        dim = self.centers.shape[1]
        self.mean = np.zeros(dim) if self.mean is None else np.asarray(self.mean, dtype=np.float64)
        self.projection = np.eye(dim) if self.projection is None else np.asarray(self.projection, np.float64)
        self._projected_centers = _project(self.centers, self.mean, self.projection)

    @property
    def k(self) -> int:
        """Number of clusters."""
        return int(self.centers.shape[0])

    @property
    def feature_dim(self) -> int:
        """Length of the vectors the model assigns."""
        return int(self.centers.shape[1])

    @property
    def area_threshold(self) -> float | None:
        """The gate the model was fitted behind (masks above it were left out); ``None`` if unknown."""
        value = self.card.get("area_threshold")
        return None if value is None else float(value)

    def predict(self, vectors: NDArray[np.floating]) -> NDArray[np.int64]:
        """Cluster id (0..K-1) of every row of ``vectors`` (nearest centre)."""
        vectors = np.asarray(vectors)
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.int64)
        if vectors.ndim != 2 or vectors.shape[1] != self.feature_dim:
            raise ValueError(
                f"the model assigns {self.feature_dim}-d vectors, got shape {vectors.shape}: the features "
                "come from another encoder than the model's"
            )
        prepared = _normalize(vectors, self.normalize)
        return nearest(_project(prepared, self.mean, self.projection), self._projected_centers)[0]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model as one ``.npz`` of plain arrays (+ ``<path>.card.json`` to read), atomically."""
        arrays = {
            "format": np.asarray(MODEL_FORMAT),
            "centers": self.centers,
            "normalize": np.asarray(self.normalize),
            "mean": self.mean,
            "projection": self.projection,
            "card": np.asarray(json.dumps(self.card, sort_keys=True)),
        }
        with atomic_output(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        atomic_write_text(f"{path}.card.json", json.dumps(self.card, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClusterModel:
        """Read a model written by ``save``; never unpickles anything.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not such a model (e.g. a pickle, an old ``kmeans.joblib``, a truncated
                or edited file); the message names the file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cluster model {path} does not exist; run `alps cluster` first")
        check_archive(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                if not isinstance(npz, np.lib.npyio.NpzFile):
                    raise ValueError("a bare .npy array")
                missing = {"format", "centers", "normalize", "mean", "projection", "card"} - set(npz.files)
                if missing:
                    raise ValueError(f"missing array(s) {sorted(missing)}")
                data = {name: npz[name] for name in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError) as exc:
            raise ValueError(
                f"{path} is not an ALPS k-means model ({exc}); models are written by `alps cluster` or "
                "`alps label` as plain arrays (.npz), older .joblib models are not read: fit it again"
            ) from exc
        return cls._from_arrays(path, data)

    @classmethod
    def _from_arrays(cls, path: Path, data: dict[str, NDArray[Any]]) -> ClusterModel:
        def fail(message: str) -> ValueError:
            return ValueError(f"{path} is not a valid ALPS k-means model: {message}")

        if str(data["format"]) != MODEL_FORMAT:
            raise fail(f"format {str(data['format'])!r}, expected {MODEL_FORMAT!r}")
        centers, mean, projection = data["centers"], data["mean"], data["projection"]
        if centers.dtype != np.float32 or centers.ndim != 2 or not 2 <= len(centers) <= MAX_K:
            raise fail(
                f"centers must be float32 (K, D) with 2 <= K <= {MAX_K}, got {centers.dtype} {centers.shape}"
            )
        dim = centers.shape[1]
        if mean.shape != (dim,) or projection.ndim != 2 or projection.shape[0] != dim:
            raise fail(f"mean {mean.shape} / projection {projection.shape} do not fit {dim}-d centres")
        if not all(np.isfinite(a).all() for a in (centers, mean, projection)):
            raise fail("non-finite values")
        normalize = str(data["normalize"])
        if normalize not in ("none", "l2"):
            raise fail(f"unknown normalize {normalize!r}")
        try:
            card = json.loads(str(data["card"]))
        except json.JSONDecodeError as exc:
            raise fail(f"card is not JSON ({exc})") from exc
        if not isinstance(card, dict):
            raise fail("card is not a JSON object")
        return cls(centers, normalize, mean, projection, card)


def _normalize(vectors: NDArray[np.floating], normalize: str) -> NDArray[np.floating]:
    if normalize == "l2":
        vectors = np.asarray(vectors, dtype=np.float64)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def _project(
    vectors: NDArray[np.floating], mean: NDArray[np.float64], projection: NDArray[np.float64]
) -> NDArray[np.float64]:
    return (np.asarray(vectors, dtype=np.float64) - mean) @ projection


def _splitmix64(values: NDArray[np.uint64]) -> NDArray[np.uint64]:
    # The finaliser of SplitMix64: a cheap bijective mix whose output bits all depend on every input bit.
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def sample_keys(image_ids: NDArray[np.str_], mask_ids: NDArray[np.integer], seed: int) -> NDArray[np.uint64]:
    """A pseudo-random 64-bit key per vector, a pure function of ``(seed, image id, mask id)``.

    Keys, not positions in a stream, decide which vectors enter the sample: the sample is then the same
    whatever the sharding and the order of the shards.
    """
    unique, inverse = np.unique(np.asarray(image_ids), return_inverse=True)
    per_image = np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{seed}\0{name}".encode(), digest_size=8).digest(), "little")
            for name in unique.tolist()
        ],
        dtype=np.uint64,
    )
    masks = np.asarray(mask_ids).astype(np.int64).astype(np.uint64)
    return _splitmix64(per_image[inverse.reshape(-1)] ^ _splitmix64(masks))


def _take_smallest(keys: NDArray[np.uint64], size: int) -> NDArray[np.int64]:
    if len(keys) <= size:
        return np.arange(len(keys))
    return np.argpartition(keys, size - 1)[:size]


def _check_finite(block: FeatureBlock) -> None:
    finite = np.isfinite(block.vectors).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"the feature vector of mask {block.mask_ids[row]} of image {block.image_ids[row]} is not "
            "finite (NaN or inf): compute that image's features again"
        )


def keyed_sample(
    blocks: Iterable[FeatureBlock], size: int, seed: int, normalize: str = "none"
) -> tuple[NDArray[np.float64], int]:
    """The ``size`` vectors of smallest ``sample_keys`` (sorted by key), and the number of vectors seen.

    Memory: the sample plus one block. The sample does not depend on how the stream is cut into blocks.

    Raises:
        ValueError: blocks of different widths, or a vector that is not finite.
    """
    sample: NDArray[np.float64] | None = None
    keys = np.zeros(0, dtype=np.uint64)
    seen = 0
    for block in blocks:
        _check_finite(block)
        vectors = np.asarray(_normalize(block.vectors, normalize), dtype=np.float64)
        if sample is not None and vectors.shape[1] != sample.shape[1]:
            raise ValueError(
                f"feature blocks of widths {sample.shape[1]} and {vectors.shape[1]} in one stream"
            )
        seen += len(vectors)
        block_keys = sample_keys(block.image_ids, block.mask_ids, seed)
        merged_keys = np.concatenate([keys, block_keys])
        merged = vectors if sample is None else np.concatenate([sample, vectors])
        chosen = _take_smallest(merged_keys, size)
        sample, keys = merged[chosen], merged_keys[chosen]
    if sample is None:
        return np.zeros((0, 0)), 0
    order = np.argsort(keys, kind="stable")
    return sample[order], seen


def canonical_order(sample: NDArray[np.float64]) -> NDArray[np.float64]:
    """The rows sorted by value (first column first; -0.0 made 0.0): an order that only the set decides.

    Every sum of the initialisation then runs in the same order whatever the seed or the sharding, so the
    same vectors give the same centres bit for bit.
    """
    sample = sample + 0.0
    return sample[np.lexsort(sample.T[::-1])]


def _fit_projection(
    sample: NDArray[np.float64], pca_dim: int | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Centre and projection of the distance space: the identity, or the sample's leading components."""
    dim = sample.shape[1]
    if pca_dim is None or pca_dim >= dim:
        return np.zeros(dim), np.eye(dim)
    mean = sample.mean(axis=0)
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    components = vt[:pca_dim]
    # Fix each component's sign (largest coefficient positive) so the projection is a pure function of the
    # sample, not of the LAPACK build.
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    return mean, (components * signs[:, None]).T


def _kmeans(
    points: NDArray[np.float64], init: int | NDArray[np.float64], seed: int, n_init: int = 1
) -> KMeans:
    """k-means with ``init`` k-means++ clusters (best of ``n_init``), or Lloyd from the centres ``init``."""
    if isinstance(init, int):
        return KMeans(init, n_init=n_init, random_state=seed).fit(points)
    return KMeans(len(init), init=init, n_init=1, random_state=seed).fit(points)


def _bic(points: NDArray[np.float64], labels: NDArray[np.int64], centers: NDArray[np.float64]) -> float:
    """BIC of a k-means partition as identical spherical Gaussians (X-means, Pelleg & Moore 2000)."""
    n, dim = points.shape
    k = len(centers)
    sse = float(((points - centers[labels]) ** 2).sum())
    sizes = np.bincount(labels, minlength=k)
    sizes = sizes[sizes > 0]
    variance = max(sse / (dim * max(n - k, 1)), 1e-300)
    log_likelihood = (
        float((sizes * np.log(sizes / n)).sum())
        - n * dim / 2 * np.log(2 * np.pi * variance)
        - dim * (n - k) / 2
    )
    parameters = (k - 1) + dim * k + 1
    return float(log_likelihood - parameters / 2 * np.log(n))


def estimate_k(
    points: NDArray[np.float64], k_range: tuple[int, int], seed: int, pca_dim: int = 32
) -> tuple[int, dict[int, float]]:
    """Pick K by the BIC of k-means partitions grown by splitting (see ``docs/clustering.md``).

    The points are projected on their ``pca_dim`` leading principal components (a Gaussian likelihood in
    hundreds of dimensions of a few thousand points rewards splitting noise). The partition for K+1 splits
    the cluster of largest squared error of the partition for K in two and runs Lloyd's algorithm from
    there, so a merged pair of blobs, however small, is what gets split next; every K in the range is scored
    and the highest BIC wins. The silhouette sweep it replaces picked 10-11 of 12 uneven blobs and 2 of
    2x3 nested ones.

    Arguments:
        points: vectors to cluster (the fit's sample in its distance space).
        k_range: inclusive bounds of the candidate K values.
        seed: seed of the k-means runs.
        pca_dim: dimensions the criterion is computed in.

    Returns:
        The best K and the BIC of every candidate.

    Raises:
        ValueError: fewer points than the smallest candidate K + 1.
    """
    low, high = k_range
    high = min(high, len(points) - 1, MAX_K)
    if high < max(low, 2):
        raise ValueError(f"cannot estimate K from {len(points)} vectors in range {k_range}")
    low = max(low, 2)
    mean, projection = _fit_projection(points, min(pca_dim, points.shape[1], len(points) - 1))
    projected = _project(points, mean, projection)
    fitted = _kmeans(projected, low, seed, n_init=10)
    centers, labels = fitted.cluster_centers_, fitted.labels_
    criterion = {low: _bic(projected, labels, centers)}
    for k in track(range(low + 1, high + 1), "K by BIC", "K"):
        errors = np.bincount(
            labels, weights=((projected - centers[labels]) ** 2).sum(axis=1), minlength=k - 1
        )
        worst = int(errors.argmax())
        members = projected[labels == worst]
        if len(members) < 2:
            break
        halves = _kmeans(members, 2, seed, n_init=3).cluster_centers_
        fitted = _kmeans(projected, np.concatenate([np.delete(centers, worst, axis=0), halves]), seed)
        centers, labels = fitted.cluster_centers_, fitted.labels_
        criterion[k] = _bic(projected, labels, centers)
    best = max(criterion, key=lambda key: (criterion[key], -key))
    return best, criterion


def _lloyd_pass(
    blocks: Iterable[FeatureBlock], model: ClusterModel, batch_size: int, progress: Progress
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """One assignment pass: per-centre sums (exact for float16 input) and counts."""
    sums = np.zeros((model.k, model.feature_dim))
    counts = np.zeros(model.k, dtype=np.int64)
    for block in blocks:
        for start in range(0, len(block.vectors), batch_size):
            vectors = np.asarray(
                _normalize(block.vectors[start : start + batch_size], model.normalize), np.float64
            )
            labels, _ = nearest(_project(vectors, model.mean, model.projection), model._projected_centers)
            # A one-hot product sums each centre's vectors; every partial sum of float16 values is exact in
            # float64, so the totals do not depend on the order of the blocks.
            one_hot = np.zeros((len(vectors), model.k))
            one_hot[np.arange(len(vectors)), labels] = 1.0
            sums += one_hot.T @ vectors
            counts += np.bincount(labels, minlength=model.k)
            progress.update(len(vectors))
    return sums, counts


def fit_kmeans(source: BlockSource, config: ClusterConfig) -> ClusterModel:
    """Fit k-means on a stream of feature blocks (see the module docstring for the algorithm).

    Arguments:
        source: called once per pass; yields the gated feature blocks (``iter_feature_blocks`` bound to
            the shards, or ``blocks_from_arrays``).
        config: the fit settings.

    Returns:
        The fitted model with its card.

    Raises:
        ValueError: there are fewer feature vectors than clusters.
    """
    sample, total = keyed_sample(source(), config.init_sample, config.seed, config.normalize)
    if total == 0:
        raise ValueError(
            "no feature vector passed the area gate: label more images or raise the area threshold"
        )
    log.info("k-means sample: %d of %d vectors (%d-d)", len(sample), total, sample.shape[1])
    # Beyond ANCHORS vectors, the first ANCHORS of the sample (a seeded uniform draw) summarise it for Ward.
    anchors = sample[:ANCHORS] if len(sample) > ANCHORS else None
    sample = canonical_order(sample)
    mean, projection = _fit_projection(sample, config.pca_dim)
    projected = _project(sample, mean, projection)
    criterion: dict[int, float] = {}
    k = config.k
    if k is None:
        k, criterion = estimate_k(projected, config.k_range, config.seed)
        log.info("K = %d by BIC over %d..%d", k, *config.k_range)
    if total < k or len(sample) < k:
        raise ValueError(
            f"only {total} feature vectors passed the area gate, fewer than k={k}: label more images, "
            "lower k, or raise the area threshold"
        )
    if anchors is not None:
        anchors = _project(anchors, mean, projection)
    projected_centers = lloyd(projected, ward_centers(projected, k, anchors))
    # Back to the PFL space: the sample mean of each centre's members (a centroid in the projected space is
    # the projection of its members' mean).
    labels = nearest(projected, projected_centers)[0]
    centers = np.stack(
        [sample[labels == c].mean(axis=0) if (labels == c).any() else sample[c] for c in range(k)]
    )
    model = ClusterModel(centers.astype(np.float32), config.normalize, mean, projection)
    desc = f"Lloyd passes over all vectors (K={k}, {config.epochs} pass(es))"
    with Progress(config.epochs * total, desc, "vector") as progress:
        for _ in range(config.epochs):
            sums, counts = _lloyd_pass(source(), model, config.batch_size, progress)
            filled = counts > 0
            # A centre that lost all its vectors stays where it is.
            centers[filled] = sums[filled] / counts[filled, None]
            model = ClusterModel(centers.astype(np.float32), config.normalize, mean, projection)
    model.card = {
        "k": int(k),
        "k_estimated": config.k is None,
        "k_criterion": {str(key): value for key, value in criterion.items()},
        "vectors_per_epoch": int(total),
        "feature_dim": int(sample.shape[1]),
        "init_sample": len(sample),
        "sample_inertia": float(nearest(projected, model._projected_centers)[1].sum()),
        "config": {**asdict(config), "k_range": list(config.k_range)},
        "format": MODEL_FORMAT,
        "alps_version": __version__,
    }
    return model


def blocks_from_arrays(
    arrays: Sequence[NDArray[np.floating]], image_ids: Sequence[str] | None = None
) -> BlockSource:
    """A ``BlockSource`` over in-memory arrays, one per image (ids ``"0"``, ``"1"``, ... unless given)."""
    names = [str(i) for i in range(len(arrays))] if image_ids is None else list(image_ids)

    def source() -> Iterator[FeatureBlock]:
        for name, block in zip(names, arrays, strict=True):
            block = np.asarray(block)
            yield FeatureBlock(block, np.full(len(block), name), np.arange(len(block), dtype=np.int64))

    return source
