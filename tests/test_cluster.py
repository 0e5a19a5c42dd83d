from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from alps import progress as progress_module
from alps.cluster import (
    ClusterConfig,
    ClusterModel,
    FeatureBlock,
    blocks_from_arrays,
    estimate_k,
    fit_kmeans,
    keyed_sample,
    sample_keys,
)


def _blobs(rng, sizes, dim=8, spread=0.05, scale=3.0):
    centres = rng.normal(size=(len(sizes), dim)) * scale
    points = np.concatenate(
        [c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes, strict=True)]
    )
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return points.astype(np.float32), labels


def _same_partition(labels, predicted):
    # A perfect partition up to renaming: every true blob maps to exactly one cluster and back.
    pairs = set(zip(labels.tolist(), predicted.tolist(), strict=True))
    return len(pairs) == len(set(labels.tolist())) == len(set(predicted.tolist()))


def _chunks(points, n=7):
    return np.array_split(points, n)


def test_recovers_separated_blobs(rng):
    points, labels = _blobs(rng, [300] * 4)
    model = fit_kmeans(blocks_from_arrays(_chunks(points)), ClusterConfig(k=4, batch_size=64))
    assert model.k == 4 and _same_partition(labels, model.predict(points))
    assert model.card["vectors_per_epoch"] == len(points)
    assert model.centers.shape == (4, 8) and model.centers.dtype == np.float32


def test_fit_is_deterministic_and_saves_plain_arrays(tmp_path, rng):
    points, _ = _blobs(rng, [300] * 5, spread=1.0)
    config = ClusterConfig(k=5, batch_size=50, epochs=2, seed=3)
    first = fit_kmeans(blocks_from_arrays(_chunks(points)), config)
    second = fit_kmeans(blocks_from_arrays(_chunks(points)), config)
    np.testing.assert_array_equal(first.centers, second.centers)
    first.card["area_threshold"] = 0.3
    first.save(tmp_path / "kmeans.npz")
    loaded = ClusterModel.load(tmp_path / "kmeans.npz")
    np.testing.assert_array_equal(loaded.centers, first.centers)
    np.testing.assert_array_equal(loaded.predict(points), first.predict(points))
    assert loaded.area_threshold == 0.3 and loaded.card["config"]["seed"] == 3
    assert json.loads((tmp_path / "kmeans.npz.card.json").read_text())["k"] == 5
    # Plain arrays only: numpy reads every member without pickle.
    with np.load(tmp_path / "kmeans.npz", allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)
    with pytest.raises(FileNotFoundError, match="run `alps cluster` first"):
        ClusterModel.load(tmp_path / "missing.npz")


def test_fit_does_not_depend_on_sharding_order_or_batch_size(rng):
    # float16 values, as stored in feature shards: the Lloyd sums are exact, so the centres are identical.
    points, _ = _blobs(rng, [200, 150, 90, 40], dim=16, spread=0.8, scale=2.0)
    points = points.astype(np.float16)
    ids = [f"img{i}" for i in range(40)]
    per_image = np.array_split(points, 40)
    config = ClusterConfig(k=4, seed=5, epochs=3, init_sample=300)
    one = fit_kmeans(blocks_from_arrays(per_image, ids), config)

    def regrouped():
        # Other shards, shards in another order, a different block size.
        for start in (30, 0, 17):
            stop = {30: 40, 0: 17, 17: 30}[start]
            block = np.concatenate(per_image[start:stop])
            names = np.concatenate([np.full(len(per_image[i]), ids[i]) for i in range(start, stop)])
            masks = np.concatenate([np.arange(len(per_image[i])) for i in range(start, stop)])
            for cut in range(0, len(block), 23):
                yield FeatureBlock(block[cut : cut + 23], names[cut : cut + 23], masks[cut : cut + 23])

    other = fit_kmeans(regrouped, ClusterConfig(k=4, seed=5, epochs=3, init_sample=300, batch_size=7))
    assert one.centers.tobytes() == other.centers.tobytes()
    assert not np.array_equal(
        one.centers,
        fit_kmeans(regrouped, ClusterConfig(k=4, seed=6, epochs=0, init_sample=300)).centers,
    )


def test_keyed_sample_is_uniform_and_independent_of_blocks():
    stream = [np.arange(i, i + 100, dtype=np.float32)[:, None] for i in range(0, 10000, 100)]
    names = [str(i) for i in range(len(stream))]
    sample, seen = keyed_sample(blocks_from_arrays(stream, names)(), 1000, seed=0)
    assert seen == 10000 and sample.shape == (1000, 1) and len(np.unique(sample)) == 1000
    # Uniform over the stream: the mean is near the stream's mean, not biased to the start.
    assert abs(sample.mean() - 4999.5) < 300
    reversed_sample, _ = keyed_sample(blocks_from_arrays(stream[::-1], names[::-1])(), 1000, seed=0)
    np.testing.assert_array_equal(sample, reversed_sample)
    keys = sample_keys(np.array(["a", "a", "b"]), np.array([0, 1, 0]), seed=1)
    assert keys.dtype == np.uint64 and len(set(keys.tolist())) == 3
    assert not np.array_equal(keys, sample_keys(np.array(["a", "a", "b"]), np.array([0, 1, 0]), seed=2))


def test_every_seed_fits_the_same_centres_when_all_vectors_form_the_sample(rng):
    # The initialisation has no random step: with no more vectors than init_sample the seed only reorders the
    # sample, and the centres agree bit for bit.
    points, _ = _blobs(rng, [120, 90, 60, 30], dim=16, spread=1.5, scale=1.0)
    blocks = blocks_from_arrays(_chunks(points.astype(np.float16)))
    fits = [fit_kmeans(blocks, ClusterConfig(k=4, seed=seed, epochs=1)) for seed in range(4)]
    assert len({fit.centers.tobytes() for fit in fits}) == 1


FIT_SCRIPT = """
import hashlib, sys
import numpy as np
from alps.cluster import ClusterConfig, blocks_from_arrays, fit_kmeans
rng = np.random.default_rng(0)
points = rng.normal(size=(3000, 48)).astype(np.float16) + np.repeat(rng.normal(size=(6, 48)), 500, 0)
model = fit_kmeans(blocks_from_arrays(np.array_split(points, 30)), ClusterConfig(k=6, init_sample=2500))
print(hashlib.sha256(model.centers.tobytes()).hexdigest())
"""


def test_centres_do_not_depend_on_the_thread_count():
    digests = set()
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
        result = subprocess.run(
            [sys.executable, "-c", FIT_SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_the_fit_reports_its_progress_in_the_log(monkeypatch, caplog, rng):
    # A clock that jumps 40 s per reading: every update is due for a log line (not a terminal here).
    now = [0.0]

    def clock():
        now[0] += 40.0
        return now[0]

    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    monkeypatch.setattr(progress_module, "_on_terminal", lambda: False)
    caplog.set_level(logging.INFO, logger="alps.progress")
    points, _ = _blobs(rng, [60, 40, 20])
    fit_kmeans(blocks_from_arrays(_chunks(points)), ClusterConfig(k=3, epochs=2))
    lines = [record.getMessage() for record in caplog.records]
    ward = [line for line in lines if line.startswith("Ward agglomeration of 120 vectors")]
    assert ward and "merge" in ward[0] and "ETA" in ward[0] and "took" in ward[-1]
    assert any(line.startswith("Lloyd iterations on 120 vectors (K=3)") for line in lines)
    passes = [line for line in lines if line.startswith("Lloyd passes over all vectors (K=3, 2 pass(es))")]
    assert passes[-1].startswith("Lloyd passes over all vectors (K=3, 2 pass(es)): 240/240 vector (100%)")


def test_a_feature_vector_that_is_not_finite_is_refused_by_name(rng):
    points, _ = _blobs(rng, [20, 20])
    points[27, 3] = np.nan
    with pytest.raises(ValueError, match="mask 7 of image 1 is not finite"):
        fit_kmeans(blocks_from_arrays([points[:20], points[20:]]), ClusterConfig(k=2))


def test_too_few_vectors_and_bad_config(rng):
    points, _ = _blobs(rng, [2, 2])
    with pytest.raises(ValueError, match="fewer than k=8"):
        fit_kmeans(blocks_from_arrays([points]), ClusterConfig(k=8))
    with pytest.raises(ValueError, match="no feature vector"):
        fit_kmeans(blocks_from_arrays([]), ClusterConfig(k=2))
    with pytest.raises(ValueError, match="k must be between 2 and 255"):
        ClusterConfig(k=1)
    with pytest.raises(ValueError, match="normalize"):
        ClusterConfig(normalize="zscore")
    with pytest.raises(ValueError, match="k_range"):
        ClusterConfig(k_range=(10, 5))


def test_l2_normalisation_clusters_directions(rng):
    directions = np.repeat(np.eye(2, dtype=np.float32), 50, axis=0)
    scaled = directions * rng.uniform(0.1, 10, size=(100, 1)).astype(np.float32)
    model = fit_kmeans(blocks_from_arrays([scaled]), ClusterConfig(k=2, normalize="l2"))
    predicted = model.predict(scaled)
    assert len(set(predicted[:50])) == 1 and len(set(predicted[50:])) == 1 and predicted[0] != predicted[-1]


def test_pca_projection_is_stored_and_used(tmp_path, rng):
    points, labels = _blobs(rng, [100, 80, 60], dim=32, spread=0.1)
    model = fit_kmeans(blocks_from_arrays([points]), ClusterConfig(k=3, pca_dim=4))
    assert model.projection.shape == (32, 4) and _same_partition(labels, model.predict(points))
    model.card["area_threshold"] = 1.0
    model.save(tmp_path / "kmeans.npz")
    np.testing.assert_array_equal(
        ClusterModel.load(tmp_path / "kmeans.npz").predict(points), model.predict(points)
    )
    with pytest.raises(ValueError, match="32-d vectors"):
        model.predict(points[:, :8])


def test_many_tiny_blocks_fewer_than_k_rows_each(rng):
    # One image per block with a handful of masks each, as with oracle masks.
    points, _ = _blobs(rng, [40] * 3)
    tiny = np.array_split(points[rng.permutation(len(points))], 60)
    model = fit_kmeans(blocks_from_arrays(tiny), ClusterConfig(k=10))
    assert model.k == 10 and len(set(model.predict(points))) > 3


# -- K from the data -------------------------------------------------------------------------------------


def test_estimate_k_uneven_blobs_in_256d(rng):
    sizes = np.round(np.geomspace(1000, 20, 12)).astype(int)  # 1000 down to 20
    points, labels = _blobs(rng, sizes, dim=256, spread=0.3, scale=1.0)
    best, criterion = estimate_k(points.astype(np.float64), (2, 64), seed=0)
    assert best == 12 and set(criterion) == set(range(2, 65))
    # Through the fit, with the card reporting the criterion of every K tried.
    model = fit_kmeans(blocks_from_arrays(_chunks(points)), ClusterConfig(k=None, k_range=(2, 20)))
    assert (
        model.k == 12
        and model.card["k_estimated"]
        and set(model.card["k_criterion"]) == {str(k) for k in range(2, 21)}
    )
    assert _same_partition(labels, model.predict(points))


def test_estimate_k_hierarchical_blobs(rng):
    # Two far-apart groups of three sub-blobs each: the sub-blobs are the clusters (silhouette said 2).
    parts = []
    for _ in range(2):
        group = rng.normal(size=256) * 3
        for _ in range(3):
            sub = group + rng.normal(size=256) * 0.7
            parts.append(sub + 0.2 * rng.normal(size=(150, 256)))
    best, _ = estimate_k(np.concatenate(parts), (2, 64), seed=0)
    assert best == 6


def test_estimate_k_46_clusters(rng):
    sizes = rng.integers(20, 150, 46)
    points, _ = _blobs(rng, sizes, dim=256, spread=0.3, scale=1.0)
    best, _ = estimate_k(points.astype(np.float64), (2, 64), seed=0)
    assert best == 46


# -- no pickle ---------------------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_named_like_a_model_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    crafted = tmp_path / "kmeans.npz"
    crafted.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError, match="not an ALPS k-means model"):
        ClusterModel.load(crafted)
    # A pickle hidden inside an .npz member (an object array) is refused too.
    hidden = tmp_path / "hidden.npz"
    with zipfile.ZipFile(hidden, "w") as archive:
        for name in ("format", "centers", "normalize", "mean", "projection", "card"):
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(
                    member, np.array([_Payload(marker)], dtype=object), allow_pickle=True
                )
    with pytest.raises(ValueError, match="not an ALPS k-means model"):
        ClusterModel.load(hidden)
    assert not marker.exists()


def test_a_file_that_is_not_a_model_fails_clearly(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.npz is not an ALPS k-means model"):
        ClusterModel.load(text)
    other = tmp_path / "features.npz"
    np.savez(other, vectors=np.zeros((3, 2), np.float16))
    with pytest.raises(ValueError, match="missing array"):
        ClusterModel.load(other)
    edited = tmp_path / "edited.npz"
    np.savez(
        edited,
        format="alps-kmeans/999",
        centers=np.zeros((2, 2), np.float32),
        normalize="none",
        mean=np.zeros(2),
        projection=np.eye(2),
        card="{}",
    )
    with pytest.raises(ValueError, match="format"):
        ClusterModel.load(edited)
