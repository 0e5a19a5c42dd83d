"""The user's own images (PNG, JPEG, TIFF/GeoTIFF, JPEG2000; 8/16-bit; 1..N bands) as an unlabeled dataset.

Every image in ``raw_dir`` (``recursive=True``: also in its sub-folders) becomes RGB uint8 by
``alps.io.images`` rules: ``bands`` picks three bands (1-based; one band is repeated), uint8 data is kept
as is, other dtypes are stretched per band between the ``percentiles`` of the **whole image**'s valid
pixels (so all tiles of an image share one radiometry). Declared no-data (a GeoTIFF's nodata value, mask
or alpha band; a PNG's alpha) becomes the alpha channel of the tiles it falls in (RGBA PNG, alpha 0 =
no-data), so that labeling them leaves it unlabeled (255), as ``alps label`` leaves a scene's.

Tiling: an image whose sides are both <= ``tile_size`` is kept whole (``image_id`` = its file stem). A larger
image is cut into ``tile_size`` windows every ``tile_size - overlap`` pixels (default: ``alps label``'s
1024 and 128, so that ``alps mosaic``'s nearest-tile-centre cells stay 64 px away from every tile's cut
edge), the last window of a row or
column shifted back to end at the border (``alps.datasets._layout.sliding_starts``, the iSAID/mmseg rule);
a side shorter than ``tile_size`` is not padded, its windows are just that short. Tiles are named
``<stem>_<y0>_<y1>_<x0>_<x1>`` (end exclusive). With ``recursive=True`` the stem is the path below
``raw_dir`` with ``__`` for ``/`` (``site_a__scene1``).

Georeferencing: for a GeoTIFF (or JPEG2000) with a CRS, the manifest carries the CRS (``EPSG:nnnn`` or WKT)
and each tile's own affine transform (``rasterio.windows.transform`` of its window); plain images leave
both empty. Every image goes to one ``split`` (default ``train``). No labels.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alps.datasets._layout import (
    CARD_NAME,
    IMAGE_DIR,
    MANIFEST_NAME,
    DatasetSourceError,
    SkipLog,
    building,
    format_crs,
    sliding_starts,
    window_transform_text,
    write_json,
)
from alps.io.images import IMAGE_SUFFIXES, ImageReadError, raster_to_rgb, read_raster_with_valid, write_png
from alps.io.manifest import MANIFEST_COLUMNS, SPLITS, write_manifest
from alps.progress import track

DATASET_NAME = "alps-folder"
"""Written into ``dataset_card.json``; ``prepare_folder`` only ever replaces folders that carry it."""

TILE_SIZE = 1024
OVERLAP = 128
"""As ``alps label`` (``alps.geo.scene.OVERLAP``): with 0, ``alps mosaic`` joins tiles at their cut edges."""
PERCENTILES: tuple[float, float] = (2.0, 98.0)


def _georeferencing(path: Path) -> tuple[str, Any]:
    """``(crs, transform)`` of a georeferenced raster, else ``("", None)``."""
    if path.suffix.lower() not in (".tif", ".tiff", ".jp2"):
        return "", None
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            if src.crs is None:
                return "", None
            return format_crs(src.crs), src.transform


def tile_windows(height: int, width: int, tile_size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """The ``(x0, y0, w, h)`` tile windows of an image (one whole-image window if it fits in a tile).

    Arguments:
        height: image height.
        width: image width.
        tile_size: tile side.
        overlap: overlap of neighbouring tiles, ``0 <= overlap < tile_size``.

    Returns:
        The windows, rows first.
    """
    if tile_size < 1 or not 0 <= overlap < tile_size:
        raise ValueError(f"need tile_size >= 1 and 0 <= overlap < tile_size, got {tile_size} and {overlap}")
    stride = tile_size - overlap
    ys = sliding_starts(height, tile_size, stride)
    xs = sliding_starts(width, tile_size, stride)
    return [(x, y, min(tile_size, width), min(tile_size, height)) for y in ys for x in xs]


def _tile_pixels(rgb: np.ndarray, valid: np.ndarray | None, window: tuple[int, int, int, int]) -> np.ndarray:
    """A tile's RGB pixels, or RGBA with alpha 0 on its no-data pixels where it has some."""
    x, y, w, h = window
    tile = rgb[y : y + h, x : x + w]
    part = None if valid is None else valid[y : y + h, x : x + w]
    if part is None or part.all():
        return tile
    return np.dstack([tile, np.where(part, 255, 0).astype(np.uint8)])


def _list_images(raw: Path, recursive: bool) -> list[tuple[str, Path]]:
    candidates = sorted(raw.rglob("*") if recursive else raw.iterdir())
    found = []
    for path in candidates:
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            relative = path.relative_to(raw).with_suffix("")
            found.append(("__".join(relative.parts), path))
    return found


def prepare_folder(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    bands: Sequence[int] | None = None,
    percentiles: tuple[float, float] = PERCENTILES,
    tile_size: int = TILE_SIZE,
    overlap: int = OVERLAP,
    split: str = "train",
    recursive: bool = False,
    on_error: str = "raise",
) -> Path:
    """Turn a folder of images into an unlabeled dataset of RGB PNG tiles with a manifest and card.

    See the module docstring for band selection, scaling, tiling, names and georeferencing.

    Arguments:
        raw_dir: the folder of images; never written to.
        out_dir: the dataset folder to create or replace (absent, empty, or a previous folder dataset).
        bands: 1-based bands to use as R, G, B (one number: a grey band repeated); default: the first
            three, or the only band.
        percentiles: stretch percentiles for non-uint8 images.
        tile_size: tile side in pixels; images that fit are kept whole.
        overlap: overlap of neighbouring tiles in pixels.
        split: the split of every image (``train``, ``val`` or ``test``).
        recursive: also read images in sub-folders.
        on_error: ``"raise"`` stops at the first unreadable image; ``"skip"`` leaves it out and lists it in
            ``skipped.json`` and the card.

    Returns:
        The manifest path, ``out_dir / "manifest.csv"``.

    Raises:
        DatasetSourceError: no image in ``raw_dir``, an unreadable image or missing band (with
            ``on_error="raise"``), or two images with the same stem.
        FileExistsError: ``out_dir`` holds something other than a previous folder dataset.
    """
    raw = Path(raw_dir)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    tile_windows(1, 1, tile_size, overlap)  # validates before any work
    if not raw.is_dir():
        raise DatasetSourceError(f"{raw} does not exist or is not a folder")
    images = _list_images(raw, recursive)
    if not images:
        raise DatasetSourceError(f"{raw}: no image ({', '.join(IMAGE_SUFFIXES)}) found")
    seen: dict[str, Path] = {}
    for stem, path in images:
        if stem in seen:
            raise DatasetSourceError(
                f"{path}: same name as {seen[stem]}; image ids (file stems) must be unique"
            )
        seen[stem] = path
    skip = SkipLog(on_error)
    rows: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    with building(out_dir, DATASET_NAME, "prepare_folder") as built:
        for stem, path in track(images, "images", "img"):
            try:
                raster, valid = read_raster_with_valid(path)
                if raster.ndim != 3 or raster.shape[1] == 0 or raster.shape[2] == 0:
                    raise ImageReadError(f"{path}: empty image (shape {raster.shape})")
                rgb, valid_rgb = raster_to_rgb(raster, valid, bands, percentiles, str(path))
                crs, transform = _georeferencing(path)
            except (ImageReadError, OSError) as exc:
                skip.fail(str(path), exc)
                continue
            height, width = rgb.shape[:2]
            windows = tile_windows(height, width, tile_size, overlap)
            for x, y, w, h in windows:
                image_id = stem if len(windows) == 1 else f"{stem}_{y}_{y + h}_{x}_{x + w}"
                image_rel = f"{IMAGE_DIR}/{split}/{image_id}.png"
                write_png(built / image_rel, _tile_pixels(rgb, valid_rgb, (x, y, w, h)))
                tile_transform = "" if transform is None else window_transform_text(transform, x, y, w, h)
                rows.append(
                    {
                        "image_id": image_id,
                        "split": split,
                        "image_path": image_rel,
                        "height": h,
                        "width": w,
                        "source": path.relative_to(raw).as_posix(),
                        "window_x": x,
                        "window_y": y,
                        "window_w": w,
                        "window_h": h,
                        "label_path": "",
                        "crs": crs,
                        "transform": tile_transform,
                    }
                )
            sources.append(
                {
                    "file": path.relative_to(raw).as_posix(),
                    "height": height,
                    "width": width,
                    "bands": int(raster.shape[0]),
                    "dtype": str(raster.dtype),
                    "stretched": raster.dtype != np.uint8,
                    "crs": crs,
                    "tiles": len(windows),
                }
            )
        if not rows:
            raise DatasetSourceError(f"{raw}: no image could be converted (see the skipped items)")
        write_manifest(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), built / MANIFEST_NAME)
        skip.write(built)
        card = {
            "dataset": DATASET_NAME,
            "format_version": 1,
            "source": {"raw_dir": str(raw.absolute()), "recursive": recursive, "images": sources},
            "images": {
                "bands": list(bands) if bands is not None else None,
                "percentiles": list(percentiles),
                "stretch": "per band, whole image, non-uint8 only",
                "nodata": "alpha 0 in the tiles it falls in (RGBA PNG)",
            },
            "tiles": {
                "tile_size": tile_size,
                "overlap": overlap,
                "rule": "images within tile_size kept whole; else starts every tile_size - overlap, last "
                "shifted back to the border, no padding",
                "name": "<stem> or <stem>_<y0>_<y1>_<x0>_<x1>",
                "count": len(rows),
            },
            "split": split,
            "skipped": skip.entries,
        }
        # Written last: its presence marks a complete dataset.
        write_json(built / CARD_NAME, card)
    return Path(out_dir).absolute() / MANIFEST_NAME
