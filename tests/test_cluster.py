from __future__ import annotations

import numpy as np
import pytest

from alps.cluster import (
    ClusterConfig,
    ClusterModel,
    batches_from_arrays,
    estimate_k,
    fit_kmeans,
    rebatch,
    reservoir_sample,
)


def _blobs(rng, k=4, per=300, dim=8, spread=0.05):
    centres = rng.normal(size=(k, dim)) * 3
    points = np.concatenate([c + spread * rng.normal(size=(per, dim)) for c in centres])
    labels = np.repeat(np.arange(k), per)
    return points.astype(np.float32), labels


def _chunks(points, n=7):
    return np.array_split(points, n)


def test_recovers_separated_blobs(rng):
    points, labels = _blobs(rng)
    model = fit_kmeans(batches_from_arrays(_chunks(points), 64, seed=0), ClusterConfig(k=4, batch_size=64))
    predicted = model.predict(points)
    # A perfect partition up to renaming: every true blob maps to exactly one cluster.
    pairs = set(zip(labels.tolist(), predicted.tolist(), strict=True))
    assert len(pairs) == 4 and model.k == 4
    assert model.card["vectors_per_epoch"] == len(points)


def test_fit_is_deterministic_for_a_seed_and_saves(tmp_path, rng):
    points, _ = _blobs(rng, k=5, spread=1.0)
    config = ClusterConfig(k=5, batch_size=50, epochs=2, seed=3)
    first = fit_kmeans(batches_from_arrays(_chunks(points), 50, seed=3), config)
    second = fit_kmeans(batches_from_arrays(_chunks(points), 50, seed=3), config)
    np.testing.assert_array_equal(first.kmeans.cluster_centers_, second.kmeans.cluster_centers_)
    first.save(tmp_path / "km.joblib")
    loaded = ClusterModel.load(tmp_path / "km.joblib")
    np.testing.assert_array_equal(loaded.predict(points), first.predict(points))
    assert (tmp_path / "km.joblib.card.json").is_file()
    with pytest.raises(FileNotFoundError, match="run `alps cluster` first"):
        ClusterModel.load(tmp_path / "missing.joblib")


def test_estimates_k_when_not_given(rng):
    points, _ = _blobs(rng, k=3, spread=0.1)
    config = ClusterConfig(k=None, k_range=(2, 6), batch_size=100)
    model = fit_kmeans(batches_from_arrays(_chunks(points), 100, seed=0), config)
    assert model.k == 3 and model.card["k_estimated"]
    best, scores = estimate_k(points, (2, 5), seed=0)
    assert best == 3 and set(scores) == {2, 3, 4, 5}


def test_too_few_vectors_and_bad_config(rng):
    points, _ = _blobs(rng, k=2, per=2)
    with pytest.raises(ValueError, match="fewer than k=8"):
        fit_kmeans(batches_from_arrays([points], 10, seed=0), ClusterConfig(k=8))
    with pytest.raises(ValueError, match="k must be between 2 and 255"):
        ClusterConfig(k=1)
    with pytest.raises(ValueError, match="normalize"):
        ClusterConfig(normalize="zscore")


def test_l2_normalisation_clusters_directions(rng):
    directions = np.repeat(np.eye(2, dtype=np.float32), 50, axis=0)
    scaled = directions * rng.uniform(0.1, 10, size=(100, 1)).astype(np.float32)
    model = fit_kmeans(
        batches_from_arrays([scaled], 32, seed=0), ClusterConfig(k=2, batch_size=32, normalize="l2")
    )
    predicted = model.predict(scaled)
    assert len(set(predicted[:50])) == 1 and len(set(predicted[50:])) == 1 and predicted[0] != predicted[-1]


def test_reservoir_sample_is_uniform_enough(rng):
    stream = [np.arange(i, i + 100, dtype=np.float32)[:, None] for i in range(0, 10000, 100)]
    sample, seen = reservoir_sample(stream, 1000, np.random.default_rng(0))
    assert seen == 10000 and sample.shape == (1000, 1)
    assert len(np.unique(sample)) == 1000
    # Uniform over the stream: the mean is near the stream's mean, not biased to the start.
    assert abs(sample.mean() - 4999.5) < 300


def test_rebatch_keeps_every_row_in_order_and_no_batch_below_minimum():
    stream = [np.arange(a, b, dtype=np.float32)[:, None] for a, b in [(0, 3), (3, 3), (3, 20), (20, 23)]]
    batches = list(rebatch(stream, 8, minimum=8))
    assert [len(b) for b in batches] == [8, 15]
    np.testing.assert_array_equal(np.concatenate(batches)[:, 0], np.arange(23))
    assert [len(b) for b in rebatch(stream, 8, minimum=2)] == [8, 8, 7]
    assert [len(b) for b in rebatch([np.zeros((3, 1), np.float32)], 8, minimum=5)] == [3]


def test_many_tiny_batches_fewer_than_k_rows_each(rng):
    # One image per batch with a handful of masks each, as with oracle masks: must not break partial_fit.
    points, _ = _blobs(rng, k=3, per=40)
    tiny = np.array_split(points[rng.permutation(len(points))], 60)
    model = fit_kmeans(batches_from_arrays(tiny, 4096, seed=0), ClusterConfig(k=10, batch_size=16))
    assert model.k == 10 and len(set(model.predict(points))) > 3
