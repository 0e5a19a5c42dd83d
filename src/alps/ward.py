"""How the k-means fit starts: Ward's agglomeration of the sample, then Lloyd's algorithm on it.

``ward_centers`` merges the sample's vectors bottom-up, always the pair whose merge raises the sum of
squared errors least (Ward 1963), until K clusters are left, and returns their means; ``lloyd`` then moves
those centres to a k-means fixed point of the sample. Nothing in it is random: the same vectors in the same
order give the same centres, bit for bit (``alps.cluster`` puts the sample in an order only its values
decide). It replaced the consensus of 800 k-means++ restarts, which cost minutes per fit and still moved
with the seed on data it was not chosen on (``docs/clustering.md``).

A sample of more than ``ANCHORS`` vectors is summarised first: anchors (``alps.cluster`` takes the first
``ANCHORS`` vectors of the seeded sample) each collect the sample vectors nearest to them, and their cells
(means weighted by their sizes) are agglomerated instead. Memory: one ``ANCHORS`` x ``ANCHORS`` matrix of
merge costs (512 MiB) plus blocks of distances.

Every sum runs in a fixed order (BLAS products whose entries are each one dot product, a sparse matrix
product, element-wise numpy), so the centres do not depend on the number of threads.

Why not the libraries (measured): ``scipy.cluster.hierarchy.linkage(..., "ward")`` (which
``sklearn.cluster.AgglomerativeClustering`` calls) gives the same partition as ``ward_labels`` with unit
weights (NWPU, LoveDA, iSAID, synthetic 8,192 x 256), but it takes no weights, which the anchors' cells
need (agglomerating the anchors unweighted moved iSAID's worst seed 0.022 from the mean, weighted cells
0.003-0.013), and is 1.3-2.3x slower at 3,700-8,192 vectors (its ``pdist`` runs on one core). scikit-learn's
``KMeans`` from the same centres gives other bits with 1 and 2 OpenMP threads; ``lloyd`` does not.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from numpy.typing import NDArray
from scipy.cluster.hierarchy import DisjointSet

from alps.progress import Progress

ANCHORS = 8192
"""Vectors agglomerated at most: a larger sample is summarised by this many anchors' cells first (the
matrix of merge costs then takes 512 MiB)."""

MAX_LLOYD_ITERATIONS = 300
"""Lloyd iterations on the sample at most (they stop earlier, as soon as no vector changes cluster)."""

_BLOCK = 1024  # rows of a distance block: 1,024 x 8,192 float64 = 64 MiB


def squared_norms(points: NDArray[np.float64]) -> NDArray[np.float64]:
    """The squared length of every row."""
    return np.einsum("ij,ij->i", points, points)


def nearest(
    points: NDArray[np.float64], centers: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Index of the nearest centre of every row and the squared distance to it (ties: lowest index)."""
    distances = squared_norms(points)[:, None] - 2.0 * points @ centers.T + squared_norms(centers)[None, :]
    index = distances.argmin(axis=1)
    return index.astype(np.int64), np.maximum(distances[np.arange(len(points)), index], 0.0)


def nearest_in_blocks(points: NDArray[np.float64], centers: NDArray[np.float64]) -> NDArray[np.int64]:
    """``nearest`` a block of rows at a time (memory: one block of distances)."""
    return np.concatenate(
        [nearest(points[start : start + _BLOCK], centers)[0] for start in range(0, len(points), _BLOCK)]
    )


def cluster_sums(
    points: NDArray[np.float64], labels: NDArray[np.int64], k: int, weights: NDArray[np.float64] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-cluster sums of the (weighted) rows and the clusters' total weights.

    A sparse product sums every cluster's rows in row order on one thread: the same bits whatever the
    thread count (a dense one-hot product through BLAS might split the sum differently).
    """
    weights = np.ones(len(points)) if weights is None else weights
    member = scipy.sparse.csr_matrix((weights, (labels, np.arange(len(points)))), shape=(k, len(points)))
    return np.asarray(member @ points), np.bincount(labels, weights=weights, minlength=k)


def ward_labels(points: NDArray[np.float64], weights: NDArray[np.float64], k: int) -> NDArray[np.int64]:
    """Ward's agglomeration of weighted points, cut at ``k`` clusters: a cluster id (0..k-1) per point.

    The nearest-neighbour chain algorithm on the matrix of merge costs (the rise of the weighted sum of
    squared errors, ``w_a w_b / (w_a + w_b) |a - b|^2``), updated by the Lance-Williams formula; with unit
    weights it is ``scipy.cluster.hierarchy.ward``'s tree. Clusters are numbered by their first point.

    Raises:
        ValueError: fewer points than ``k``.
    """
    size = len(points)
    if size < k:
        raise ValueError(f"cannot agglomerate {size} points into {k} clusters")
    weights = np.asarray(weights, dtype=np.float64).copy()
    merges = _nn_chain(_merge_costs(points, weights), weights)
    return _cut(merges, size, k)


def _merge_costs(points: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """``w_a w_b / (w_a + w_b) |a - b|^2`` for every pair, exactly symmetric, infinite on the diagonal.

    ``points @ points.T`` is symmetric bit for bit (numpy computes one triangle and mirrors it), and so is
    ``n_a + n_b``; the chain needs that symmetry. Built a block of rows at a time: one matrix in memory.
    """
    cost = points @ points.T
    cost *= -2.0
    norms = squared_norms(points)
    for start in range(0, len(points), _BLOCK):
        rows = slice(start, start + _BLOCK)
        cost[rows] += norms[rows, None] + norms[None, :]
        np.maximum(cost[rows], 0.0, out=cost[rows])
        cost[rows] *= weights[rows, None] * weights[None, :] / (weights[rows, None] + weights[None, :])
    np.fill_diagonal(cost, np.inf)
    return cost


def _nn_chain(cost: NDArray[np.float64], weights: NDArray[np.float64]) -> list[tuple[float, int, int]]:
    """The ``size - 1`` merges ``(cost, a, b)`` of the Ward tree; ``cost`` and ``weights`` are consumed."""
    size = len(cost)
    active = np.ones(size, dtype=bool)
    merges: list[tuple[float, int, int]] = []
    chain: list[int] = []
    with Progress(size - 1, f"Ward agglomeration of {size} vectors", "merge") as progress:
        while len(merges) < size - 1:
            if not chain:
                chain.append(int(np.flatnonzero(active)[0]))
            tip = chain[-1]
            row = cost[tip]
            neighbour = int(row.argmin())
            # On a tie the chain's previous point wins: this is what makes the chain end in a mutual pair.
            if len(chain) > 1 and row[chain[-2]] <= row[neighbour]:
                neighbour = chain[-2]
            if len(chain) < 2 or neighbour != chain[-2]:
                chain.append(neighbour)
                continue
            del chain[-2:]
            a, b = min(tip, neighbour), max(tip, neighbour)
            merged = cost[a, b]
            merges.append((float(merged), a, b))
            wa, wb = weights[a], weights[b]
            # Lance-Williams for Ward: the cost of merging each other cluster with the union of a and b.
            row = (wa + weights) * cost[a] + (wb + weights) * cost[b] - weights * merged
            row /= wa + wb + weights
            row[~active] = np.inf
            row[[a, b]] = np.inf
            cost[a] = row
            cost[:, a] = row
            cost[b] = np.inf
            cost[:, b] = np.inf
            active[b] = False
            weights[a] = wa + wb
            progress.update()
    return merges


def _cut(merges: list[tuple[float, int, int]], size: int, k: int) -> NDArray[np.int64]:
    """Apply the ``size - k`` cheapest merges (children come before parents, also on ties)."""
    clusters = DisjointSet(range(size))
    order = sorted(range(len(merges)), key=lambda index: (merges[index][0], index))
    for index in order[: size - k]:
        clusters.merge(merges[index][1], merges[index][2])
    # Number the clusters by their first point, whichever point the disjoint set keeps as a root.
    _, first, inverse = np.unique(
        [clusters[node] for node in range(size)], return_index=True, return_inverse=True
    )
    return np.argsort(np.argsort(first))[inverse].astype(np.int64)


def ward_centers(
    points: NDArray[np.float64], k: int, anchors: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """K centres of ``points`` by Ward's agglomeration of the points, or of the cells of ``anchors``.

    With ``anchors``, every point joins its nearest anchor and the cells (their means, weighted by their
    sizes) are agglomerated instead of the points.

    Raises:
        ValueError: fewer points (or non-empty cells) than ``k``.
    """
    weights = np.ones(len(points))
    cells = points
    if anchors is not None:
        cell_of = nearest_in_blocks(points, anchors)
        sums, weights = cluster_sums(points, cell_of, len(anchors))
        kept = weights > 0  # an anchor identical to an earlier one gets no point
        cells, weights = sums[kept] / weights[kept, None], weights[kept]
    labels = ward_labels(cells, weights, k)
    sums, totals = cluster_sums(cells, labels, k, weights)
    return sums / totals[:, None]


def lloyd(
    points: NDArray[np.float64], centers: NDArray[np.float64], max_iterations: int = MAX_LLOYD_ITERATIONS
) -> NDArray[np.float64]:
    """Lloyd's algorithm from ``centers`` until no point changes cluster (a centre left empty stays put)."""
    centers = np.array(centers, dtype=np.float64)
    labels = np.full(len(points), -1, dtype=np.int64)
    with Progress(None, f"Lloyd iterations on {len(points)} vectors (K={len(centers)})", "iteration") as bar:
        for _ in range(max_iterations):
            new_labels = nearest_in_blocks(points, centers)
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
            sums, counts = cluster_sums(points, labels, len(centers))
            filled = counts > 0
            centers[filled] = sums[filled] / counts[filled, None]
            bar.update()
    return centers
