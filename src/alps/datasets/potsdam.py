"""ISPRS Potsdam from its official archives: 512 px clips and index labels exactly as mmseg makes them.

Raw input (``raw_dir``), as ISPRS ships it (either zip may be extracted; other archives in the folder, e.g.
``1_DSM.zip``, are ignored)::

    raw_dir/
        2_Ortho_RGB.zip                  members 2_Ortho_RGB/top_potsdam_2_10_RGB.tif ... (38 tiles, 6000 px)
        5_Labels_all_noBoundary.zip      members top_potsdam_2_10_label_noBoundary.tif ...

``labels="full"`` reads ``5_Labels_all.zip`` (``top_potsdam_2_10_label.tif``) instead.

What mmsegmentation 1.2.2's ``tools/dataset_converters/potsdam.py`` does, reproduced here:

* **Labels**: the ISPRS colours map to 0 boundary (black; in the no-boundary labels, the eroded object
  borders), 1 impervious surfaces (white), 2 building (blue), 3 low vegetation (cyan), 4 tree (green),
  5 car (yellow), 6 clutter (red). mmseg's ``PotsdamDataset`` trains with ``reduce_zero_label=True``:
  0 becomes 255 (ignored) and 1..6 become classes 0..5 (``CLASSES``). The files here keep mmseg's 0..6
  encoding, so they are interchangeable with mmseg-converted ones. A colour outside the palette is an error
  naming the file and colour; ``strict_palette=False`` maps it to 0 as mmseg does silently.
* **Clips** (``mmseg_clip_boxes``): mmseg computes ``num_rows``/``num_cols`` from ``clip_size`` and
  ``stride_size`` but then places window ``k`` at ``k * clip_size`` (not ``k * stride_size``) and shifts
  windows that cross the border back to end at it; many of them coincide and overwrite each other. The
  distinct clips are therefore a non-overlapping 512 px grid plus one last row/column flush with the border:
  12 x 12 = 144 clips per 6000 px tile, whatever ``stride_size`` (<= ``clip_size``) is. On the full dataset
  that is 24 x 144 = 3,456 train and 14 x 144 = 2,016 val clips.
* **Names**: ``<i>_<j>_<x0>_<y0>_<x1>_<y1>.png`` (tile ``top_potsdam_<i>_<j>``, end exclusive), the same
  name under ``img_dir/<split>/`` and ``ann_dir/<split>/``.
* **Split** by tile with mmseg's lists (``TRAIN_TILES``, ``VAL_TILES``); a tile in neither list goes to val,
  as in mmseg (and is listed in the card).

Where the tiles carry georeferencing, each clip's CRS and affine transform are written to the manifest.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
    window_transform_text,
    write_json,
)
from alps.io.images import write_png
from alps.io.manifest import MANIFEST_COLUMNS, write_manifest
from alps.progress import track

DATASET_NAME = "alps-potsdam"
"""Written into ``dataset_card.json``; ``prepare_potsdam`` only ever replaces folders that carry it."""

CLASSES: tuple[str, ...] = ("impervious_surface", "building", "low_vegetation", "tree", "car", "clutter")
"""Training classes 0..5 (label values 1..6 after mmseg's ``reduce_zero_label``)."""

LABEL_VALUES: dict[int, str] = {0: "boundary (ignored)"} | {i + 1: name for i, name in enumerate(CLASSES)}
"""The values stored in the label PNGs."""

ISPRS_PALETTE: dict[tuple[int, int, int], int] = {
    (0, 0, 0): 0,
    (255, 255, 255): 1,
    (0, 0, 255): 2,
    (0, 255, 255): 3,
    (0, 255, 0): 4,
    (255, 255, 0): 5,
    (255, 0, 0): 6,
}
"""ISPRS RGB label colour -> stored label value (mmseg's BGR ``color_map`` written in RGB)."""

TRAIN_TILES: tuple[str, ...] = (
    "2_10", "2_11", "2_12", "3_10", "3_11", "3_12", "4_10", "4_11", "4_12", "5_10", "5_11", "5_12",
    "6_10", "6_11", "6_12", "6_7", "6_8", "6_9", "7_10", "7_11", "7_12", "7_7", "7_8", "7_9",
)  # fmt: skip
"""mmseg's train tiles (24)."""

VAL_TILES: tuple[str, ...] = (
    "5_15", "6_15", "6_13", "3_13", "4_14", "6_14", "5_14", "2_13", "4_15", "2_14", "5_13", "4_13",
    "3_14", "7_13",
)  # fmt: skip
"""mmseg's val tiles (14)."""

CLIP_SIZE = 512
STRIDE_SIZE = 256
_IMAGE_NAME = re.compile(r"^top_potsdam_(\d+)_(\d+)_RGB\.tif$", re.IGNORECASE)
_LABEL_NAMES = {
    "noBoundary": re.compile(r"^top_potsdam_(\d+)_(\d+)_label_noBoundary\.tif$", re.IGNORECASE),
    "full": re.compile(r"^top_potsdam_(\d+)_(\d+)_label\.tif$", re.IGNORECASE),
}


def mmseg_clip_boxes(
    height: int, width: int, clip_size: int = CLIP_SIZE, stride_size: int = STRIDE_SIZE
) -> list[tuple[int, int, int, int]]:
    """The distinct clips mmseg's Potsdam converter cuts from a tile, as ``(x0, y0, x1, y1)``.

    A line-by-line replica of ``clip_big_image`` (see the module docstring), minus the repeated boxes,
    in the order mmseg first writes them (rows of the meshgrid, i.e. y outer, x inner).

    Arguments:
        height: tile height.
        width: tile width.
        clip_size: clip side.
        stride_size: mmseg's ``--stride_size`` (it only changes how many boxes coincide).

    Returns:
        The distinct boxes, end exclusive.
    """
    if clip_size < 1 or stride_size < 1:
        raise ValueError(f"clip_size and stride_size must be >= 1, got {clip_size} and {stride_size}")

    def count(side: int) -> int:
        n = math.ceil((side - clip_size) / stride_size)
        return n if n * stride_size + clip_size >= side else n + 1

    num_rows, num_cols = count(height), count(width)
    x, y = np.meshgrid(np.arange(num_cols + 1), np.arange(num_rows + 1))
    xmin = (x * clip_size).ravel()
    ymin = (y * clip_size).ravel()
    xmin_offset = np.where(xmin + clip_size > width, width - xmin - clip_size, 0)
    ymin_offset = np.where(ymin + clip_size > height, height - ymin - clip_size, 0)
    boxes = np.stack(
        [
            xmin + xmin_offset,
            ymin + ymin_offset,
            np.minimum(xmin + clip_size, width),
            np.minimum(ymin + clip_size, height),
        ],
        axis=1,
    )
    distinct: dict[tuple[int, int, int, int], None] = {}
    for x0, y0, x1, y1 in boxes.tolist():
        distinct.setdefault((int(x0), int(y0), int(x1), int(y1)), None)
    return list(distinct)


def tile_split(tile: str) -> str:
    """``train`` for mmseg's train tiles, else ``val`` (mmseg's rule)."""
    return "train" if tile in TRAIN_TILES else "val"


def _find_tiles(raw: Path, labels: str, source: RawSource) -> tuple[dict[str, RawFile], dict[str, RawFile]]:
    images: dict[str, RawFile] = {}
    label_files: dict[str, RawFile] = {}
    label_name = _LABEL_NAMES[labels]
    for raw_file in source.scan(raw):
        for pattern, found in ((_IMAGE_NAME, images), (label_name, label_files)):
            match = pattern.match(raw_file.name)
            if match is None:
                continue
            tile = f"{int(match.group(1))}_{int(match.group(2))}"
            if tile in found:
                source.skip_log.fail(
                    raw_file.origin, f"{raw_file.origin}: tile {tile} found twice (also {found[tile].origin})"
                )
            else:
                found[tile] = raw_file
    return images, label_files


def prepare_potsdam(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    clip_size: int = CLIP_SIZE,
    stride_size: int = STRIDE_SIZE,
    labels: str = "noBoundary",
    strict_palette: bool = True,
    on_error: str = "raise",
) -> Path:
    """Convert the ISPRS Potsdam archives into mmseg's 512 px clips, index labels, manifest and card.

    See the module docstring for the raw layout, clips, label values, names and split.

    Arguments:
        raw_dir: the folder holding ``2_Ortho_RGB.zip`` and ``5_Labels_all_noBoundary.zip`` (or their
            extracted tiles); never written to.
        out_dir: the dataset folder to create or replace (absent, empty, or a previous Potsdam dataset).
        clip_size: clip side in pixels.
        stride_size: mmseg's stride argument (see ``mmseg_clip_boxes``).
        labels: ``"noBoundary"`` (``5_Labels_all_noBoundary``, mmseg's choice) or ``"full"``
            (``5_Labels_all``).
        strict_palette: a label colour outside the ISPRS palette is an error (True) or value 0 (False).
        on_error: ``"raise"`` stops at the first bad input; ``"skip"`` leaves the tile out and lists it in
            ``skipped.json`` and the card.

    Returns:
        The manifest path, ``out_dir / "manifest.csv"``.

    Raises:
        DatasetSourceError: a bad input (no tiles, truncated zip, undecodable tile, unknown colour,
            image/label size mismatch, missing label), with ``on_error="raise"``.
        FileExistsError: ``out_dir`` holds something other than a previous Potsdam dataset.
    """
    raw = Path(raw_dir)
    if labels not in _LABEL_NAMES:
        raise ValueError(f"labels must be one of {', '.join(_LABEL_NAMES)}, got {labels!r}")
    if not raw.is_dir():
        raise DatasetSourceError(f"{raw} does not exist or is not a folder (expected 2_Ortho_RGB.zip there)")
    mmseg_clip_boxes(clip_size, clip_size, clip_size, stride_size)  # validates before any work
    skip = SkipLog(on_error)
    rows: list[dict[str, Any]] = []
    stats: dict[str, dict[str, Any]] = {
        split: {"tiles": [], "clips": 0, "value_pixels": np.zeros(256, dtype=np.int64)}
        for split in ("train", "val")
    }
    unknown_pixels: dict[str, int] = {}
    with building(out_dir, DATASET_NAME, "prepare_potsdam") as built, RawSource(skip) as source:
        images, label_files = _find_tiles(raw, labels, source)
        if not images:
            raise DatasetSourceError(
                f"{raw}: no top_potsdam_<i>_<j>_RGB.tif found, in 2_Ortho_RGB.zip or extracted; "
                "see docs/datasets.md"
            )
        ordered = sorted(images, key=lambda t: tuple(int(v) for v in t.split("_")))
        for tile in track(ordered, "Potsdam tiles", "tile"):
            image_file = images[tile]
            try:
                if tile not in label_files:
                    suffix = "_label_noBoundary.tif" if labels == "noBoundary" else "_label.tif"
                    raise DatasetSourceError(
                        f"{image_file.origin}: no label top_potsdam_{tile}{suffix} for this tile in {raw}"
                    )
                label_file = label_files[tile]
                image_raster = decode_image(source.read(image_file), image_file.origin)
                image = image_raster.array
                if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
                    raise DatasetSourceError(
                        f"{image_file.origin}: expected an 8-bit RGB tile, got shape {image.shape} "
                        f"{image.dtype}"
                    )
                image = np.ascontiguousarray(image[:, :, :3])
                colours = decode_image(source.read(label_file), label_file.origin).array
                check_same_size(colours, image, label_file.origin, image_file.origin)
                label, n_unknown = palette_to_index(
                    colours, ISPRS_PALETTE, label_file.origin, unknown=None if strict_palette else 0
                )
            except DatasetSourceError as exc:
                skip.fail(image_file.origin, exc)
                continue
            if n_unknown:
                unknown_pixels[tile] = n_unknown
            split = tile_split(tile)
            stats[split]["tiles"].append(tile)
            height, width = label.shape
            for x0, y0, x1, y1 in mmseg_clip_boxes(height, width, clip_size, stride_size):
                clip_id = f"{tile}_{x0}_{y0}_{x1}_{y1}"
                image_rel = f"{IMAGE_DIR}/{split}/{clip_id}.png"
                label_rel = f"{LABEL_DIR}/{split}/{clip_id}.png"
                clip_label = label[y0:y1, x0:x1]
                write_png(built / image_rel, image[y0:y1, x0:x1])
                write_png(built / label_rel, clip_label)
                stats[split]["clips"] += 1
                stats[split]["value_pixels"] += np.bincount(clip_label.ravel(), minlength=256)
                transform = ""
                if image_raster.transform is not None:
                    transform = window_transform_text(image_raster.transform, x0, y0, x1 - x0, y1 - y0)
                rows.append(
                    {
                        "image_id": clip_id,
                        "split": split,
                        "image_path": image_rel,
                        "height": y1 - y0,
                        "width": x1 - x0,
                        "source": f"top_potsdam_{tile}",
                        "window_x": x0,
                        "window_y": y0,
                        "window_w": x1 - x0,
                        "window_h": y1 - y0,
                        "label_path": label_rel,
                        "crs": image_raster.crs,
                        "transform": transform,
                    }
                )
        if not rows:
            raise DatasetSourceError(f"{raw}: no tile could be converted (see the skipped items)")
        write_manifest(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), built / MANIFEST_NAME)
        write_json(
            built / CLASSES_NAME,
            {
                "classes": list(CLASSES),
                "palette": [list(c) for c, v in ISPRS_PALETTE.items() if v > 0],
                "label_values": {str(k): v for k, v in LABEL_VALUES.items()},
                "reduce_zero_label": True,
            },
        )
        skip.write(built)
        outside = sorted(t for t in images if t not in TRAIN_TILES and t not in VAL_TILES)
        card = {
            "dataset": DATASET_NAME,
            "format_version": 1,
            "source": {"raw_dir": str(raw.absolute()), "labels": labels},
            "clips": {
                "clip_size": clip_size,
                "stride_size": stride_size,
                "rule": "mmsegmentation tools/dataset_converters/potsdam.py clip_big_image, distinct boxes",
                "name": "<i>_<j>_<x0>_<y0>_<x1>_<y1>",
            },
            "splits": {
                split: {
                    "tiles": s["tiles"],
                    "clips": s["clips"],
                    "value_pixels": {
                        LABEL_VALUES[v]: int(s["value_pixels"][v]) for v in sorted(LABEL_VALUES)
                    },
                }
                for split, s in stats.items()
            },
            "tiles_outside_mmseg_lists": outside,
            "unknown_colour_pixels": unknown_pixels,
            "label_values": {str(k): v for k, v in LABEL_VALUES.items()},
            "reduce_zero_label": True,
            "skipped": skip.entries,
        }
        # Written last: its presence marks a complete dataset.
        write_json(built / CARD_NAME, card)
    return Path(out_dir).absolute() / MANIFEST_NAME
