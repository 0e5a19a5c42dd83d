"""The painting step of ``alps label``: every tile painted, one label per scene mosaicked, its previews.

A tile is painted by the rules of ``alps.paint`` (255 = no kept mask, larger masks first); the scene's tiles
are mosaicked by ``alps.geo.writer.SceneWriter``. The overlay drawing (the colour map over the image, with a
legend) is passed in by the caller (``alps.pipeline`` passes ``alps.figures.overlay_with_legend``), so that
``alps.geo`` does not depend on the figures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from alps.geo.scene import Scene
from alps.geo.writer import SceneWriter, label_suffix
from alps.io.images import write_png
from alps.io.paths import confined, safe_name
from alps.masks.base import MaskSet
from alps.paint import CLUSTER_LABELER, UNLABELED, colorize, paint_binary, paint_labels

Overlay = Callable[[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.int64], int], NDArray[np.uint8]]
"""``(image, label, pixel counts per label value, k) -> RGB``: a label drawn over its image."""


def paint_scenes(
    scenes: Sequence[Scene],
    mask_sets: Sequence[MaskSet],
    cluster_ids: Mapping[str, NDArray[np.integer]],
    out_dir: str | os.PathLike[str],
    *,
    k: int,
    bands: Sequence[int] | None = None,
    binary_dir: str | os.PathLike[str] | None = None,
    overlay: Overlay | None = None,
) -> dict[str, Any]:
    """Paint every tile and mosaic one label per scene; write previews (and overlays).

    Writes ``labels/<id>.tif|png`` (and ``binary/<id>.tif|png``), ``vis/<id>.png`` (the colour map, full
    size up to ``PREVIEW_SIDE``) and, with ``overlay``, ``vis/<id>.overlay.png`` (what ``overlay`` draws of
    the colour map and the image, e.g. with a legend of cluster colours and pixel shares).

    Returns:
        The statistics of ``alps.paint.paint_mask_sets`` (over scene pixels, each counted once), plus
        ``inputs`` (what each scene was) and ``label_files``.
    """
    out = Path(out_dir)
    by_id = {m.image_id: m for m in mask_sets}
    histogram = np.zeros(k, dtype=np.int64)
    covered = total = 0
    files = []
    for scene in scenes:
        name = f"{safe_name(scene.image_id, scene.path, 'image id')}{label_suffix(scene)}"
        binary = None if binary_dir is None else confined(binary_dir, name)
        writer = _paint_scene(scene, by_id, cluster_ids, confined(out, "labels", name), binary)
        files.append(writer.path.name)
        label_preview = writer.preview()
        write_png(confined(out, "vis", f"{scene.image_id}.png"), colorize(label_preview))
        if overlay is not None:
            image = scene.preview(bands)
            if image.shape[:2] != label_preview.shape:
                image = np.asarray(Image.fromarray(image).resize(label_preview.shape[::-1]))
            write_png(
                confined(out, "vis", f"{scene.image_id}.overlay.png"),
                overlay(image, label_preview, writer.counts, k),
            )
        counts = writer.counts
        histogram += counts[:k]
        covered += int(counts.sum() - counts[UNLABELED])
        total += int(counts.sum())
    return {
        "images": len(scenes),
        "k": k,
        "class_pixels": histogram.tolist(),
        "coverage": covered / total if total else 0.0,
        "labeler": CLUSTER_LABELER,
        "inputs": [scene.describe() for scene in scenes],
        "label_files": files,
    }


def _paint_scene(
    scene: Scene,
    mask_sets: Mapping[str, MaskSet],
    cluster_ids: Mapping[str, NDArray[np.integer]],
    path: Path,
    binary_path: Path | None,
) -> SceneWriter:
    """Paint one scene's tiles into its label (and binary variant); returns the closed label's writer.

    After an error neither file is left behind.
    """
    writer = SceneWriter(scene, path)
    binary = None if binary_path is None else SceneWriter(scene, binary_path, nodata=None)
    try:
        for window in scene.windows:
            tile_id = scene.tile_id(window)
            mask_set = mask_sets[tile_id]
            ids = np.asarray(cluster_ids[tile_id])
            writer.put(window, paint_labels(mask_set, ids))
            if binary is not None:
                binary.put(window, paint_binary(mask_set, ids >= 0))
    except BaseException as exc:
        writer.close(exc)
        if binary is not None:
            binary.close(exc)
        raise
    writer.close()
    if binary is not None:
        binary.close()
    return writer
