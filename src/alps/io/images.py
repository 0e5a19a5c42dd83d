"""Read PNG / JPEG / TIFF / GeoTIFF / JPEG2000 images as HxWx3 uint8 RGB arrays.

Remote-sensing inputs come as 8- or 16-bit rasters with 1 to N bands. Everything downstream (SAM, the
feature encoders, the painter) wants 3-band uint8, so the conversion rules live here, in one place:
- ``bands`` picks three bands (1-based, as GDAL and rasterio number them); a 1-band image is repeated.
- uint8 data is kept as is; any other dtype is stretched per band between the ``percentiles`` of its
  valid pixels, so that a 16-bit scene with a few hot pixels still uses the full 0..255 range.
- valid pixels: where a raster declares no-data (a GeoTIFF's ``nodata`` value, an internal mask or an
  alpha band, as GDAL's masks say; a PNG's alpha channel by the same rule: alpha 0 is no-data), exactly
  the pixels GDAL marks valid in every chosen band; the rest is
  0 in the image and ``read_image_with_valid`` returns where it is, so that the labeling leaves it
  unlabeled. Without such a declaration every pixel is valid, and only the stretch leaves out zeros
  (the no-data of most satellite products that do not declare it).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from alps.limits import LimitError, check_pixels

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".jp2")
_RASTERIO_SUFFIXES = (".tif", ".tiff", ".jp2")


class ImageReadError(ValueError):
    """An image file could not be read or converted; the message names the file and the fix."""


def list_images(directory: str | os.PathLike[str]) -> list[Path]:
    """List the image files directly inside ``directory``, sorted by name.

    Arguments:
        directory: a folder of images.

    Returns:
        The paths whose suffix is one of ``IMAGE_SUFFIXES`` (case-insensitive), sorted; hidden files
        (temporary files of a killed writer, macOS's ``._name`` resource forks) are not images.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a directory")
    return sorted(
        p
        for p in folder.iterdir()
        # A broken link is listed, so that reading it fails by name rather than the image going missing.
        if (p.is_file() or p.is_symlink())
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not p.name.startswith(".")
    )


@contextlib.contextmanager
def open_image(path: str | os.PathLike[str], what: str = "image") -> Iterator[Image.Image]:
    """Open an image with PIL, refusing it before it is decoded if it claims more pixels than the limit.

    Arguments:
        path: the file.
        what: what it is, for the message (``image``, ``label``).

    Raises:
        alps.limits.LimitError: its header claims more pixels than ``alps.limits`` allows.
    """
    with open_header(path) as im:
        check_pixels(im.height, im.width, path, what)
        yield im


@contextlib.contextmanager
def open_header(path: str | os.PathLike[str]) -> Iterator[Image.Image]:
    """``PIL.Image.open`` without PIL's own bomb check, for a caller that checks the size itself.

    PIL refuses more than twice ``Image.MAX_IMAGE_PIXELS`` with an error that names neither our option nor
    the file; the check is suspended for the opening only (which reads the header), not for other readers.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        im = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    with im:
        yield im


def read_label_array(path: str | os.PathLike[str], what: str = "label") -> NDArray[np.generic]:
    """A PNG label (or any PIL image) as an array of its own mode, its size checked before decoding."""
    with open_image(path, what) as im:
        return np.asarray(im)


def read_raster(path: str | os.PathLike[str]) -> NDArray[np.generic]:
    """Read every band of an image, unscaled, as a (bands, H, W) array of its own dtype."""
    return read_raster_with_valid(path)[0]


def read_raster_with_valid(
    path: str | os.PathLike[str],
) -> tuple[NDArray[np.generic], NDArray[np.bool_] | None]:
    """Read every band of an image, unscaled, and where each band holds valid data.

    Returns:
        The (bands, H, W) raster of its own dtype, and a (bands, H, W) boolean array of its valid pixels
        (GDAL's per-band masks: nodata value, internal mask, alpha), or None when the file declares none.

    Raises:
        ImageReadError: the file is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    try:
        if path.suffix.lower() in _RASTERIO_SUFFIXES:
            return _read_rasterio(path)
        with open_image(path) as im:
            im.load()
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")  # a palette image's transparent entry is its alpha
            if im.mode in ("P", "PA", "CMYK", "YCbCr", "LA"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            array = np.asarray(im)
            alpha = im.mode == "RGBA"
    except (ImageReadError, LimitError):
        raise
    except Exception as exc:  # decoders raise many types; the user needs the file name
        raise ImageReadError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    if array.ndim == 2:
        return array[None], None
    raster = np.moveaxis(array, -1, 0)
    if not alpha:
        return raster, None
    # As GDAL masks an RGBA TIFF: the colour bands are valid where alpha > 0, the alpha band everywhere.
    valid = np.ones(raster.shape, dtype=bool)
    valid[:-1] = raster[-1] > 0
    return raster, valid


def _read_rasterio(path: Path) -> tuple[NDArray[np.generic], NDArray[np.bool_] | None]:
    import rasterio
    from rasterio.enums import MaskFlags
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            check_pixels(src.height, src.width, path)
            raster = src.read()
            if all(flags == [MaskFlags.all_valid] for flags in src.mask_flag_enums):
                return raster, None
            return raster, src.read_masks() > 0


def stretch_to_uint8(
    band: NDArray[np.generic],
    percentiles: tuple[float, float] = (2.0, 98.0),
    valid: NDArray[np.bool_] | None = None,
) -> NDArray[np.uint8]:
    """Linearly map one band's ``percentiles`` of its valid, finite pixels to 0..255.

    Arguments:
        band: one (H, W) band.
        percentiles: the lower and upper percentile mapped to 0 and 255.
        valid: the band's valid pixels (its declared no-data left out); without it, zero is treated as
            no-data (as it is in most satellite products). Invalid pixels come out 0.

    Returns:
        The (H, W) uint8 band; a constant band maps to 0.
    """
    values = band.astype(np.float64)
    finite = np.isfinite(values)
    valid = finite & (values != 0) if valid is None else finite & valid
    if not valid.any():
        return np.zeros(band.shape, dtype=np.uint8)
    low, high = np.percentile(values[valid], percentiles)
    if high <= low:
        return np.zeros(band.shape, dtype=np.uint8)
    scaled = (values - low) / (high - low) * 255.0
    scaled[~finite] = 0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def _chosen_bands(count: int, bands: Sequence[int] | None, source: str) -> list[int]:
    """The three 1-based band numbers used as R, G, B."""
    if bands is None:
        # RGBA -> RGB; 2-band (grey + alpha) -> grey; >4 bands: the first three, as GDAL does.
        return [1, 1, 1] if count in (1, 2) else [1, 2, 3]
    chosen = list(bands)
    if len(chosen) == 1:
        chosen = chosen * 3
    if len(chosen) != 3:
        raise ImageReadError(f"{source}: `bands` must name 1 or 3 bands, got {chosen}")
    bad = [b for b in chosen if not 1 <= b <= count]
    if bad:
        raise ImageReadError(
            f"{source}: band(s) {bad} do not exist; the image has {count} band(s), numbered 1..{count}"
        )
    return chosen


def to_rgb_uint8(
    raster: NDArray[np.generic],
    bands: Sequence[int] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
    source: str = "image",
    valid: NDArray[np.bool_] | None = None,
) -> NDArray[np.uint8]:
    """Turn a (bands, H, W) raster into HxWx3 uint8 (see the module docstring for the rules).

    Arguments:
        raster: the bands.
        bands: 1-based bands used as R, G, B.
        percentiles: the stretch of non-uint8 data.
        source: how messages name the image.
        valid: (bands, H, W) valid pixels, if the raster declares no-data; invalid pixels come out 0.
    """
    chosen = _chosen_bands(raster.shape[0], bands, source)
    planes = [raster[b - 1] for b in chosen]
    masks = [None] * 3 if valid is None else [valid[b - 1] for b in chosen]
    if raster.dtype == np.uint8:
        out = np.stack(planes, axis=-1)
    elif raster.dtype == bool:
        out = np.stack([p.astype(np.uint8) * 255 for p in planes], axis=-1)
    else:
        out = np.stack([stretch_to_uint8(p, percentiles, m) for p, m in zip(planes, masks, strict=True)], -1)
    if valid is not None:
        out[~valid_pixels(valid, chosen)] = 0
    return np.ascontiguousarray(out)


def valid_pixels(valid: NDArray[np.bool_], chosen: Sequence[int]) -> NDArray[np.bool_]:
    """(H, W): the pixels valid in every chosen band (1-based numbers)."""
    return np.logical_and.reduce([valid[b - 1] for b in sorted(set(chosen))])


def read_image(
    path: str | os.PathLike[str],
    bands: Sequence[int] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> NDArray[np.uint8]:
    """Read any supported image as an HxWx3 uint8 RGB array.

    Arguments:
        path: PNG, JPEG, TIFF, GeoTIFF, BMP or JPEG2000 file.
        bands: 1-based band numbers to use as R, G, B (one number repeats a grey band); by default
            the first three bands, or the only band repeated.
        percentiles: lower and upper percentile of the stretch applied to non-uint8 data.

    Returns:
        An ``(H, W, 3)`` ``uint8`` array (declared no-data is 0; ``read_image_with_valid`` says where).

    Raises:
        ImageReadError: the file is missing, cannot be decoded, or lacks the requested bands.
    """
    return read_image_with_valid(path, bands, percentiles)[0]


def read_image_with_valid(
    path: str | os.PathLike[str],
    bands: Sequence[int] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> tuple[NDArray[np.uint8], NDArray[np.bool_] | None]:
    """``read_image``, and the (H, W) pixels holding valid data (None: the file declares no no-data).

    Raises:
        ImageReadError: the file is missing, cannot be decoded, or lacks the requested bands.
    """
    raster, valid = read_raster_with_valid(path)
    if raster.ndim != 3 or raster.shape[1] == 0 or raster.shape[2] == 0:
        raise ImageReadError(f"{path}: empty image (shape {raster.shape})")
    return raster_to_rgb(raster, valid, bands, percentiles, str(path))


def raster_to_rgb(
    raster: NDArray[np.generic],
    valid: NDArray[np.bool_] | None,
    bands: Sequence[int] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
    source: str = "image",
) -> tuple[NDArray[np.uint8], NDArray[np.bool_] | None]:
    """``to_rgb_uint8`` of a raster read with its valid pixels (``read_raster_with_valid``), and the (H, W)
    pixels valid in every chosen band (None: all of them)."""
    image = to_rgb_uint8(raster, bands=bands, percentiles=percentiles, source=source, valid=valid)
    if valid is None:
        return image, None
    pixels = valid_pixels(valid, _chosen_bands(raster.shape[0], bands, source))
    return image, None if pixels.all() else pixels


def write_png(path: str | os.PathLike[str], array: NDArray[np.generic]) -> None:
    """Write ``array`` as a real PNG, atomically (parent folders are created)."""
    from alps.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def check_rgb_image(image: NDArray[np.uint8], name: str = "image") -> NDArray[np.uint8]:
    """Validate an in-memory ``(H, W, 3)`` uint8 RGB image (what every mask backend and encoder takes).

    Arguments:
        image: the array.
        name: how errors name it (e.g. ``"image P0003"``).

    Returns:
        The image as an array.

    Raises:
        ValueError: another shape or dtype, or an empty image.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected an (H, W, 3) RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 pixels, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name}: empty image of shape {image.shape}")
    return image
