"""Scenes of any size: opened once, cut into tiles, read tile by tile (the input side of ``alps label``).

``alps label`` treats every input image as a *scene*. A scene no larger than one tile is read and labeled
whole, exactly as before. A larger one is cut into ``tile_size`` windows that overlap by ``overlap`` pixels
(``alps.tiling.tile_windows``: the same rule as ``alps prepare folder``). Each tile is read on its
own (GeoTIFF/JPEG2000 through rasterio windows; PNG/JPEG are decoded whole, they are 8-bit), becomes one mask
set with the tile id ``<scene>_<y0>_<y1>_<x0>_<x1>``, and all tiles of all scenes feed ONE k-means, so a
cluster id means the same on every tile. The painted tiles are then mosaicked (``alps.geo.painting``,
``alps.geo.writer``): each scene pixel is taken from the tile whose centre is nearest
(``alps.tiling.mosaic_cells``), so tile borders, where a segmentation is cut, never reach the output and no
seam shows.

Radiometry: a non-uint8 scene of several tiles is stretched with ONE set of percentiles per band, taken on
a decimated read of the whole scene (at most ``STATS_SIDE`` pixels a side), with the rule of
``alps.io.images.stretch_to_uint8`` (``stretch_percentiles`` once, ``stretch_between`` on every tile; zero
and non-finite pixels are no-data). A single-tile scene goes through ``alps.io.images.read_image``
unchanged.

Memory is bounded by the tile: one tile's pixels, masks and feature maps at a time; the scene's label is
written window by window into a tiled GeoTIFF (georeferenced scenes). Only the masks' RLEs and the feature
vectors of all tiles stay in memory (k-means needs them all).
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from alps.geo.georef import Georef, raster_georef
from alps.io.images import (
    PERCENTILES,
    RASTERIO_SUFFIXES,
    ImageReadError,
    chosen_bands,
    open_header,
    read_image,
    read_image_with_valid,
    stretch_between,
    stretch_percentiles,
)
from alps.limits import check_pixels, check_tiles
from alps.progress import Progress
from alps.tiling import OVERLAP, TILE_SIZE, Window, preview_shape, tile_windows

log = logging.getLogger(__name__)

STATS_SIDE = 1024
"""Longest side of the decimated read that gives a tiled scene its stretch percentiles."""
PREVIEW_SIDE = 2048
"""Longest side of ``vis/`` previews of large scenes (smaller scenes are drawn at full size)."""
WHOLE_IMAGE_TILE = 1 << 31
"""A tile side no image reaches: every image is labeled whole (masks that belong to whole images)."""


@dataclass(frozen=True)
class SceneOptions:
    """How ``alps label`` cuts scenes into tiles, and georeferencing that the image files lack.

    Attributes:
        tile_size: tile side in pixels; scenes that fit are labeled whole.
        overlap: overlap of neighbouring tiles, ``0 <= overlap < tile_size``.
        georefs: per image id, the CRS and transform of images whose file has none (the rows of a
            ``prepare folder`` manifest that carry them); a georeferenced file's own wins otherwise.
    """

    tile_size: int = TILE_SIZE
    overlap: int = OVERLAP
    georefs: Mapping[str, Georef] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tile_size < 32 or not 0 <= self.overlap < self.tile_size:
            raise ValueError(
                f"need tile_size >= 32 and 0 <= overlap < tile_size, got {self.tile_size} and {self.overlap}"
            )


@dataclass
class Scene:
    """One input image and its tiles.

    Attributes:
        image_id: the image's id (its outputs' stem).
        path: the image file.
        height: scene height.
        width: scene width.
        band_count: bands in the file.
        dtype: the file's data type.
        bands: the three 1-based bands used as RGB.
        windows: the tiles, ``(x, y, w, h)``, rows first (one window: the scene is read whole).
        georef: CRS and transform, or ``None``.
        stretch: per RGB band ``(low, high)`` of a tiled non-uint8 rasterio scene, else ``None``.
        decoded_whole: a tiled scene whose format cannot be read by windows (PNG/JPEG).
        has_nodata: the file declares no-data (a GDAL mask): its tiles are read with their valid pixels.
    """

    image_id: str
    path: Path
    height: int
    width: int
    band_count: int
    dtype: str
    bands: list[int]
    windows: list[Window]
    georef: Georef | None
    stretch: list[tuple[float, float]] | None = None
    decoded_whole: bool = False
    has_nodata: bool = False

    @property
    def tiled(self) -> bool:
        return len(self.windows) > 1

    def tile_id(self, window: Window) -> str:
        """``image_id`` for a whole scene, else ``<id>_<y0>_<y1>_<x0>_<x1>`` (as ``prepare folder``)."""
        if not self.tiled:
            return self.image_id
        x, y, w, h = window
        return f"{self.image_id}_{y}_{y + h}_{x}_{x + w}"

    def read_tile(self, window: Window, bands: Sequence[int] | None) -> NDArray[np.uint8]:
        """The ``(h, w, 3)`` uint8 RGB pixels of one window."""
        return self.read_tile_with_valid(window, bands)[0]

    def read_tile_with_valid(
        self, window: Window, bands: Sequence[int] | None
    ) -> tuple[NDArray[np.uint8], NDArray[np.bool_] | None]:
        """The pixels of one window, and its valid pixels (None: the file declares no no-data, or all valid).

        Declared no-data stays out of every mask (``alps.pipeline``), so it ends up unlabeled (255) whatever
        the scene's size.
        """
        if not self.tiled:
            return read_image_with_valid(self.path, bands=bands)
        x, y, w, h = window
        if self.decoded_whole:
            pixels, whole_valid = _decode_whole(self.path, tuple(bands) if bands is not None else None)
            part = None if whole_valid is None else whole_valid[y : y + h, x : x + w]
            tile_valid = None if part is None or part.all() else np.ascontiguousarray(part)
            return np.ascontiguousarray(pixels[y : y + h, x : x + w]), tile_valid
        import rasterio
        from rasterio.windows import Window as RioWindow

        unique = sorted(set(self.bands))
        masks = None
        with _quiet(), rasterio.open(self.path) as src:
            planes = dict(zip(unique, src.read(unique, window=RioWindow(x, y, w, h)), strict=True))
            if self.has_nodata:
                masks = src.read_masks(unique, window=RioWindow(x, y, w, h)) > 0
        valid = None if masks is None else np.logical_and.reduce(list(masks))
        rgb = self._to_rgb(planes)
        if valid is None or valid.all():
            return rgb, None
        rgb[~valid] = 0  # as alps.io.images.read_image gives no-data: the encoder sees the same pixels
        return rgb, valid

    def _to_rgb(self, planes: Mapping[int, NDArray[np.generic]]) -> NDArray[np.uint8]:
        if self.stretch is None:
            return np.ascontiguousarray(np.stack([planes[b] for b in self.bands], axis=-1).astype(np.uint8))
        out = [stretch_between(planes[b], *self.stretch[i]) for i, b in enumerate(self.bands)]
        return np.ascontiguousarray(np.stack(out, axis=-1))

    def preview(self, bands: Sequence[int] | None, max_side: int = PREVIEW_SIDE) -> NDArray[np.uint8]:
        """The scene's RGB pixels at most ``max_side`` a side (full size when it fits)."""
        shape = preview_shape(self.height, self.width, max_side)
        if not self.tiled:
            image = read_image(self.path, bands=bands)
        elif self.decoded_whole:
            image = _decode_whole(self.path, tuple(bands) if bands is not None else None)[0]
        else:
            import rasterio

            unique = sorted(set(self.bands))
            with _quiet(), rasterio.open(self.path) as src:
                data = src.read(unique, out_shape=(len(unique), *shape))
            return self._to_rgb(dict(zip(unique, data, strict=True)))
        if image.shape[:2] == shape:
            return image
        return np.asarray(Image.fromarray(image).resize(shape[::-1], Image.Resampling.NEAREST))

    def describe(self) -> dict[str, Any]:
        """What the label card records of this input."""
        return {
            "image_id": self.image_id,
            "file": str(self.path),
            "height": self.height,
            "width": self.width,
            "band_count": self.band_count,
            "dtype": self.dtype,
            "bands": self.bands,
            "crs": self.georef.crs if self.georef else None,
            "transform": list(self.georef.transform)[:6] if self.georef else None,
            "tiles": len(self.windows),
        }


@functools.lru_cache(maxsize=1)
def _decode_whole(
    path: Path, bands: tuple[int, ...] | None
) -> tuple[NDArray[np.uint8], NDArray[np.bool_] | None]:
    """A PNG/JPEG scene's RGB pixels and valid pixels (alpha); only the last scene stays cached."""
    return read_image_with_valid(path, bands=bands)


class _quiet(warnings.catch_warnings):
    """Silence rasterio's NotGeoreferencedWarning for plain TIFFs."""

    def __enter__(self) -> Any:
        result = super().__enter__()
        from rasterio.errors import NotGeoreferencedWarning

        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return result


def _warn_bands(path: Path, count: int, bands: Sequence[int] | None) -> None:
    if bands is None and count >= 4:
        log.warning(
            "%s has %d bands and no --bands was given: bands 1,2,3 are used as RGB. If this is RGBA that "
            "is right; for RGBN or multispectral data pass --bands (e.g. --bands 4,3,2 for NIR-R-G)",
            path,
            count,
        )


def open_scene(
    image_id: str,
    path: str | os.PathLike[str],
    bands: Sequence[int] | None,
    options: SceneOptions,
    percentiles: tuple[float, float] = PERCENTILES,
) -> Scene:
    """Plan the tiles of one image and take what they share (bands, stretch, georeferencing).

    Raises:
        ImageReadError: the file is missing or unreadable, or lacks the requested bands.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    if path.suffix.lower() in RASTERIO_SUFFIXES:
        import rasterio
        from rasterio.enums import MaskFlags

        try:
            # The georeference is read inside the same guard: an unreadable file is skipped whole.
            georef = raster_georef(path) or options.georefs.get(image_id)
            with _quiet(), rasterio.open(path) as src:
                height, width, count, dtype = src.height, src.width, src.count, src.dtypes[0]
                check_pixels(height, width, path, "scene")
                shape = preview_shape(height, width, STATS_SIDE)
                sample = src.read(out_shape=(count, *shape))
                has_nodata = not all(flags == [MaskFlags.all_valid] for flags in src.mask_flag_enums)
                sample_valid = src.read_masks(out_shape=(count, *shape)) > 0 if has_nodata else None
        except (rasterio.errors.RasterioError, OSError) as exc:
            raise ImageReadError(f"{path}: cannot decode image ({exc})") from exc
    else:
        georef = options.georefs.get(image_id)
        # PNG/JPEG/BMP cannot be read by windows: decoded whole when its tiles are read (one scene at a time).
        rgb = _decode_whole(path, tuple(bands) if bands is not None else None)[0]
        height, width = rgb.shape[:2]
        with Image.open(path) as im:
            count, dtype, sample = len(im.getbands()), str(rgb.dtype), None
        has_nodata, sample_valid = False, None
    # A PNG's bands were checked when it was decoded (a palette PNG has more bands decoded than in its file).
    chosen = chosen_bands(count, bands, str(path), check=sample is not None)
    _warn_bands(path, count, bands)
    windows = tile_windows(height, width, options.tile_size, options.overlap)
    check_tiles(len(windows), path)
    stretch = None
    if len(windows) > 1 and sample is not None and sample.dtype != np.uint8:
        stretch = [
            stretch_percentiles(
                sample[b - 1], percentiles, None if sample_valid is None else sample_valid[b - 1]
            )
            for b in chosen
        ]
    return Scene(
        image_id,
        path,
        height,
        width,
        count,
        str(dtype),
        chosen,
        windows,
        georef,
        stretch,
        decoded_whole=sample is None and len(windows) > 1,
        has_nodata=has_nodata,
    )


def check_scene_sizes(items: Sequence[Any], options: SceneOptions | None = None) -> None:
    """Refuse, from the files' headers alone, a scene over the pixel or tile limit (``alps.limits``).

    ``alps label`` calls it before any model is loaded, so a small file claiming a huge raster is refused
    in a second with little memory. Unreadable files are left to ``open_scenes`` (and ``--on-error``).

    Raises:
        alps.limits.LimitError: naming the file, its size and the option.
    """
    options = options or SceneOptions()
    for item in items:
        size = _header_size(Path(item.path))
        if size is None:
            continue
        check_pixels(*size, item.path, "scene")
        check_tiles(len(tile_windows(*size, options.tile_size, options.overlap)), item.path)


def _header_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` from a raster's header, or None where it cannot be read."""
    try:
        if path.suffix.lower() in RASTERIO_SUFFIXES:
            import rasterio

            with _quiet(), rasterio.open(path) as src:
                return src.height, src.width
        with open_header(path) as im:  # the header only; the size is checked against our own limit
            return im.height, im.width
    except Exception:  # unreadable here means unreadable later, where --on-error decides
        return None


def open_scenes(
    items: Sequence[Any],
    bands: Sequence[int] | None,
    options: SceneOptions | None = None,
    on_error: str = "fail",
    skipped: list[dict[str, str]] | None = None,
) -> list[Scene]:
    """``open_scene`` of every ``ImageItem`` (id and path).

    Arguments:
        on_error: ``"fail"`` (an unreadable image raises) or ``"skip"`` (it is left out and appended to
            ``skipped`` as ``{"item", "path", "reason"}``).

    Raises:
        ImageReadError: an unreadable image with ``on_error="fail"``.
        ValueError: two tiles or images share an id.
    """
    options = options or SceneOptions()
    scenes = []
    for item in items:
        try:
            scenes.append(open_scene(item.image_id, item.path, bands, options))
        except ImageReadError as exc:
            if on_error != "skip":
                raise
            log.warning("skipped an unreadable image: %s", exc)
            if skipped is not None:
                skipped.append({"item": item.image_id, "path": str(item.path), "reason": str(exc)})
    seen: dict[str, str] = {}
    for scene in scenes:
        for window in scene.windows:
            tile_id = scene.tile_id(window)
            if tile_id in seen:
                raise ValueError(
                    f"tile {tile_id!r} of {scene.path} has the id of an image or tile of {seen[tile_id]}; "
                    "rename the image (tiles are named <stem>_<y0>_<y1>_<x0>_<x1>)"
                )
            seen[tile_id] = str(scene.path)
    return scenes


def iter_tiles_with_valid(
    scenes: Sequence[Scene], bands: Sequence[int] | None
) -> Iterator[tuple[str, NDArray[np.uint8], NDArray[np.bool_] | None]]:
    """``(tile id, RGB tile, valid pixels or None)`` of every tile, with a progress bar over tiles."""
    total = sum(len(scene.windows) for scene in scenes)
    with Progress(total, "tiles", "tile") as bar:
        for scene in scenes:
            for window in scene.windows:
                yield (scene.tile_id(window), *scene.read_tile_with_valid(window, bands))
                bar.update(1)
