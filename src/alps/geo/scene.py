"""Scenes of any size: read by windows, label tile by tile, mosaic one label raster per scene.

``alps label`` treats every input image as a *scene*. A scene no larger than one tile is read and labeled
whole, exactly as before. A larger one is cut into ``tile_size`` windows that overlap by ``overlap`` pixels
(``alps.datasets.folder.tile_windows``: the same rule as ``alps prepare folder``). Each tile is read on its
own (GeoTIFF/JPEG2000 through rasterio windows; PNG/JPEG are decoded whole, they are 8-bit), becomes one mask
set with the tile id ``<scene>_<y0>_<y1>_<x0>_<x1>``, and all tiles of all scenes feed ONE k-means, so a
cluster id means the same on every tile. The painted tiles are then mosaicked: each scene pixel is taken
from the tile whose centre is nearest (``nearest_centre_cells``), so tile borders, where a segmentation is
cut, never reach the output and no seam shows.

Radiometry: a non-uint8 scene of several tiles is stretched with ONE set of percentiles per band, taken on
a decimated read of the whole scene (at most ``STATS_SIDE`` pixels a side), with the rule of
``alps.io.images.stretch_to_uint8`` (zero and non-finite pixels are no-data). A single-tile scene goes
through ``alps.io.images.read_image`` unchanged.

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

from alps.geo.georef import Georef, label_geotiff, raster_georef, write_pam_sidecar
from alps.io.atomic import atomic_output
from alps.io.images import (
    ImageReadError,
    open_header,
    read_image,
    read_image_with_valid,
    to_rgb_uint8,
    write_png,
)
from alps.io.paths import confined, safe_name
from alps.limits import check_pixels, check_tiles
from alps.masks.base import MaskSet
from alps.paint import UNLABELED, colorize, paint_binary, paint_labels
from alps.progress import Progress

log = logging.getLogger(__name__)

TILE_SIZE = 1024
"""Default tile side of ``alps label``: efficientnet-lite0 and felzenszwalb stay near 1 GB at this size."""
OVERLAP = 128
"""Default overlap of neighbouring tiles: every kept pixel lies at least 64 px inside its tile."""
STATS_SIDE = 1024
"""Longest side of the decimated read that gives a tiled scene its stretch percentiles."""
PREVIEW_SIDE = 2048
"""Longest side of ``vis/`` previews of large scenes (smaller scenes are drawn at full size)."""
PERCENTILES: tuple[float, float] = (2.0, 98.0)
_RASTERIO_SUFFIXES = (".tif", ".tiff", ".jp2")

Window = tuple[int, int, int, int]
"""``(x, y, w, h)`` in scene pixels."""


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


def _stretch(band: NDArray[np.generic], low: float, high: float) -> NDArray[np.uint8]:
    """``stretch_to_uint8`` with given percentiles (so every tile of a scene shares them)."""
    if high <= low:
        return np.zeros(band.shape, dtype=np.uint8)
    scaled = (band.astype(np.float64) - low) / (high - low) * 255.0
    scaled[~np.isfinite(scaled)] = 0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def _percentiles(
    band: NDArray[np.generic], percentiles: tuple[float, float], valid: NDArray[np.bool_] | None = None
) -> tuple[float, float]:
    """The stretch of ``alps.io.images.stretch_to_uint8``: over declared valid pixels, else non-zero ones."""
    values = band.astype(np.float64)
    valid = np.isfinite(values) & ((values != 0) if valid is None else valid)
    if not valid.any():
        return 0.0, 0.0
    low, high = np.percentile(values[valid], percentiles)
    return float(low), float(high)


def _chosen_bands(count: int, bands: Sequence[int] | None) -> list[int]:
    """The rule of ``alps.io.images.to_rgb_uint8`` (which has already validated ``bands``)."""
    if bands is None:
        return [1, 1, 1] if count in (1, 2) else [1, 2, 3]
    chosen = list(bands)
    return chosen * 3 if len(chosen) == 1 else chosen


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
        out = [_stretch(planes[b], *self.stretch[i]) for i, b in enumerate(self.bands)]
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


def preview_shape(height: int, width: int, max_side: int) -> tuple[int, int]:
    """``(h, w)`` shrunk to at most ``max_side`` a side, keeping the aspect ratio."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


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
    from alps.datasets.folder import tile_windows

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    if path.suffix.lower() in _RASTERIO_SUFFIXES:
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
        to_rgb_uint8(sample, bands=bands, source=str(path))  # validates `bands` with the usual messages
    else:
        georef = options.georefs.get(image_id)
        # PNG/JPEG/BMP cannot be read by windows: decoded whole when its tiles are read (one scene at a time).
        rgb = _decode_whole(path, tuple(bands) if bands is not None else None)[0]
        height, width = rgb.shape[:2]
        with Image.open(path) as im:
            count, dtype, sample = len(im.getbands()), str(rgb.dtype), None
        has_nodata, sample_valid = False, None
    _warn_bands(path, count, bands)
    windows = tile_windows(height, width, options.tile_size, options.overlap)
    check_tiles(len(windows), path)
    chosen = _chosen_bands(count, bands)
    stretch = None
    if len(windows) > 1 and sample is not None and sample.dtype != np.uint8:
        stretch = [
            _percentiles(sample[b - 1], percentiles, None if sample_valid is None else sample_valid[b - 1])
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
    from alps.datasets.folder import tile_windows

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
        if path.suffix.lower() in _RASTERIO_SUFFIXES:
            import rasterio

            with _quiet(), rasterio.open(path) as src:
                return src.height, src.width
        with open_header(path) as im:  # the header only; the size is checked against our own limit
            return im.height, im.width
    except Exception:  # unreadable here means unreadable later, where --on-error decides
        return None


def nearest_centre_cells(starts: Sequence[int], sizes: Sequence[int], length: int) -> list[tuple[int, int]]:
    """Along one axis, the pixels ``[a, b)`` whose nearest tile centre is each tile's (ties: the earlier).

    The tiles of a scene form a grid (the product of the x and y starts), so the nearest centre in the
    plane is the nearest centre along each axis: a scene pixel's tile is the product of two 1-D cells.
    Each cell lies inside its tile because neighbouring tiles overlap or touch.

    Arguments:
        starts: tile starts along the axis, increasing.
        sizes: tile lengths along the axis.
        length: the scene's length along the axis.
    """
    centres = [s + n / 2 for s, n in zip(starts, sizes, strict=True)]
    cells = []
    low = 0
    for i in range(len(starts)):
        if i + 1 < len(starts):
            midpoint = (centres[i] + centres[i + 1]) / 2
            # Pixel p (centre p + 0.5) stays with tile i while p + 0.5 <= midpoint.
            high = int(np.floor(midpoint - 0.5)) + 1
        else:
            high = length
        high = max(low, min(high, starts[i] + sizes[i], length))
        if low < starts[i]:
            raise ValueError(
                f"tiles starting at {list(starts)} with sizes {list(sizes)} leave a gap at {low}"
            )
        cells.append((low, high))
        low = high
    return cells


def mosaic_cells(windows: Sequence[Window], height: int, width: int) -> dict[Window, Window]:
    """For each tile window, the part of the scene ``(x, y, w, h)`` it fills in the mosaic."""
    xs = sorted({(x, w) for x, _, w, _ in windows})
    ys = sorted({(y, h) for _, y, _, h in windows})
    x_cells = dict(zip(xs, nearest_centre_cells([x for x, _ in xs], [w for _, w in xs], width), strict=True))
    y_cells = dict(zip(ys, nearest_centre_cells([y for y, _ in ys], [h for _, h in ys], height), strict=True))
    cells = {}
    for window in windows:
        x, y, w, h = window
        (xa, xb), (ya, yb) = x_cells[(x, w)], y_cells[(y, h)]
        cells[window] = (xa, ya, xb - xa, yb - ya)
    return cells


def crop_to_cell(label: NDArray[np.uint8], window: Window, cell: Window) -> NDArray[np.uint8]:
    """The part of a tile's label that lies in its mosaic cell."""
    x, y, _, _ = window
    cx, cy, cw, ch = cell
    return label[cy - y : cy - y + ch, cx - x : cx - x + cw]


class SceneWriter:
    """Mosaics one scene's painted tiles into ``labels/<id>.tif`` (georeferenced) or ``labels/<id>.png``.

    GeoTIFFs are written cell by cell (memory: one tile); a PNG is assembled in memory (PNG cannot be
    written by windows; non-georeferenced scenes are PNG/JPEG/plain TIFF users label at moderate sizes).
    """

    def __init__(
        self,
        scene: Scene,
        path: Path,
        *,
        nodata: int | None = UNLABELED,
        names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.scene = scene
        self.path = path
        self.names = names
        self.palette = palette
        self.counts = np.zeros(256, dtype=np.int64)
        self._cells = mosaic_cells(scene.windows, scene.height, scene.width)
        self._array: NDArray[np.uint8] | None = None
        self._context: Any = None
        self._dst: Any = None
        if scene.georef is not None:
            self._context = label_geotiff(
                path, scene.height, scene.width, scene.georef, nodata=nodata, palette=palette
            )
            self._dst = self._context.__enter__()
        else:
            self._array = np.full((scene.height, scene.width), UNLABELED, dtype=np.uint8)

    def put(self, window: Window, label: NDArray[np.uint8]) -> None:
        """Write the cell of one painted tile."""
        from rasterio.windows import Window as RioWindow

        cell = self._cells[window]
        part = crop_to_cell(label, window, cell)
        self.counts += np.bincount(part.ravel(), minlength=256)
        cx, cy, cw, ch = cell
        if self._dst is not None:
            self._dst.write(part, 1, window=RioWindow(cx, cy, cw, ch))
        else:
            assert self._array is not None
            self._array[cy : cy + ch, cx : cx + cw] = part

    def close(self, error: BaseException | None = None) -> None:
        """Finish the file (or, after an error, leave nothing behind); name its classes where given."""
        if self._context is not None:
            if error is not None:
                self._context.__exit__(type(error), error, error.__traceback__)
                return
            self._context.__exit__(None, None, None)
        elif error is None and self._array is not None:
            with atomic_output(self.path) as tmp:
                Image.fromarray(self._array).save(tmp, format="PNG")
        if error is None and self.names is not None:
            write_pam_sidecar(self.path, None, self.names, self.palette)

    def preview(self, max_side: int = PREVIEW_SIDE) -> NDArray[np.uint8]:
        """The written label at most ``max_side`` a side (nearest neighbour)."""
        if self._array is not None:
            image = self._array
            shape = preview_shape(*image.shape, max_side)
            if image.shape == shape:
                return image
            return np.asarray(Image.fromarray(image).resize(shape[::-1], Image.Resampling.NEAREST))
        import rasterio

        shape = preview_shape(self.scene.height, self.scene.width, max_side)
        with rasterio.open(self.path) as src:
            return src.read(1, out_shape=shape)


def label_suffix(scene: Scene) -> str:
    """``.tif`` for a georeferenced scene, ``.png`` otherwise."""
    return ".tif" if scene.georef is not None else ".png"


def paint_scenes(
    scenes: Sequence[Scene],
    mask_sets: Sequence[MaskSet],
    cluster_ids: Mapping[str, NDArray[np.integer]],
    out_dir: str | os.PathLike[str],
    *,
    k: int,
    bands: Sequence[int] | None = None,
    binary_dir: str | os.PathLike[str] | None = None,
    legend: bool = True,
) -> dict[str, Any]:
    """Paint every tile and mosaic one label per scene; write previews and overlays.

    Writes ``labels/<id>.tif|png`` (and ``binary/<id>.tif|png``), ``vis/<id>.png`` (the colour map, full
    size up to ``PREVIEW_SIDE``) and ``vis/<id>.overlay.png`` (the colour map over the image, with a legend of
    cluster colours and pixel shares).

    Returns:
        The statistics of ``alps.paint.paint_mask_sets`` (over scene pixels, each counted once), plus
        ``inputs`` (what each scene was) and ``label_files``.
    """
    from alps.figures import overlay_with_legend

    out = Path(out_dir)
    by_id = {m.image_id: m for m in mask_sets}
    histogram = np.zeros(k, dtype=np.int64)
    covered = total = 0
    files = []
    for scene in scenes:
        suffix = label_suffix(scene)
        name = f"{safe_name(scene.image_id, scene.path, 'image id')}{suffix}"
        writer = SceneWriter(scene, confined(out, "labels", name))
        binary = None
        if binary_dir is not None:
            binary = SceneWriter(scene, confined(binary_dir, name), nodata=None)
        try:
            for window in scene.windows:
                tile_id = scene.tile_id(window)
                mask_set = by_id[tile_id]
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
        files.append(writer.path.name)
        label_preview = writer.preview()
        write_png(confined(out, "vis", f"{scene.image_id}.png"), colorize(label_preview))
        if legend:
            image = scene.preview(bands)
            if image.shape[:2] != label_preview.shape:
                image = np.asarray(Image.fromarray(image).resize(label_preview.shape[::-1]))
            write_png(
                confined(out, "vis", f"{scene.image_id}.overlay.png"),
                overlay_with_legend(image, label_preview, writer.counts, k),
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
        "labeler": "alps",
        "inputs": [scene.describe() for scene in scenes],
        "label_files": files,
    }


def write_png_georef(png: Path, georef: Georef | None) -> None:
    """Give a PNG label its georeferencing sidecar, where it has one."""
    if georef is not None:
        write_pam_sidecar(png, georef)


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


def _parameters(obj: Any) -> dict[str, Any]:
    """The public settings of a generator/encoder: dataclass fields, else plain public attributes."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        values = dataclasses.asdict(obj)
    else:
        values = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
        config = values.pop("config", None)
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            values.update(dataclasses.asdict(config))
    plain = (str, int, float, bool, type(None))
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, plain):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, plain) for v in value):
            out[key] = list(value)
        elif type(value).__name__ == "device":
            out[key] = str(value)
    return out


def run_parameters(
    generator: Any,
    encoder: Any,
    cluster_config: Any,
    bands: Sequence[int] | None,
    options: SceneOptions | None,
) -> dict[str, Any]:
    """What the label card records of how ``alps label`` ran: bands, mask, encoder, cluster, tiling."""
    import dataclasses

    options = options or SceneOptions()
    cluster = dataclasses.asdict(cluster_config)
    cluster["k_range"] = list(cluster["k_range"])
    return {
        "bands": list(bands) if bands is not None else None,
        "mask_params": _parameters(generator),
        "encoder_params": _parameters(encoder),
        "cluster_params": cluster,
        "tiling": {
            "tile_size": options.tile_size,
            "overlap": options.overlap,
            "mosaic": "nearest tile centre",
        },
    }
