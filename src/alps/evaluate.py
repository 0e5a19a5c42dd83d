"""Label quality: how well do the pseudo-classes (clusters) match the real classes, where ground truth exists.

Clusters carry no names, so they are first mapped to ground-truth classes from the confusion matrix of all
evaluated pixels, in two ways:
- ``hungarian``: a one-to-one assignment maximising the matched pixels (scipy's ``linear_sum_assignment``);
  with K > C some clusters stay unmatched and their pixels count as wrong;
- ``majority``: every cluster takes the class it overlaps most (many-to-one; an upper bound for K > C).
Then per-class IoU over the evaluated pixels: unlabeled predictions (255) count as misses of their true
class, so coverage matters as much as purity. Ground-truth values in ``ignore_values`` are not evaluated.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from alps.io.images import list_images, open_image, read_raster
from alps.limits import MAX_CLASSES
from alps.paint import UNLABELED


def accumulate_confusion(
    pred: NDArray[np.integer],
    gt: NDArray[np.integer],
    num_clusters: int,
    num_classes: int,
    ignore_values: Sequence[int] = (255,),
) -> NDArray[np.int64]:
    """Confusion counts of one image: rows = clusters 0..K-1 plus a last row for unlabeled; cols = classes.

    Raises:
        ValueError: sizes differ, or a value lies outside 0..K-1 / 0..C-1 (after ignoring).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    valid = ~np.isin(gt, list(ignore_values))
    p = pred[valid].astype(np.int64)
    g = gt[valid].astype(np.int64)
    p = np.where(p == UNLABELED, num_clusters, p)
    if p.size and (p.min() < 0 or p.max() > num_clusters):
        raise ValueError(f"prediction holds cluster ids outside 0..{num_clusters - 1} (and 255)")
    if g.size and (g.min() < 0 or g.max() >= num_classes):
        raise ValueError(f"ground truth holds class ids outside 0..{num_classes - 1}: {np.unique(g)}")
    counts = np.bincount(p * num_classes + g, minlength=(num_clusters + 1) * num_classes)
    return counts.reshape(num_clusters + 1, num_classes)


def map_clusters(confusion: NDArray[np.int64], method: str) -> NDArray[np.int64]:
    """Map each cluster to a class (-1 = unmatched) from the confusion of clusters (without the last row).

    Arguments:
        confusion: ``(K, C)`` pixel counts of labeled predictions.
        method: ``"hungarian"`` (one-to-one) or ``"majority"`` (many-to-one).
    """
    k = confusion.shape[0]
    mapping = np.full(k, -1, dtype=np.int64)
    if method == "hungarian":
        rows, cols = linear_sum_assignment(confusion, maximize=True)
        mapping[rows] = cols
    elif method == "majority":
        has_pixels = confusion.sum(axis=1) > 0
        mapping[has_pixels] = confusion[has_pixels].argmax(axis=1)
    else:
        raise ValueError(f"unknown mapping method {method!r}; use 'hungarian' or 'majority'")
    return mapping


def scores_from_confusion(
    confusion: NDArray[np.int64], method: str, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Per-class IoU, mIoU, pixel accuracy and coverage after mapping clusters with ``method``.

    Arguments:
        confusion: ``(K + 1, C)`` counts from ``accumulate_confusion`` (last row = unlabeled pixels).
        method: cluster-to-class mapping, ``"hungarian"`` or ``"majority"``.
        class_names: names of the C classes (defaults to their indices).

    Returns:
        A JSON-ready dict with ``mapping``, ``per_class_iou`` (None for classes absent from the ground
        truth), ``miou`` (over the classes present in the ground truth), ``accuracy`` (all evaluated
        pixels), ``accuracy_covered`` and ``coverage``.
    """
    clusters = confusion[:-1]
    c = clusters.shape[1]
    names = [str(i) for i in range(c)] if class_names is None else list(class_names)
    mapping = map_clusters(clusters, method)
    # mapped[j, class] = pixels predicted as class j (after mapping) whose true class is `class`.
    mapped = np.zeros((c, c), dtype=np.int64)
    for cluster, target in enumerate(mapping):
        if target >= 0:
            mapped[target] += clusters[cluster]
    gt_total = confusion.sum(axis=0)
    tp = np.diag(mapped)
    fp = mapped.sum(axis=1) - tp
    fn = gt_total - tp
    union = tp + fp + fn
    # Scored classes are those in the ground truth: with K > C, Hungarian matching sends the spare clusters
    # to absent classes, and their pixels already count as misses of their true classes.
    present = gt_total > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    total = int(confusion.sum())
    covered = int(clusters.sum())
    return {
        "method": method,
        "mapping": {str(i): (names[t] if t >= 0 else None) for i, t in enumerate(mapping)},
        "per_class_iou": {names[i]: (None if np.isnan(iou[i]) else float(iou[i])) for i in range(c)},
        "miou": float(np.nanmean(iou)) if present.any() else float("nan"),
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "accuracy_covered": float(tp.sum() / covered) if covered else float("nan"),
        "coverage": float(covered / total) if total else float("nan"),
        "pixels": total,
    }


LABEL_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff")
"""Label files that are scored: ``alps label`` writes ``<id>.png``, or ``<id>.tif`` (a GeoTIFF in the
source's CRS) for georeferenced inputs; ground truth comes as either (e.g. WHU's 1-bit TIFFs)."""


def _read_index_label(path: Path) -> NDArray[np.integer]:
    """A single-band index label: PNG through PIL (palette PNGs keep their indices), TIFF through the
    project's raster reader (``alps.io.images.read_raster``: GeoTIFF, 1-bit, 16-bit)."""
    if path.suffix.lower() == ".png":
        with open_image(path, "label") as im:
            if im.mode not in ("L", "P", "I;16", "I", "1"):
                raise ValueError(f"{path}: expected a single-channel index label, got mode {im.mode}")
            return np.asarray(im)
    raster = read_raster(path)
    if raster.shape[0] != 1 or not np.issubdtype(raster.dtype, np.integer):
        raise ValueError(
            f"{path}: expected a single-band integer index label, got {raster.shape[0]} band(s) of "
            f"{raster.dtype}"
        )
    return raster[0]


def _label_files(folder: Path) -> list[Path]:
    return [p for p in list_images(folder) if p.suffix.lower() in LABEL_SUFFIXES]


def _ground_truth_of(pred_path: Path, gt_root: Path) -> Path:
    """The ground truth of a pseudo-label: the same file name, else the one label file of the same stem
    (a GeoTIFF pseudo-label ``x.tif`` is scored against ``x.png``)."""
    same_name = gt_root / pred_path.name
    if same_name.is_file():
        return same_name
    candidates = [gt_root / f"{pred_path.stem}{suffix}" for suffix in LABEL_SUFFIXES]
    found = [c for c in candidates if c.is_file()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise FileNotFoundError(
            f"ground truth {same_name} missing for pseudo-label {pred_path} (looked for "
            f"{', '.join(c.name for c in candidates)} in {gt_root})"
        )
    raise ValueError(
        f"ground truth of {pred_path} is ambiguous: {', '.join(str(f) for f in found)}; keep one of them"
    )


def evaluate_label_dirs(
    pred_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    num_classes: int | None = None,
    ignore_values: Sequence[int] = (255,),
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Evaluate every pseudo-label in ``pred_dir`` against the ground truth of the same stem.

    Arguments:
        pred_dir: pseudo-labels (uint8, cluster id, 255 = unlabeled): PNGs or GeoTIFFs (``LABEL_SUFFIXES``),
            as ``alps label`` writes them.
        gt_dir: ground-truth index labels (PNG or TIFF) with the same file names, or the same stems.
        num_classes: number of ground-truth classes (default: the number of ``class_names``, else the
            largest value found + 1).
        ignore_values: ground-truth values to leave out (e.g. 255, or 0 for "background" to score objects).
        class_names: optional names of classes 0, 1, ... for the report.

    Returns:
        ``{"images", "num_clusters", "num_classes", "ignore_values", "hungarian", "majority"}``.

    Raises:
        FileNotFoundError: a prediction has no ground truth, or ``pred_dir`` holds no label file.
        ValueError: the class names do not fit ``num_classes``, or the ground truth holds a larger class.
    """
    if class_names is not None:
        if num_classes is None:
            # The names say how many classes there are; the largest may be absent from these images.
            num_classes = len(class_names)
        elif len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
    # Hidden files are never labels (temporary files of a writer, editor backups); list_images skips them.
    pred_paths = _label_files(Path(pred_dir))
    if not pred_paths:
        raise FileNotFoundError(
            f"no pseudo-label in {pred_dir}: expected label files ending in {', '.join(LABEL_SUFFIXES)}"
        )
    gt_root = Path(gt_dir)
    if not gt_root.is_dir():
        raise FileNotFoundError(f"ground-truth folder {gt_root} does not exist or is not a directory")
    pairs = []
    for pred_path in pred_paths:
        gt_path = _ground_truth_of(pred_path, gt_root)
        pred = _read_index_label(pred_path)
        gt = _read_index_label(gt_path)
        if pred.shape != gt.shape:
            raise ValueError(f"{pred_path} is {pred.shape} but its ground truth {gt_path} is {gt.shape}")
        pairs.append((pred, gt, gt_path))
    labeled = [p[p != UNLABELED] for p, _, _ in pairs]
    num_clusters = int(max((int(x.max()) for x in labeled if x.size), default=0)) + 1
    if num_clusters > UNLABELED:
        raise ValueError(
            f"{pred_dir}: pseudo-labels hold ids up to {num_clusters - 1}; cluster ids are 0..254 "
            "(255 unlabeled)"
        )
    if num_classes is None:
        kept = [g[~np.isin(g, list(ignore_values))] for _, g, _ in pairs]
        num_classes = int(max((int(x.max()) for x in kept if x.size), default=0)) + 1
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(
            f"{gt_dir}: {num_classes} classes (the largest ground-truth value + 1, or --num-classes); at "
            f"most {MAX_CLASSES} are scored: pass --ignore for values that are not classes (e.g. 65535)"
        )
    confusion = np.zeros((num_clusters + 1, num_classes), dtype=np.int64)
    for pred, gt, gt_path in pairs:
        try:
            confusion += accumulate_confusion(pred, gt, num_clusters, num_classes, ignore_values)
        except ValueError as exc:
            raise ValueError(f"{gt_path}: {exc}") from exc
    # Ignored values are not classes: no cluster may be matched to them, no IoU is reported for them.
    scored = [c for c in range(num_classes) if c not in set(ignore_values)]
    names = [str(c) for c in range(num_classes)] if class_names is None else list(class_names)
    confusion = confusion[:, scored]
    class_names = [names[c] for c in scored]
    return {
        "images": len(pairs),
        "num_clusters": num_clusters,
        "num_classes": num_classes,
        "ignore_values": list(ignore_values),
        "hungarian": scores_from_confusion(confusion, "hungarian", class_names),
        "majority": scores_from_confusion(confusion, "majority", class_names),
    }
