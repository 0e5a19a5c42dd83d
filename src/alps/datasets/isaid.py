"""iSAID from its official archives: 896 px patches with mmsegmentation's windows, palette -> class index.

Raw input (``raw_dir``), as the iSAID site ships it (DOTA-v1.0 images + iSAID semantic masks); each zip may
also be extracted in place, and zips and extracted files may be mixed::

    raw_dir/
        train/images/part1.zip part2.zip part3.zip     members images/P0000.png ...
        train/Semantic_masks/images.zip                members images/P0000_instance_color_RGB.png ...
        val/images/part1.zip
        val/Semantic_masks/images.zip
        test/images/part1.zip part2.zip                (only with splits=(..., "test"); no labels)

Images are the ``*.png`` under ``<split>/images/`` whose name has no ``_instance_``; labels are the
``*_instance_color_RGB.png`` under ``<split>/Semantic_masks/`` or, as in the iSAID devkit's samples, beside
the images in ``<split>/images/``. A label with no image is ignored (counted in the card); an image of a
labeled split without its label is an error.

Patches, exactly as mmsegmentation 1.2.2's ``tools/dataset_converters/isaid.py`` (defaults 896 px,
overlap 384, so stride 512):

* an image smaller than the patch in a dimension is padded at the bottom/right up to the patch size, with 0
  in the image and 255 (ignore) in the label. (mmseg pads only when a side is strictly smaller and the other
  is not equal to the patch size, a case that in mmseg produces windows with negative starts; here every
  side shorter than the patch is padded, which gives the same result wherever mmseg's is well defined.)
* window starts run ``0, 512, 1024, ...`` while ``< side``; a window that would cross the border is shifted
  back to end at it (``alps.datasets._layout.sliding_starts``). mmseg writes a window twice where two starts
  shift onto the same place; here it is written once.
* a patch is named ``<image>_<y0>_<y1>_<x0>_<x1>`` (mmseg's order: rows then columns, end exclusive, in the
  padded image), e.g. ``P0000_896_1792_0_896``; image and label share the name:
  ``img_dir/<split>/P0000_896_1792_0_896.png`` and ``ann_dir/<split>/P0000_896_1792_0_896.png`` (mmseg's
  ``iSAIDDataset`` expects ``_instance_color_RGB.png`` labels: set ``seg_map_suffix='.png'``).
* both are real PNG files (mmseg's converter writes BMP bytes under ``.png`` names).
* labels are uint8 class indices 0..15 (``CLASSES``; 0 = background) and 255 in padding. A colour outside
  ``PALETTE`` is an error naming the file and the colour (mmseg silently maps it to background).

The manifest window is the part of the source image the patch covers (``window_w``/``window_h`` are shorter
than the patch where it holds padding).

On the full dataset (1411 train / 458 val images) this gives 33,978 train and 11,644 val patches, the counts
the ALPS paper reports for mmseg's converter.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from alps.datasets._layout import (
    CARD_NAME,
    CLASSES_NAME,
    IMAGE_DIR,
    LABEL_DIR,
    MANIFEST_NAME,
    DatasetSourceError,
    RawFile,
    RawSource,
    SkipLog,
    building,
    check_same_size,
    decode_image,
    palette_to_index,
    sliding_starts,
    write_json,
)
from alps.io.images import write_png
from alps.io.manifest import MANIFEST_COLUMNS, write_manifest
from alps.progress import track

DATASET_NAME = "alps-isaid"
"""Written into ``dataset_card.json``; ``prepare_isaid`` only ever replaces folders that carry it."""

CLASSES: tuple[str, ...] = (
    "background",
    "ship",
    "store_tank",
    "baseball_diamond",
    "tennis_court",
    "basketball_court",
    "Ground_Track_Field",
    "Bridge",
    "Large_Vehicle",
    "Small_Vehicle",
    "Helicopter",
    "Swimming_pool",
    "Roundabout",
    "Soccer_ball_field",
    "plane",
    "Harbor",
)
"""Class names by index, as in mmsegmentation's ``iSAIDDataset``."""

PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (0, 0, 63),
    (0, 63, 63),
    (0, 63, 0),
    (0, 63, 127),
    (0, 63, 191),
    (0, 63, 255),
    (0, 127, 63),
    (0, 127, 127),
    (0, 0, 127),
    (0, 0, 191),
    (0, 0, 255),
    (0, 191, 127),
    (0, 127, 191),
    (0, 127, 255),
    (0, 100, 155),
)
"""The iSAID label colour of each class index (mmseg's ``iSAID_palette``)."""

IGNORE_INDEX = 255
"""Label value of padding."""

PATCH_SIZE = 896
OVERLAP = 384
LABEL_SUFFIX = "_instance_color_RGB.png"
_LABELED_SPLITS = ("train", "val")


def isaid_windows(
    height: int, width: int, patch_size: int = PATCH_SIZE, overlap: int = OVERLAP
) -> list[tuple[int, int]]:
    """The ``(y0, x0)`` patch origins of an image, in the padded image, rows first.

    Arguments:
        height: image height in pixels.
        width: image width in pixels.
        patch_size: patch side.
        overlap: overlap of neighbouring patches (stride = ``patch_size - overlap``).

    Returns:
        The distinct origins; the padded image is ``max(height, patch_size) x max(width, patch_size)``.
    """
    stride = patch_size - overlap
    if stride < 1:
        raise ValueError(f"overlap ({overlap}) must be smaller than patch_size ({patch_size})")
    ys = sliding_starts(max(height, patch_size), patch_size, stride)
    xs = sliding_starts(max(width, patch_size), patch_size, stride)
    return [(y, x) for y in ys for x in xs]


def _pad(array: NDArray[np.uint8], size: int, value: int) -> NDArray[np.uint8]:
    """Pad at the bottom and right up to ``size`` in each short dimension (as mmcv.impad with a shape)."""
    pad_h, pad_w = max(0, size - array.shape[0]), max(0, size - array.shape[1])
    if pad_h == 0 and pad_w == 0:
        return array
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="constant", constant_values=value)


def _index(files: Sequence[RawFile], key: str, skip: SkipLog) -> dict[str, RawFile]:
    found: dict[str, RawFile] = {}
    for raw in files:
        image_id = raw.name[: -len(LABEL_SUFFIX)] if key == "label" else raw.name[: -len(".png")]
        if image_id in found:
            twice = f"{raw.origin}: {key} {image_id!r} found twice (also {found[image_id].origin})"
            skip.fail(raw.origin, twice)
            continue
        found[image_id] = raw
    return found


def find_isaid_files(
    raw_dir: Path, split: str, source: RawSource
) -> tuple[dict[str, RawFile], dict[str, RawFile]]:
    """Find one split's images and colour labels (in zips or extracted).

    Arguments:
        raw_dir: the iSAID folder (holding ``train/``, ``val/``, ``test/``).
        split: ``train``, ``val`` or ``test``.
        source: the raw file reader (its skip log decides what a duplicate or bad archive does).

    Returns:
        ``(images, labels)``: image id (``P0000``) -> file.

    Raises:
        DatasetSourceError: the split's ``images`` folder is missing or holds no image.
    """
    split_dir = raw_dir / split
    image_dir = split_dir / "images"
    if not image_dir.is_dir():
        raise DatasetSourceError(
            f"{image_dir} does not exist: expected the DOTA-v1.0 image zips of the {split} split there "
            f"({split}/images/part1.zip ..., or their extracted images/P0000.png); see docs/datasets.md"
        )
    in_images = source.scan(image_dir)
    images = [r for r in in_images if r.name.lower().endswith(".png") and "_instance_" not in r.name]
    if not images:
        raise DatasetSourceError(f"{image_dir}: no image found (expected part*.zip with images/P*.png)")
    labels = [r for r in in_images if r.name.endswith(LABEL_SUFFIX)]
    labels += [r for r in source.scan(split_dir / "Semantic_masks") if r.name.endswith(LABEL_SUFFIX)]
    return _index(images, "image", source.skip_log), _index(labels, "label", source.skip_log)


def prepare_isaid(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    splits: Sequence[str] = _LABELED_SPLITS,
    patch_size: int = PATCH_SIZE,
    overlap: int = OVERLAP,
    on_error: str = "raise",
) -> Path:
    """Convert the iSAID archives into 896 px patches, index labels, manifest and card.

    See the module docstring for the raw layout, the windows and the names.

    Arguments:
        raw_dir: the folder holding ``train/``, ``val/`` (and ``test/``) as downloaded; never written to.
        out_dir: the dataset folder to create or replace (absent, empty, or a previous iSAID dataset).
        splits: the splits to convert; ``test`` has no labels (its patches get an empty label_path).
        patch_size: patch side in pixels.
        overlap: overlap of neighbouring patches in pixels.
        on_error: ``"raise"`` stops at the first bad input; ``"skip"`` leaves the image out and lists it in
            ``skipped.json`` and the card.

    Returns:
        The manifest path, ``out_dir / "manifest.csv"``.

    Raises:
        DatasetSourceError: a bad input (missing folder, truncated zip, undecodable image, unknown label
            colour, image/label size mismatch, missing label), with ``on_error="raise"``.
        FileExistsError: ``out_dir`` holds something other than a previous iSAID dataset.
    """
    raw = Path(raw_dir)
    bad = [s for s in splits if s not in ("train", "val", "test")]
    if bad or not splits:
        raise ValueError(f"splits must be a non-empty subset of train, val, test; got {list(splits)}")
    isaid_windows(patch_size, patch_size, patch_size, overlap)  # validates the geometry before any work
    skip = SkipLog(on_error)
    palette = {colour: index for index, colour in enumerate(PALETTE)}
    rows: list[dict[str, Any]] = []
    stats: dict[str, dict[str, Any]] = {}
    with building(out_dir, DATASET_NAME, "prepare_isaid") as built, RawSource(skip) as source:
        for split in splits:
            images, labels = find_isaid_files(raw, split, source)
            labeled = split in _LABELED_SPLITS
            counts = np.zeros(256, dtype=np.int64)
            n_images = n_patches = 0
            for image_id in track(sorted(images), f"iSAID {split} images", "img"):
                image_file = images[image_id]
                try:
                    image = decode_image(source.read(image_file), image_file.origin, mode="RGB").array
                    label = None
                    if labeled:
                        if image_id not in labels:
                            raise DatasetSourceError(
                                f"{image_file.origin}: no label {image_id}{LABEL_SUFFIX} for this image "
                                f"under {raw / split / 'Semantic_masks'}"
                            )
                        label_file = labels[image_id]
                        colours = decode_image(source.read(label_file), label_file.origin, mode="RGB").array
                        check_same_size(colours, image, label_file.origin, image_file.origin)
                        label, _ = palette_to_index(colours, palette, label_file.origin)
                except DatasetSourceError as exc:
                    skip.fail(image_file.origin, exc)
                    continue
                height, width = image.shape[:2]
                padded = _pad(image, patch_size, 0)
                padded_label = None if label is None else _pad(label, patch_size, IGNORE_INDEX)
                for y, x in isaid_windows(height, width, patch_size, overlap):
                    patch_id = f"{image_id}_{y}_{y + patch_size}_{x}_{x + patch_size}"
                    image_rel = f"{IMAGE_DIR}/{split}/{patch_id}.png"
                    write_png(built / image_rel, padded[y : y + patch_size, x : x + patch_size])
                    label_rel = ""
                    if padded_label is not None:
                        label_rel = f"{LABEL_DIR}/{split}/{patch_id}.png"
                        patch_label = padded_label[y : y + patch_size, x : x + patch_size]
                        write_png(built / label_rel, patch_label)
                        counts += np.bincount(patch_label.ravel(), minlength=256)
                    rows.append(
                        {
                            "image_id": patch_id,
                            "split": split,
                            "image_path": image_rel,
                            "height": patch_size,
                            "width": patch_size,
                            "source": image_id,
                            "window_x": x,
                            "window_y": y,
                            "window_w": min(x + patch_size, width) - x,
                            "window_h": min(y + patch_size, height) - y,
                            "label_path": label_rel,
                            "crs": "",
                            "transform": "",
                        }
                    )
                    n_patches += 1
                n_images += 1
            stats[split] = {
                "images": n_images,
                "patches": n_patches,
                "labels_without_image": sorted(set(labels) - set(images)),
                "class_pixels": (
                    {name: int(counts[i]) for i, name in enumerate(CLASSES)} | {"ignore": int(counts[255])}
                    if labeled
                    else None
                ),
            }
        if not rows:
            raise DatasetSourceError(f"{raw}: no image could be converted (see the skipped items)")
        write_manifest(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), built / MANIFEST_NAME)
        write_json(
            built / CLASSES_NAME,
            {"classes": list(CLASSES), "palette": [list(p) for p in PALETTE], "ignore_index": IGNORE_INDEX},
        )
        skip.write(built)
        card = {
            "dataset": DATASET_NAME,
            "format_version": 1,
            "source": {"raw_dir": str(raw.absolute()), "archives": "DOTA-v1.0 images + iSAID Semantic_masks"},
            "patches": {
                "patch_size": patch_size,
                "overlap": overlap,
                "stride": patch_size - overlap,
                "windows": "mmsegmentation tools/dataset_converters/isaid.py: starts 0, stride, ... < side, "
                "last shifted back to the border, duplicates once; short sides padded bottom/right",
                "image_padding": 0,
                "label_padding": IGNORE_INDEX,
                "name": "<image>_<y0>_<y1>_<x0>_<x1>",
            },
            "splits": stats,
            "classes": list(CLASSES),
            "ignore_index": IGNORE_INDEX,
            "skipped": skip.entries,
        }
        # Written last: its presence marks a complete dataset.
        write_json(built / CARD_NAME, card)
    return Path(out_dir).absolute() / MANIFEST_NAME
