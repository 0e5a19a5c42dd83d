"""Online k-means over feature shards: the mask-class association of ALPS.

The paper clusters the pseudo feature labels (PFLs) of hundreds of thousands of images with online k-means,
because the whole feature set does not fit in memory. ``fit_kmeans`` streams feature batches from shards
(seeded order, gate applied) into scikit-learn's ``MiniBatchKMeans.partial_fit``; memory is bounded by one
shard, one batch and the initialisation sample, never by the dataset.

Initialisation: ``partial_fit`` alone seeds its centres with k-means++ on the first batch only, which makes
the result hostage to whichever shard comes first. We first draw a seeded reservoir sample over all
shards (``init_sample`` vectors), run full k-means (``n_init`` restarts) on it, and start the online pass
from those centres. The same sample serves the optional estimation of K.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import silhouette_score

from alps import __version__
from alps.io.atomic import atomic_output, atomic_write_text

BatchSource = Callable[[int], Iterator[NDArray[np.float32]]]
"""Called with an epoch number, yields float32 (b, D) feature batches in a seeded order."""

MAX_K = 255  # label PNGs are uint8 and 255 means "not covered"


@dataclass(frozen=True)
class ClusterConfig:
    """Settings of the online k-means fit.

    Attributes:
        k: number of clusters (pseudo-classes); ``None`` estimates it from the data (``estimate_k``).
        batch_size: vectors per ``partial_fit`` call.
        epochs: passes over all shards.
        seed: seeds the reservoir sample, the k-means++ initialisation and the batch order.
        init_sample: size of the reservoir sample used to initialise (and to estimate K).
        n_init: k-means restarts on the initialisation sample.
        normalize: ``"none"`` clusters raw PFLs (the paper); ``"l2"`` clusters unit vectors (cosine).
        k_range: candidate K values (inclusive bounds) when ``k`` is ``None``.
    """

    k: int | None = 16
    batch_size: int = 4096
    epochs: int = 1
    seed: int = 0
    init_sample: int = 20000
    n_init: int = 10
    normalize: str = "none"
    k_range: tuple[int, int] = (2, 32)

    def __post_init__(self) -> None:
        if self.k is not None and not 2 <= self.k <= MAX_K:
            raise ValueError(f"k must be between 2 and {MAX_K} (255 marks unlabeled pixels), got {self.k}")
        if self.batch_size < 1 or self.epochs < 1 or self.init_sample < 2 or self.n_init < 1:
            raise ValueError("batch_size, epochs, n_init must be >= 1 and init_sample >= 2")
        if self.normalize not in ("none", "l2"):
            raise ValueError(f"normalize must be 'none' or 'l2', got {self.normalize!r}")


@dataclass
class ClusterModel:
    """A fitted k-means model with the metadata that produced it.

    Attributes:
        kmeans: the fitted ``MiniBatchKMeans``.
        config: the ``ClusterConfig`` used.
        card: training facts (vectors seen, feature dim, K, whether K was estimated, inertia, versions).
    """

    kmeans: MiniBatchKMeans
    config: ClusterConfig
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of clusters."""
        return int(self.kmeans.n_clusters)

    def predict(self, vectors: NDArray[np.floating]) -> NDArray[np.int64]:
        """Cluster id (0..K-1) of every row of ``vectors``."""
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.int64)
        prepared = _prepare(np.asarray(vectors, dtype=np.float32), self.config.normalize)
        return self.kmeans.predict(prepared).astype(np.int64)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model (joblib) and its card (``<path>.card.json``) atomically."""
        with atomic_output(path) as tmp:
            joblib.dump({"kmeans": self.kmeans, "config": asdict(self.config), "card": self.card}, tmp)
        atomic_write_text(f"{path}.card.json", json.dumps(self.card, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClusterModel:
        """Read a model written by ``save``."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"cluster model {path} does not exist; run `alps cluster` first")
        payload = joblib.load(path)
        config = payload["config"]
        config["k_range"] = tuple(config["k_range"])
        return cls(payload["kmeans"], ClusterConfig(**config), payload["card"])


def _prepare(vectors: NDArray[np.float32], normalize: str) -> NDArray[np.float32]:
    if normalize == "l2":
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
    return vectors


def reservoir_sample(
    batches: Iterable[NDArray[np.float32]], size: int, rng: np.random.Generator
) -> tuple[NDArray[np.float32], int]:
    """Uniform sample of ``size`` rows from a stream (Algorithm R, vectorised per batch).

    Returns:
        The sample (fewer rows if the stream is shorter) and the number of rows seen.
    """
    sample: NDArray[np.float32] | None = None
    seen = 0
    for batch in batches:
        if sample is None:
            sample = np.empty((size, batch.shape[1]), dtype=np.float32)
        take = min(max(size - seen, 0), len(batch))
        sample[seen : seen + take] = batch[:take]
        rest = batch[take:]
        if len(rest):
            # Row j of the stream (0-based) replaces a random slot with probability size / (j + 1).
            positions = seen + take + np.arange(len(rest))
            slots = rng.integers(0, positions + 1)
            hits = slots < size
            for row, slot in zip(rest[hits], slots[hits], strict=True):
                sample[slot] = row
        seen += len(batch)
    if sample is None:
        return np.zeros((0, 0), dtype=np.float32), 0
    return sample[: min(seen, size)], seen


def rebatch(
    batches: Iterable[NDArray[np.float32]], batch_size: int, minimum: int
) -> Iterator[NDArray[np.float32]]:
    """Regroup a stream of batches of any size into batches of exactly ``batch_size`` rows.

    The remainder at the end of the stream is yielded too, merged into the last full batch when it is
    shorter than ``minimum`` (``MiniBatchKMeans.partial_fit`` refuses batches with fewer rows than K).
    """
    pending: list[NDArray[np.float32]] = []
    pending_rows = 0
    held: NDArray[np.float32] | None = None
    for batch in batches:
        pending.append(batch)
        pending_rows += len(batch)
        while pending_rows >= batch_size:
            merged = np.concatenate(pending)
            if held is not None:
                yield held
            held, rest = merged[:batch_size], merged[batch_size:]
            pending, pending_rows = [rest], len(rest)
    rest = np.concatenate(pending) if pending_rows else None
    if rest is not None and len(rest) < minimum and held is not None:
        held, rest = np.concatenate([held, rest]), None
    if held is not None:
        yield held
    if rest is not None:
        yield rest


def estimate_k(
    sample: NDArray[np.float32], k_range: tuple[int, int], seed: int, n_init: int = 3
) -> tuple[int, dict[int, float]]:
    """Pick K by the silhouette score of k-means on a sample (a model-selection sweep).

    DeepDPM, the paper's suggestion, needs a GPU training loop; the silhouette sweep is the standard
    cheap alternative and runs on the bounded sample, so its cost does not grow with the dataset.

    Arguments:
        sample: vectors to cluster (already normalised as the fit will be).
        k_range: inclusive bounds of the candidate K values.
        seed: k-means and silhouette sub-sampling seed.
        n_init: k-means restarts per candidate.

    Returns:
        The best K and the silhouette score of every candidate.
    """
    low, high = k_range
    high = min(high, len(sample) - 1, MAX_K)
    if high < max(low, 2):
        raise ValueError(f"cannot estimate K from {len(sample)} vectors in range {k_range}")
    scores: dict[int, float] = {}
    for k in range(max(low, 2), high + 1):
        labels = KMeans(k, n_init=n_init, random_state=seed).fit_predict(sample)
        scores[k] = float(
            silhouette_score(sample, labels, sample_size=min(len(sample), 5000), random_state=seed)
        )
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, scores


def fit_kmeans(batch_source: BatchSource, config: ClusterConfig) -> ClusterModel:
    """Fit online k-means on a stream of feature batches.

    Arguments:
        batch_source: called with the epoch number; yields the gated float32 feature batches in a seeded
            order (``alps.features.shards.iter_feature_batches`` bound to a list of shards).
        config: the fit settings.

    Returns:
        The fitted model with its card.

    Raises:
        ValueError: there are fewer feature vectors than clusters.
    """
    rng = np.random.default_rng(config.seed)
    sample, total = reservoir_sample(
        (_prepare(b, config.normalize) for b in batch_source(0)), config.init_sample, rng
    )
    k_scores: dict[int, float] = {}
    k = config.k
    if k is None:
        k, k_scores = estimate_k(sample, config.k_range, config.seed, config.n_init)
    if total < k:
        raise ValueError(
            f"only {total} feature vectors passed the area gate, fewer than k={k}: label more images, "
            "lower k, or raise the area threshold"
        )
    init = KMeans(k, n_init=config.n_init, random_state=config.seed).fit(sample).cluster_centers_
    kmeans = MiniBatchKMeans(
        n_clusters=k,
        init=init.astype(np.float32),
        n_init=1,
        batch_size=config.batch_size,
        random_state=config.seed,
        # Random reassignment of "small" centres suits a bad first-batch init on an i.i.d. stream. Ours
        # starts from a global sample, and shards are not i.i.d. (one scene, one region): a centre whose
        # blob is absent from the first shards would be thrown away.
        reassignment_ratio=0.0,
    )
    for epoch in range(config.epochs):
        for batch in rebatch(batch_source(epoch), max(config.batch_size, k), minimum=k):
            kmeans.partial_fit(_prepare(batch, config.normalize))
    card = {
        "k": int(k),
        "k_estimated": config.k is None,
        "k_scores": {str(key): value for key, value in k_scores.items()},
        "vectors_per_epoch": int(total),
        "feature_dim": int(sample.shape[1]),
        "init_sample": len(sample),
        "sample_inertia": float(-kmeans.score(sample)),
        "config": asdict(config),
        "alps_version": __version__,
    }
    return ClusterModel(kmeans, config, card)


def batches_from_arrays(arrays: Sequence[NDArray[np.floating]], batch_size: int, seed: int) -> BatchSource:
    """A ``BatchSource`` over in-memory arrays (one per image or shard), for ``alps label`` and tests."""

    def source(epoch: int) -> Iterator[NDArray[np.float32]]:
        rng = np.random.default_rng([seed, epoch])
        for index in rng.permutation(len(arrays)):
            block = np.asarray(arrays[index], dtype=np.float32)
            block = block[rng.permutation(len(block))]
            for start in range(0, len(block), batch_size):
                yield block[start : start + batch_size]

    return source
