"""Small GeoTIFF scenes cut from the real samples (the SpaceNet tile), for the tests that label scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

SPACENET = ("spacenet_building", "sample_geotiff.tif")
"""The SpaceNet sample in ../shared/data: 16-bit, 1 band, EPSG:32616."""


def crop_geotiff(
    source: Path, target: Path, x: int, y: int, size: int, bands: int | None = None, nodata_rows: int = 0
) -> Path:
    """A ``size`` square window of a GeoTIFF, written with the window's own transform (with ``nodata_rows``:
    its last rows zeroed and 0 declared no-data)."""
    with rasterio.open(source) as src:
        data = src.read(window=Window(x, y, size, size))
        profile = {
            "driver": "GTiff",
            "height": size,
            "width": size,
            "count": data.shape[0],
            "dtype": data.dtype,
            "crs": src.crs,
            "transform": src.window_transform(Window(x, y, size, size)),
        }
    if nodata_rows:
        data = np.maximum(data, 1)
        data[:, -nodata_rows:] = 0
        profile["nodata"] = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
    return target
