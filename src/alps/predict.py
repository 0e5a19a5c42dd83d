"""``alps predict MODEL IMAGES OUT``: a trained model's labels of scenes of any size, as GIS tools read them.

Every image is a scene (``alps.geo.scene``), tiled and mosaicked by the rules of ``alps label``: windows of
``tile_size`` pixels that overlap by ``overlap`` (default: the side the model's test pipeline leaves unscaled,
and a quarter of it up to 128 px), each scene pixel taken from the tile whose centre is nearest, declared
no-data (a GeoTIFF's nodata, mask or alpha; a PNG's alpha) left unlabeled (255). Each tile goes through
``mmseg.apis.inference_model`` (``alps.train.inference.Segmentor``); one batch of tiles of one scene is in
memory at a time, and a georeferenced scene's label is written window by window.

Outputs (published together, ``alps.io.outputs.OutputSet``):

- ``labels/<stem>.tif`` for a georeferenced scene: uint8 class ids, nodata 255, the source's CRS and
  transform, the classes' colours as colour table, and a ``.tif.aux.xml`` naming the classes (GDAL category
  names and attribute table, what QGIS shows); ``labels/<stem>.png`` for other images (with the same
  sidecar, without georeferencing);
- ``vis/<stem>.png`` (colour map) and ``vis/<stem>.overlay.png`` (over the image, with a legend of class
  names and pixel shares), at most 2048 px a side;
- ``classes.json`` (names and palette) and ``predict_card.json`` (model, config, checkpoint and its
  SHA-256, device, tiling, inputs, pixels per class).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alps import __version__
from alps.figures import write_label_views
from alps.geo.scene import OVERLAP, Scene, SceneOptions, SceneWriter, label_suffix, open_scenes
from alps.io.digest import file_sha256
from alps.io.outputs import OutputSet
from alps.io.paths import confined, safe_name
from alps.paint import UNLABELED, palette_array
from alps.progress import Progress
from alps.sharding import ImageItem
from alps.train.inference import Segmentor, load_segmentor

log = logging.getLogger(__name__)

PREDICT_OUTPUT_SET = "alps-predict"
"""Names ``alps predict``'s lock, record and build folder in OUT (``alps.io.outputs``)."""
CARD_FILE = "predict_card.json"
CLASSES_FILE = "classes.json"
BATCH_SIZE = 4
"""Tiles of one scene labeled together."""


def _predict_scene(
    segmentor: Segmentor,
    scene: Scene,
    out: Path,
    bands: Sequence[int] | None,
    batch_size: int,
    progress: Progress,
) -> dict[str, Any]:
    """Label one scene tile by tile into ``out/labels`` and draw it in ``out/vis``; its statistics."""
    name = f"{safe_name(scene.image_id, scene.path, 'image id')}{label_suffix(scene)}"
    writer = SceneWriter(
        scene,
        confined(out, "labels", name),
        names=segmentor.classes,
        palette=segmentor.palette,
    )
    try:
        for start in range(0, len(scene.windows), batch_size):
            windows = scene.windows[start : start + batch_size]
            tiles = [scene.read_tile_with_valid(window, bands) for window in windows]
            todo = [i for i, (_, valid) in enumerate(tiles) if valid is None or valid.any()]
            predicted = dict(zip(todo, segmentor.predict([tiles[i][0] for i in todo]), strict=True))
            for i, (window, (image, valid)) in enumerate(zip(windows, tiles, strict=True)):
                label = predicted.get(i)
                if label is None:  # a tile of no-data only
                    label = np.full(image.shape[:2], UNLABELED, dtype=np.uint8)
                elif valid is not None:
                    label[~valid] = UNLABELED
                writer.put(window, label)
            progress.update(len(windows))
    except BaseException as exc:
        writer.close(exc)
        raise
    writer.close()
    write_label_views(
        out / "vis",
        scene.image_id,
        writer.preview(),
        writer.counts,
        segmentor.classes,
        palette_array(segmentor.palette),
        lambda: scene.preview(bands),
    )
    counts = writer.counts
    return {
        "file": writer.path.name,
        "class_pixels": counts[: len(segmentor.classes)].tolist(),
        "unlabeled_pixels": int(counts[UNLABELED]),
    }


def predict(
    model: str | os.PathLike[str],
    items: Sequence[ImageItem],
    out_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str = "auto",
    tile_size: int | None = None,
    overlap: int | None = None,
    bands: Sequence[int] | None = None,
    batch_size: int = BATCH_SIZE,
    trust_config: bool = False,
    scene_options: SceneOptions | None = None,
    on_error: str = "fail",
) -> dict[str, Any]:
    """Label ``items`` with a trained model into ``out_dir`` (see the module docstring).

    Arguments:
        model: a work dir of ``alps pretrain``/``alps finetune``, or an mmseg config file.
        items: the images (``alps.sharding.images_from_source``).
        out_dir: the output folder (the user's; other files in it are left alone).
        checkpoint: the weights (default for a work dir: the checkpoint its ``metrics.json`` evaluated).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        tile_size: tile side; default: the side the model's test pipeline leaves unscaled.
        overlap: overlap of neighbouring tiles; default ``min(128, tile_size // 4)``.
        bands: 1-based bands used as RGB (the bands the model was trained on).
        batch_size: tiles labeled together.
        trust_config: allow a config that runs code (``alps.train.inference.load_config``).
        scene_options: georeferencing that files lack (a manifest's rows); its tiling is replaced.
        on_error: ``fail`` (an unreadable image stops the run, named) or ``skip`` (listed in the card).

    Returns:
        The predict card.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    with OutputSet(out_dir, PREDICT_OUTPUT_SET, "alps predict") as outputs:
        outputs.check(["labels", "vis", CLASSES_FILE, CARD_FILE])  # before the model loads
        segmentor = load_segmentor(model, checkpoint, device=device, trust_config=trust_config)
        tile = tile_size or segmentor.tile_size
        options = SceneOptions(
            tile,
            overlap if overlap is not None else min(OVERLAP, tile // 4),
            scene_options.georefs if scene_options is not None else {},
        )
        skipped: list[dict[str, str]] = []
        scenes = open_scenes(items, bands, options, on_error, skipped)
        if not scenes:
            raise ValueError(f"none of the {len(items)} image(s) could be read: {skipped[0]['reason']}")
        build = outputs.build_dir
        results = []
        with Progress(sum(len(s.windows) for s in scenes), "predict", "tile") as progress:
            for scene in scenes:
                results.append(_predict_scene(segmentor, scene, build, bands, batch_size, progress))
        total = np.sum([r["class_pixels"] for r in results], axis=0)
        pixels = sum(scene.height * scene.width for scene in scenes)
        classes = {"classes": segmentor.classes, "palette": segmentor.palette}
        card = {
            "images": len(scenes),
            "model": str(model),
            "config": str(segmentor.config),
            "checkpoint": str(segmentor.checkpoint),
            "checkpoint_sha256": file_sha256(segmentor.checkpoint),
            "device": segmentor.device,
            **classes,
            "class_pixels": total.tolist(),
            "coverage": float(total.sum()) / pixels if pixels else 0.0,
            "bands": list(bands) if bands is not None else None,
            "tiling": {
                "tile_size": options.tile_size,
                "overlap": options.overlap,
                "mosaic": "nearest tile centre",
            },
            "inputs": [scene.describe() for scene in scenes],
            "label_files": [r["file"] for r in results],
            "skipped": skipped,
            "alps_version": __version__,
        }
        (build / CLASSES_FILE).write_text(json.dumps(classes, indent=2) + "\n")
        (build / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
        outputs.publish()
    return card
