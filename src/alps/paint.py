"""Painting pseudo-labels: one uint8 PNG per image, pixel = cluster id, 255 = not covered by any kept mask.

Rules (pinned by tests):
- the label has the image's original size; pixels no kept mask covers are 255 (the paper's rule; the
  official script paints 0 there and so merges "unlabeled" into cluster 0);
- masks are painted from the largest to the smallest (ties: mask order), so small objects lying on
  larger segments stay visible;
- masks dropped by the gate (cluster id < 0) are not painted;
- the binary variant paints every kept mask as 1 and everything else as 0 (the paper's Table 3b ablation).
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pycocotools import mask as mask_utils

from alps.io.images import write_png
from alps.io.paths import confined, safe_name
from alps.masks.base import MaskSet
from alps.progress import track

UNLABELED = 255
UNLABELED_COLOUR = (0, 0, 0)
"""The colour of unlabeled pixels in colour maps, overlays (blended like a cluster colour) and legends."""


def _paint(mask_set: MaskSet, values: NDArray[np.integer], background: int) -> NDArray[np.uint8]:
    label = np.full((mask_set.height, mask_set.width), background, dtype=np.uint8)
    values = np.asarray(values)
    if len(values) != len(mask_set):
        raise ValueError(f"image {mask_set.image_id}: {len(values)} cluster ids for {len(mask_set)} masks")
    if len(mask_set) == 0:
        return label
    if values.max(initial=-1) >= UNLABELED:
        raise ValueError(f"image {mask_set.image_id}: cluster ids must be < {UNLABELED}")
    # Stable sort on negative area: largest first, equal areas in mask order.
    order = np.argsort(-mask_set.area, kind="stable")
    for index in order:
        if values[index] < 0:
            continue
        # Decode one mask at a time: memory stays at one H x W plane whatever the mask count.
        mask = mask_utils.decode(mask_set.rles[index]).astype(bool)
        label[mask] = values[index]
    return label


def paint_labels(mask_set: MaskSet, cluster_ids: NDArray[np.integer]) -> NDArray[np.uint8]:
    """Paint the pseudo-label of one image.

    Arguments:
        mask_set: the image's masks.
        cluster_ids: one id per mask, 0..254; a negative id marks a mask the gate dropped.

    Returns:
        An ``(H, W)`` uint8 label, 255 where no kept mask lies.
    """
    return _paint(mask_set, cluster_ids, UNLABELED)


def paint_binary(mask_set: MaskSet, keep: NDArray[np.bool_]) -> NDArray[np.uint8]:
    """Paint the binary-mask variant: 1 under every kept mask, 0 elsewhere."""
    keep = np.asarray(keep, dtype=bool)
    return _paint(mask_set, np.where(keep, 1, -1), 0)


def make_palette(n: int = 256) -> NDArray[np.uint8]:
    """A fixed ``(n, 3)`` palette: well-separated hues for cluster ids, black for 255 (unlabeled).

    Hues step by the golden ratio so that any prefix of the palette is spread over the colour wheel; the
    palette depends on nothing but ``n``, so the same cluster id has the same colour in every run.
    """
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        hue = (i * 0.618033988749895) % 1.0
        saturation = 0.65 + 0.35 * ((i // 7) % 2)
        value = 0.95 - 0.25 * ((i // 14) % 2)
        palette[i] = np.round(np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255)
    if n > UNLABELED:
        palette[UNLABELED] = UNLABELED_COLOUR
    return palette


def palette_array(colours: Sequence[Sequence[int]] | None = None) -> NDArray[np.uint8]:
    """A 256-entry palette: ``colours`` for label ids 0.. (a class palette), the fixed palette after them,
    ``UNLABELED_COLOUR`` for 255."""
    palette = make_palette()
    for i, colour in enumerate((colours or [])[:UNLABELED]):
        palette[i] = [int(c) for c in colour[:3]]
    return palette


def colorize(label: NDArray[np.uint8], palette: NDArray[np.uint8] | None = None) -> NDArray[np.uint8]:
    """Map an ``(H, W)`` uint8 label to an ``(H, W, 3)`` colour image with ``palette``."""
    palette = make_palette() if palette is None else palette
    return palette[label]


def overlay(
    image: NDArray[np.uint8],
    label: NDArray[np.uint8],
    alpha: float = 0.5,
    palette: NDArray[np.uint8] | None = None,
) -> NDArray[np.uint8]:
    """Blend the colourised label over the image.

    Unlabeled pixels are blended with ``UNLABELED_COLOUR`` like any cluster (they show darkened), so an
    overlay tells "no label" apart from a cluster whose colour resembles the image.
    """
    if image.shape[:2] != label.shape:
        raise ValueError(f"image {image.shape[:2]} and label {label.shape} differ in size")
    colours = colorize(label, palette).astype(np.float32)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
    return np.round(blended).astype(np.uint8)


def legend_entries(
    counts: NDArray[np.integer],
    k: int,
    names: Sequence[str] | None = None,
    palette: NDArray[np.uint8] | None = None,
) -> list[tuple[str, tuple[int, int, int], float]]:
    """``(name, colour, pixel share)`` of every painted label id (id order), then of ``unlabeled``.

    Arguments:
        counts: pixels per label value (length 256, as ``np.bincount(label, minlength=256)``).
        k: the number of label ids (clusters, or named classes).
        names: the names of ids 0..k-1 (a class map's or a model's); default ``cluster <id>``.
        palette: their colours (``palette_array``); default the cluster palette.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum()) or 1
    palette = make_palette() if palette is None else palette
    entries = [
        (
            names[i] if names is not None and i < len(names) else f"cluster {i}",
            tuple(int(c) for c in palette[i]),
            int(counts[i]) / total,
        )
        for i in range(min(k, UNLABELED))
        if counts[i] > 0
    ]
    entries.append(("unlabeled", UNLABELED_COLOUR, int(counts[UNLABELED]) / total))
    return entries  # type: ignore[return-value]


CLUSTER_LABELER = "alps"
"""``labeler`` of shards painted with k-means cluster ids (also assumed for shards that do not say)."""


def paint_mask_sets(
    mask_sets: Sequence[MaskSet],
    cluster_ids: dict[str, np.ndarray],
    out_dir: str | os.PathLike[str],
    *,
    k: int,
    binary_dir: str | os.PathLike[str] | None = None,
    labeler: str = CLUSTER_LABELER,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write ``labels/<id>.png``, ``vis/<id>.png`` (and the binary variant) for each image.

    Arguments:
        mask_sets: the images' masks.
        cluster_ids: per image id, one label id per mask (0..k-1; negative: not painted).
        out_dir: the painted shard folder.
        k: the number of label ids (clusters, or classes of a vocabulary).
        binary_dir: where to write the binary variant, if wanted.
        labeler: what made the label ids: ``"alps"`` (k-means clusters) or ``"samrs-star"`` (detector
            classes); ``assemble_pl_dataset`` copies it into the dataset card.
        classes: the names of label ids 0..k-1, where they have names (a detector's vocabulary).

    Returns:
        Statistics: images, per-cluster pixel histogram, coverage, labeler (and classes).
    """
    if classes is not None and len(classes) != k:
        raise ValueError(f"{len(classes)} class names for k={k} label ids")
    out = Path(out_dir)
    histogram = np.zeros(k, dtype=np.int64)
    covered = total = 0
    for mask_set in track(mask_sets, "painting", "img"):
        ids = cluster_ids[mask_set.image_id]
        label = paint_labels(mask_set, ids)
        name = f"{safe_name(mask_set.image_id, 'mask shard', 'image id')}.png"
        write_png(confined(out, "labels", name), label)
        write_png(confined(out, "vis", name), colorize(label))
        if binary_dir is not None:
            binary = paint_binary(mask_set, ids >= 0)
            write_png(confined(binary_dir, name), binary)
        counts = np.bincount(label.ravel(), minlength=256)
        histogram += counts[:k]
        covered += int(label.size - counts[UNLABELED])
        total += int(label.size)
    stats: dict[str, Any] = {
        "images": len(mask_sets),
        "k": k,
        "class_pixels": histogram.tolist(),
        "coverage": covered / total if total else 0.0,
        "labeler": labeler,
    }
    if classes is not None:
        stats["classes"] = list(classes)
    return stats
