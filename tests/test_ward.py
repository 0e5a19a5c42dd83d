"""alps.ward: Ward's agglomeration (weighted, cut at K) and Lloyd's algorithm, where k-means fits start."""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, ward

from alps.ward import cluster_sums, lloyd, nearest, ward_centers, ward_labels


def _blobs(rng, sizes, dim=16, spread=0.6):
    centres = rng.normal(size=(len(sizes), dim)) * 3
    parts = [c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes, strict=True)]
    points = np.concatenate(parts)
    return points, np.repeat(np.arange(len(sizes)), sizes)


def _same_partition(a, b):
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_unit_weights_give_scipys_ward_tree(rng):
    # Overlapping blobs: the cut depends on every merge, not only on well separated groups.
    points, _ = _blobs(rng, [60, 50, 40, 30, 20], spread=2.0)
    for k in (2, 5, 9):
        ours = ward_labels(points, np.ones(len(points)), k)
        theirs = fcluster(ward(points), k, "maxclust")
        assert len(set(ours.tolist())) == k and _same_partition(ours, theirs)


def test_a_weighted_point_merges_like_its_copies(rng):
    points, _ = _blobs(rng, [15, 12, 9], spread=1.5)
    weights = rng.integers(1, 5, len(points))
    copies = np.repeat(points, weights, axis=0)
    weighted = ward_labels(points, weights.astype(float), 4)
    expanded = ward_labels(copies, np.ones(len(copies)), 4)
    assert _same_partition(np.repeat(weighted, weights), expanded)


def test_clusters_are_numbered_by_their_first_point(rng):
    points, _ = _blobs(rng, [30, 30, 30])
    labels = ward_labels(points[::-1].copy(), np.ones(90), 3)
    _, first = np.unique(labels, return_index=True)
    assert labels[0] == 0 and list(np.argsort(first)) == [0, 1, 2]


def test_lloyd_ends_at_a_fixed_point(rng):
    points, _ = _blobs(rng, [80, 60, 40], spread=2.5)
    centers = lloyd(points, points[:3])
    labels, _ = nearest(points, centers)
    sums, counts = cluster_sums(points, labels, 3)
    np.testing.assert_array_equal(centers, sums / counts[:, None])


def test_a_large_sample_is_summarised_by_anchors(rng):
    points, truth = _blobs(rng, [300, 200, 100, 50])
    centers = ward_centers(points, 4, anchors=points[rng.choice(len(points), 40, replace=False)])
    assert centers.shape == (4, 16) and _same_partition(truth, nearest(points, centers)[0])
    # Without anchors (all points agglomerated) the same blobs come out.
    exact = ward_centers(points, 4)
    assert _same_partition(nearest(points, exact)[0], nearest(points, centers)[0])
