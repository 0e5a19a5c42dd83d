"""Georeferencing in and out: read it from a raster or a manifest row, write label GeoTIFFs and PNG sidecars.

- A georeferenced label is a single-band uint8 GeoTIFF: tiled 256 x 256, DEFLATE-compressed, nodata 255
  (``alps.paint.UNLABELED``), the source's CRS and transform, and the cluster palette as its colour table
  (QGIS shows the cluster colours without styling).
- A PNG keeps its georeferencing in a GDAL PAM sidecar ``<name>.png.aux.xml`` (``<SRS>`` WKT and
  ``<GeoTransform>``): GDAL, and so rasterio and QGIS, read both from it. A world file (``.pgw``) would carry
  only the transform, not the CRS.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from affine import Affine

from alps.io.atomic import atomic_output
from alps.limits import check_pixels
from alps.paint import UNLABELED, make_palette

BLOCK = 256
"""GeoTIFF block side (tiles of 256 x 256: GDAL's and QGIS's usual choice)."""

GEOTIFF_PROFILE: dict[str, Any] = {
    "driver": "GTiff",
    "dtype": "uint8",
    "count": 1,
    "tiled": True,
    "blockxsize": BLOCK,
    "blockysize": BLOCK,
    "compress": "deflate",
}


@dataclass(frozen=True)
class Georef:
    """Where a raster lies: its CRS (``EPSG:nnnn`` or WKT) and the affine transform of its pixel (0, 0)."""

    crs: str
    transform: Affine

    def window(self, x: int, y: int) -> Georef:
        """The georeferencing of a window whose top-left pixel is ``(x, y)``."""
        return Georef(self.crs, self.transform @ Affine.translation(x, y))

    def origin_of(self, x: int, y: int) -> Georef:
        """The georeferencing of the raster holding this one at offset ``(x, y)`` (inverse of ``window``)."""
        return Georef(self.crs, self.transform @ Affine.translation(-x, -y))


def raster_georef(path: str | os.PathLike[str]) -> Georef | None:
    """The georeferencing of a GeoTIFF/JPEG2000 with a CRS, else ``None`` (PNG/JPEG, or no CRS)."""
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff", ".jp2"):
        return None
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            if src.crs is None:
                return None
            return Georef(_crs_text(src.crs), src.transform)


def _crs_text(crs: Any) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


def parse_transform(text: str) -> Affine:
    """The manifest's ``"a,b,c,d,e,f"`` transform text as an ``Affine``."""
    values = [float(v) for v in text.split(",")]
    if len(values) != 6:
        raise ValueError(f"a transform has six numbers 'a,b,c,d,e,f', got {text!r}")
    return Affine(*values)


def manifest_georefs(manifest: str | os.PathLike[str]) -> dict[str, Georef]:
    """Per image id, the georeferencing of a manifest's ``crs`` and ``transform`` columns (where set)."""
    from alps.io.manifest import read_manifest

    df = read_manifest(manifest)
    georefs: dict[str, Georef] = {}
    for image_id, crs, transform in zip(df["image_id"], df["crs"], df["transform"], strict=True):
        if isinstance(crs, str) and crs and isinstance(transform, str) and transform:
            georefs[str(image_id)] = Georef(crs, parse_transform(transform))
    return georefs


def colormap(k: int | None = None) -> dict[int, tuple[int, int, int, int]]:
    """The cluster palette as a GDAL colour table (ids 0..254 coloured, 255 unlabeled: transparent)."""
    palette = make_palette()
    table = {i: (int(r), int(g), int(b), 255) for i, (r, g, b) in enumerate(palette)}
    table[UNLABELED] = (0, 0, 0, 0)
    return table


@contextmanager
def label_geotiff(
    path: str | os.PathLike[str], height: int, width: int, georef: Georef, *, nodata: int | None = UNLABELED
) -> Iterator[Any]:
    """Open a label GeoTIFF for windowed writing; it appears at ``path`` whole, only if the block succeeds.

    Yields:
        The open rasterio dataset (write windows with ``dst.write(array, 1, window=...)``).
    """
    import rasterio

    profile = {**GEOTIFF_PROFILE, "height": height, "width": width, "crs": georef.crs}
    profile["transform"] = georef.transform
    if nodata is not None:
        profile["nodata"] = nodata
    # Small rasters cannot have blocks larger than themselves: GDAL wants blocks that are multiples of 16.
    if height < BLOCK or width < BLOCK:
        profile["tiled"] = False
        profile.pop("blockxsize")
        profile.pop("blockysize")
    with atomic_output(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write_colormap(1, colormap())
        yield dst


def pam_xml(georef: Georef) -> str:
    """A GDAL PAM sidecar (``.aux.xml``) text that gives a PNG its CRS and geotransform."""
    from rasterio.crs import CRS

    wkt = CRS.from_user_input(georef.crs).to_wkt()
    t = georef.transform
    # GDAL's geotransform order: (c, a, b, f, d, e).
    geotransform = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    return (
        "<PAMDataset>\n"
        f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(wkt)}</SRS>\n'
        f"  <GeoTransform>{geotransform}</GeoTransform>\n"
        "</PAMDataset>\n"
    )


def write_pam_sidecar(png: str | os.PathLike[str], georef: Georef) -> Path:
    """Write ``<png>.aux.xml`` so that GDAL/QGIS place the PNG; returns the sidecar's path."""
    from alps.io.atomic import atomic_write_text

    sidecar = Path(f"{png}.aux.xml")
    atomic_write_text(sidecar, pam_xml(georef))
    return sidecar


def read_label(path: str | os.PathLike[str]) -> tuple[np.ndarray, Georef | None]:
    """A label raster (GeoTIFF or PNG, with or without a sidecar) and its georeferencing."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such label raster")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except rasterio.errors.RasterioError as exc:
        raise ValueError(f"{path}: not a readable label raster ({exc})") from exc
    with src:
        if src.count != 1:
            raise ValueError(f"{path}: a label raster has one band, this one has {src.count}")
        check_pixels(src.height, src.width, path, "label raster")
        array = src.read(1)
        georef = Georef(_crs_text(src.crs), src.transform) if src.crs is not None else None
    return array, georef


def write_georef_sidecars(pngs: Sequence[str | os.PathLike[str]], georef: Georef) -> None:
    """``write_pam_sidecar`` for each PNG (an image tile and its label share one georeferencing)."""
    for png in pngs:
        write_pam_sidecar(png, georef)
