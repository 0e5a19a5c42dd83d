"""Mask shard files: every mask of a group of images in one Parquet file, as COCO RLE.

Schema (one row per mask): ``image_id`` (string), ``mask_id`` (int32, index within its image), ``rle``
(binary, COCO compressed RLE counts), ``area`` (int64), ``bbox_x, bbox_y, bbox_w, bbox_h`` (float32),
``predicted_iou`` and ``stability_score`` (float32). The images of the shard (including those with no
mask) and their sizes are kept in the file's metadata under ``alps.images``, so a shard alone describes
its images completely. ALL masks are kept: the area gate is applied downstream.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from alps.io.atomic import atomic_output
from alps.io.paths import safe_name
from alps.limits import MAX_ARRAY_BYTES, MAX_SHARD_ROWS, LimitError, check_pixels
from alps.masks.base import MaskSet
from alps.masks.rle import check_rle_batch

SCHEMA_VERSION = 1
_METADATA_KEY = b"alps.images"
MASK_SHARD_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("mask_id", pa.int32()),
        ("rle", pa.binary()),
        ("area", pa.int64()),
        ("bbox_x", pa.float32()),
        ("bbox_y", pa.float32()),
        ("bbox_w", pa.float32()),
        ("bbox_h", pa.float32()),
        ("predicted_iou", pa.float32()),
        ("stability_score", pa.float32()),
    ]
)


def write_mask_shard(path: str | os.PathLike[str], mask_sets: Sequence[MaskSet]) -> None:
    """Write the masks of several images to one Parquet shard, atomically.

    Arguments:
        path: the ``.parquet`` file to write.
        mask_sets: one ``MaskSet`` per image, in the shard's image order.
    """
    columns: dict[str, list] = {name: [] for name in MASK_SHARD_SCHEMA.names}
    images = []
    for mask_set in mask_sets:
        images.append({"image_id": mask_set.image_id, "height": mask_set.height, "width": mask_set.width})
        n = len(mask_set)
        if n == 0:
            continue
        bbox = mask_set.bbox
        columns["image_id"].extend([mask_set.image_id] * n)
        columns["mask_id"].extend(range(n))
        columns["rle"].extend(bytes(rle["counts"]) for rle in mask_set.rles)
        columns["area"].extend(mask_set.area.tolist())
        for i, name in enumerate(("bbox_x", "bbox_y", "bbox_w", "bbox_h")):
            columns[name].extend(bbox[:, i].tolist())
        columns["predicted_iou"].extend(mask_set.predicted_iou.tolist())
        columns["stability_score"].extend(mask_set.stability_score.tolist())
    metadata = {_METADATA_KEY: json.dumps({"version": SCHEMA_VERSION, "images": images}).encode("utf-8")}
    table = pa.table(columns, schema=MASK_SHARD_SCHEMA.with_metadata(metadata))
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_mask_shard(path: str | os.PathLike[str]) -> list[MaskSet]:
    """Read a mask shard back into one ``MaskSet`` per image, in the order they were written.

    Raises:
        ValueError: the file is not a readable mask shard (the message names the file).
    """
    path = Path(path)
    try:
        _check_size(path, pq.ParquetFile(path).metadata)
        table = pq.read_table(path)
    except LimitError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: not a readable Parquet mask shard ({exc}); delete it and rerun") from exc
    metadata = table.schema.metadata or {}
    if _METADATA_KEY not in metadata:
        raise ValueError(f"{path}: Parquet file has no `alps.images` metadata; it is not an ALPS mask shard")
    if not set(MASK_SHARD_SCHEMA.names) <= set(table.column_names):
        missing = sorted(set(MASK_SHARD_SCHEMA.names) - set(table.column_names))
        raise ValueError(f"{path}: mask shard lacks columns {missing}")
    images = _shard_images(path, metadata[_METADATA_KEY])
    table = table.select(list(MASK_SHARD_SCHEMA.names))
    if not table.schema.equals(MASK_SHARD_SCHEMA, check_metadata=False) or any(
        column.null_count for column in table.columns
    ):
        raise ValueError(f"{path}: mask shard columns are not of the mask shard schema (or hold nulls)")
    data = table.to_pydict()
    rows_by_image: dict[str, list[int]] = {}
    for row, image_id in enumerate(data["image_id"]):
        rows_by_image.setdefault(image_id, []).append(row)
    unknown = sorted(set(rows_by_image) - {image_id for image_id, _, _ in images}, key=str)
    if unknown:
        raise ValueError(f"{path}: masks of image(s) {unknown[:5]} that `alps.images` does not list")
    # Every RLE is checked before pycocotools parses it (alps.masks.rle), all of the shard's at once.
    sizes = {image_id: (height, width) for image_id, height, width in images}
    owners = [sizes[image_id] for image_id in data["image_id"]]
    check_rle_batch(
        data["rle"],
        [h for h, _ in owners],
        [w for _, w in owners],
        lambda r: f"{path}: image {data['image_id'][r]!r}, mask {data['mask_id'][r]}",
    )
    mask_sets = []
    for image_id, height, width in images:
        rows = sorted(rows_by_image.get(image_id, []), key=lambda r: data["mask_id"][r])
        rles = [{"size": [height, width], "counts": data["rle"][r]} for r in rows]
        mask_sets.append(
            MaskSet(
                image_id,
                height,
                width,
                rles,
                np.asarray([data["predicted_iou"][r] for r in rows], np.float32),
                np.asarray([data["stability_score"][r] for r in rows], np.float32),
            )
        )
    return mask_sets


def _check_size(path: Path, metadata: pq.FileMetaData) -> None:
    """Refuse, from the footer alone, a shard of too many rows or bytes (a small file may claim many)."""
    unpacked = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if metadata.num_rows > MAX_SHARD_ROWS or unpacked > MAX_ARRAY_BYTES:
        raise LimitError(
            f"{path}: {metadata.num_rows:,} masks in {unpacked:,} bytes, over the limit of "
            f"{MAX_SHARD_ROWS:,} masks or {MAX_ARRAY_BYTES:,} bytes for one mask shard"
        )


def _shard_images(path: Path, text: bytes) -> list[tuple[str, int, int]]:
    """The ``alps.images`` metadata: ``(image id, height, width)``, each id a file name, each size bounded."""
    try:
        images = json.loads(text)["images"]
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as exc:
        raise ValueError(
            f"{path}: damaged `alps.images` metadata ({exc}); delete the shard and rerun"
        ) from exc
    if not isinstance(images, list):
        raise ValueError(f"{path}: `alps.images` must list the shard's images")
    out, seen = [], set()
    for image in images:
        if not isinstance(image, dict):
            raise ValueError(f"{path}: an entry of `alps.images` is not an object")
        image_id = safe_name(image.get("image_id"), path, "image id")
        if image_id in seen:
            raise ValueError(f"{path}: image {image_id!r} is listed twice in `alps.images`")
        seen.add(image_id)
        height, width = image.get("height"), image.get("width")
        check_pixels(height, width, f"{path}: image {image_id!r}", "mask image")
        out.append((image_id, height, width))
    return out
