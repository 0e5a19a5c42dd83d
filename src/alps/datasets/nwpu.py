"""NWPU VHR-10 with instance polygons (COCO) as a semantic segmentation dataset in mmseg's layout.

The labeled NWPU VHR-10 images (Google Earth and ISPRS Vaihingen colour-infrared, 10 object classes) come
with COCO instance polygons (RSPrompter's ``NWPU_instances_*.json``). ``prepare_nwpu`` rasterises them into
index labels (0 background, 1..10 the COCO ``category_id``), largest instance first so that a small object
lying on a larger one stays visible, and splits the images into train and val with a seed::

    out_dir/
        img_dir/{train,val}/<stem>.png   the JPEG decoded once, written as PNG (mmseg reads .png here)
        ann_dir/{train,val}/<stem>.png   HxW uint8, 0 background, 1..10 the classes
        classes.json                     the 11 class names and a palette
        manifest.csv                     see alps.io.manifest
        dataset_card.json                split seed and fraction, the images of each split, class pixels

**The split** is fixed by ``seed`` and stratified by each image's rarest class (the class present in the
fewest images; background-only images form their own group): within each group ``round(val_fraction * n)``
images, drawn with ``numpy.random.default_rng(seed)``, go to val. With 150 images, most of them airplanes,
courts and diamonds, a plain random draw would leave a rare class (storage tanks in 2 images, ground track
fields in 4) entirely on one side by chance; stratifying keeps the rare classes on both sides where they
have two images or more.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pycocotools import mask as mask_utils

from alps.datasets._layout import (
    CARD_NAME,
    CLASSES_NAME,
    IMAGE_DIR,
    LABEL_DIR,
    MANIFEST_NAME,
    DatasetSourceError,
    building,
    write_json,
)
from alps.io.images import ImageReadError, read_image, write_png
from alps.io.manifest import MANIFEST_COLUMNS, write_manifest

DATASET_NAME = "nwpu-vhr10"
"""Written into ``dataset_card.json``; ``prepare_nwpu`` only ever replaces a dataset it recorded as its own
(``alps.io.outputs``)."""

CLASSES: tuple[str, ...] = (
    "background",
    "airplane",
    "ship",
    "storage_tank",
    "baseball_diamond",
    "tennis_court",
    "basketball_court",
    "ground_track_field",
    "harbor",
    "bridge",
    "vehicle",
)
"""Label value -> class: 0 background, then NWPU VHR-10's COCO ``category_id`` 1..10."""

PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (255, 0, 0),
    (0, 0, 255),
    (255, 255, 0),
    (0, 255, 0),
    (255, 0, 255),
    (0, 255, 255),
    (255, 128, 0),
    (128, 0, 255),
    (128, 128, 128),
    (255, 255, 255),
)

MAX_JSON_BYTES = 512 << 20
"""Largest COCO file read (the whole NWPU VHR-10 annotation is a few MB)."""

VAL_FRACTION = 1 / 3
SEED = 0


def _read_coco(path: Path) -> dict[str, Any]:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise DatasetSourceError(
            f"{path}: larger than {MAX_JSON_BYTES >> 20} MB; not an NWPU annotation file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetSourceError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not {"images", "annotations"} <= set(data):
        raise DatasetSourceError(f"{path}: not a COCO instances file (needs 'images' and 'annotations')")
    return data


def _find_annotation(raw: Path, annotation: str | None) -> Path:
    if annotation is not None:
        path = raw / annotation
        if not path.is_file():
            raise DatasetSourceError(f"{path} does not exist; pass the COCO file's name as annotation")
        return path
    found = sorted(raw.glob("instances_*.json"))
    if len(found) != 1:
        raise DatasetSourceError(
            f"{raw}: expected one instances_*.json (COCO polygons), found {len(found)}; "
            "name it with the annotation option"
        )
    return found[0]


def rasterize(annotations: Sequence[Mapping[str, Any]], height: int, width: int) -> np.ndarray:
    """The index label of one image: each instance painted with its ``category_id``, largest first.

    Arguments:
        annotations: the image's COCO annotations (polygons, or RLE for ``iscrowd``).
        height: image height.
        width: image width.

    Returns:
        An ``(height, width)`` uint8 array, 0 where no instance lies.

    Raises:
        DatasetSourceError: a ``category_id`` outside 1..10.
    """
    label = np.zeros((height, width), np.uint8)
    shapes = []
    for annotation in annotations:
        category = int(annotation["category_id"])
        if not 1 <= category < len(CLASSES):
            raise DatasetSourceError(
                f"annotation {annotation.get('id')}: category_id {category} is not an NWPU VHR-10 class "
                f"(1..{len(CLASSES) - 1})"
            )
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        else:
            rle = mask_utils.frPyObjects(segmentation, height, width)
        area = float(mask_utils.area(rle))
        shapes.append((-area, int(annotation.get("id", 0)), category, rle))
    for _, _, category, rle in sorted(shapes, key=lambda s: (s[0], s[1])):
        label[mask_utils.decode(rle).astype(bool)] = category
    return label


def stratified_split(present: Mapping[str, set[int]], val_fraction: float, seed: int) -> dict[str, str]:
    """Assign each image to train or val, stratified by its rarest class (module docstring).

    Arguments:
        present: image id -> the object classes (1..10) it contains.
        val_fraction: share of each group sent to val, in (0, 1).
        seed: seed of the draw.

    Returns:
        Image id -> ``"train"`` or ``"val"``.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    images_with = Counter(c for classes in present.values() for c in classes)
    groups: dict[int, list[str]] = defaultdict(list)
    for image_id, classes in present.items():
        rarest = min(classes, key=lambda c: (images_with[c], c)) if classes else 0
        groups[rarest].append(image_id)
    rng = np.random.default_rng(seed)
    split = {}
    for group in sorted(groups):
        ids = sorted(groups[group])
        val = set(rng.permutation(ids)[: round(val_fraction * len(ids))].tolist())
        split.update({i: "val" if i in val else "train" for i in ids})
    return split


def prepare_nwpu(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    annotation: str | None = None,
    val_fraction: float = VAL_FRACTION,
    seed: int = SEED,
) -> Path:
    """Convert labeled NWPU VHR-10 (``images/*.jpg`` + COCO polygons) into an mmseg-layout dataset.

    Arguments:
        raw_dir: the folder with ``images/`` and the COCO instances file (read only).
        out_dir: the dataset folder to create, or replace if it is a dataset this function wrote.
        annotation: the COCO file's name inside ``raw_dir``; default the one ``instances_*.json``.
        val_fraction: share of images in val (per stratum, see ``stratified_split``).
        seed: the split's seed.

    Returns:
        The manifest path.

    Raises:
        DatasetSourceError: a missing or malformed annotation file or image, or an image whose size
            differs from its annotation's.
    """
    raw = Path(raw_dir)
    data = _read_coco(_find_annotation(raw, annotation))
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for annotation_row in data["annotations"]:
        by_image[int(annotation_row["image_id"])].append(annotation_row)
    labels: dict[str, np.ndarray] = {}
    paths: dict[str, Path] = {}
    for info in sorted(data["images"], key=lambda i: str(i["file_name"])):
        stem = Path(str(info["file_name"])).stem
        path = raw / "images" / Path(str(info["file_name"])).name
        if not path.is_file():
            raise DatasetSourceError(f"{path}: listed in the annotation file but missing")
        labels[stem] = rasterize(by_image[int(info["id"])], int(info["height"]), int(info["width"]))
        paths[stem] = path
    if not labels:
        raise DatasetSourceError(f"{raw}: the annotation file lists no images")
    present = {stem: set(np.unique(label).tolist()) - {0} for stem, label in labels.items()}
    split = stratified_split(present, val_fraction, seed)
    with building(out_dir, DATASET_NAME, "prepare_nwpu") as built:
        rows = []
        pixels = {s: np.zeros(len(CLASSES), np.int64) for s in ("train", "val")}
        for stem, label in labels.items():
            try:
                image = read_image(paths[stem])
            except ImageReadError as exc:
                raise DatasetSourceError(str(exc)) from exc
            if image.shape[:2] != label.shape:
                raise DatasetSourceError(
                    f"{paths[stem]}: {image.shape[1]}x{image.shape[0]} on disk, "
                    f"{label.shape[1]}x{label.shape[0]} in the annotation file"
                )
            part = split[stem]
            image_rel, label_rel = f"{IMAGE_DIR}/{part}/{stem}.png", f"{LABEL_DIR}/{part}/{stem}.png"
            write_png(built / image_rel, image)
            write_png(built / label_rel, label)
            pixels[part] += np.bincount(label.ravel(), minlength=len(CLASSES))[: len(CLASSES)]
            height, width = label.shape
            rows.append(
                {
                    "image_id": stem,
                    "split": part,
                    "image_path": image_rel,
                    "height": height,
                    "width": width,
                    "source": paths[stem].name,
                    "window_x": 0,
                    "window_y": 0,
                    "window_w": width,
                    "window_h": height,
                    "label_path": label_rel,
                    "crs": "",
                    "transform": "",
                }
            )
        write_manifest(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), built / MANIFEST_NAME)
        write_json(built / CLASSES_NAME, {"classes": list(CLASSES), "palette": [list(p) for p in PALETTE]})
        write_json(
            built / CARD_NAME,
            {
                "dataset": DATASET_NAME,
                "classes": list(CLASSES),
                "split_seed": seed,
                "val_fraction": val_fraction,
                "split_rule": "stratified by each image's rarest class",
                "images": {s: sorted(i for i, p in split.items() if p == s) for s in ("train", "val")},
                "class_pixels": {s: counts.tolist() for s, counts in pixels.items()},
            },
        )
    return Path(out_dir) / MANIFEST_NAME
