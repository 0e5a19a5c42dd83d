"""Read PNG / JPEG / TIFF / GeoTIFF / JPEG2000 images as HxWx3 uint8 RGB arrays.

Remote-sensing inputs come as 8- or 16-bit rasters with 1 to N bands. Everything downstream (SAM, the
feature encoders, the painter) wants 3-band uint8, so the conversion rules live here, in one place:
- ``bands`` picks three bands (1-based, as GDAL and rasterio number them); a 1-band image is repeated.
- uint8 data is kept as is; any other dtype is stretched per band between the ``percentiles`` of its
  valid pixels, so that a 16-bit scene with a few hot pixels still uses the full 0..255 range.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".jp2")
_RASTERIO_SUFFIXES = (".tif", ".tiff", ".jp2")


class ImageReadError(ValueError):
    """An image file could not be read or converted; the message names the file and the fix."""


def list_images(directory: str | os.PathLike[str]) -> list[Path]:
    """List the image files directly inside ``directory``, sorted by name.

    Arguments:
        directory: a folder of images.

    Returns:
        The paths whose suffix is one of ``IMAGE_SUFFIXES`` (case-insensitive), sorted.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a directory")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_raster(path: str | os.PathLike[str]) -> NDArray[np.generic]:
    """Read every band of an image, unscaled, as a (bands, H, W) array of its own dtype."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    try:
        if path.suffix.lower() in _RASTERIO_SUFFIXES:
            import rasterio
            from rasterio.errors import NotGeoreferencedWarning

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    return src.read()
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "PA", "CMYK", "YCbCr", "LA"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            array = np.asarray(im)
    except ImageReadError:
        raise
    except Exception as exc:  # decoders raise many types; the user needs the file name
        raise ImageReadError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    if array.ndim == 2:
        return array[None]
    return np.moveaxis(array, -1, 0)


def stretch_to_uint8(
    band: NDArray[np.generic], percentiles: tuple[float, float] = (2.0, 98.0)
) -> NDArray[np.uint8]:
    """Linearly map one band's ``percentiles`` of finite, non-zero pixels to 0..255.

    Zero is treated as no-data (as it is in most satellite products); a constant band maps to 0.
    """
    values = band.astype(np.float64)
    valid = np.isfinite(values) & (values != 0)
    if not valid.any():
        return np.zeros(band.shape, dtype=np.uint8)
    low, high = np.percentile(values[valid], percentiles)
    if high <= low:
        return np.zeros(band.shape, dtype=np.uint8)
    scaled = (values - low) / (high - low) * 255.0
    scaled[~np.isfinite(scaled)] = 0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def to_rgb_uint8(
    raster: NDArray[np.generic],
    bands: Sequence[int] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
    source: str = "image",
) -> NDArray[np.uint8]:
    """Turn a (bands, H, W) raster into HxWx3 uint8 (see the module docstring for the rules)."""
    count = raster.shape[0]
    if bands is None:
        # RGBA -> RGB; 2-band (grey + alpha) -> grey; >4 bands: the first three, as GDAL does.
        chosen = [1, 1, 1] if count in (1, 2) else [1, 2, 3]
    else:
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
    planes = [raster[b - 1] for b in chosen]
    if raster.dtype == np.uint8:
        out = np.stack(planes, axis=-1)
    elif raster.dtype == bool:
        out = np.stack([p.astype(np.uint8) * 255 for p in planes], axis=-1)
    else:
        out = np.stack([stretch_to_uint8(p, percentiles) for p in planes], axis=-1)
    return np.ascontiguousarray(out)


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
        An ``(H, W, 3)`` ``uint8`` array.

    Raises:
        ImageReadError: the file is missing, cannot be decoded, or lacks the requested bands.
    """
    raster = read_raster(path)
    if raster.ndim != 3 or raster.shape[1] == 0 or raster.shape[2] == 0:
        raise ImageReadError(f"{path}: empty image (shape {raster.shape})")
    return to_rgb_uint8(raster, bands=bands, percentiles=percentiles, source=str(path))
