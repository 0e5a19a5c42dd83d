"""Georeferencing in and out: read it from a raster or a manifest row, write label GeoTIFFs and PNG sidecars.

- A georeferenced label is a single-band uint8 GeoTIFF: tiled 256 x 256, DEFLATE-compressed, nodata 255
  (``alps.paint.UNLABELED``), the source's CRS and transform, and the cluster palette as its colour table
  (QGIS shows the cluster colours without styling).
- A PNG keeps its georeferencing in a GDAL PAM sidecar ``<name>.png.aux.xml`` (``<SRS>`` WKT and
  ``<GeoTransform>``): GDAL, and so rasterio and QGIS, read both from it. A world file (``.pgw``) would carry
  only the transform, not the CRS.
- A label of named classes (a class map's, a model's) names them in the same kind of sidecar
  (``<name>.tif.aux.xml`` / ``<name>.png.aux.xml``), as GDAL stores them for any format: band 1's
  ``<CategoryNames>`` (GDAL's category names, the labels QGIS gives the colour table's entries) and a
  thematic raster attribute table (value, class name, colour; QGIS 3.30+ shows it as is). GeoTIFF has no
  tag of its own for either: GDAL itself writes them to this sidecar.
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


def colormap(palette: Sequence[Sequence[int]] | None = None) -> dict[int, tuple[int, int, int, int]]:
    """A GDAL colour table: ``palette`` (default: the cluster palette) over ids 0.., 255 transparent."""
    colours = make_palette().tolist()
    for i, colour in enumerate((palette or [])[:UNLABELED]):
        colours[i] = list(colour)
    table = {i: (int(r), int(g), int(b), 255) for i, (r, g, b) in enumerate(colours)}
    table[UNLABELED] = (0, 0, 0, 0)
    return table


@contextmanager
def label_geotiff(
    path: str | os.PathLike[str],
    height: int,
    width: int,
    georef: Georef,
    *,
    nodata: int | None = UNLABELED,
    palette: Sequence[Sequence[int]] | None = None,
) -> Iterator[Any]:
    """Open a label GeoTIFF for windowed writing; it appears at ``path`` whole, only if the block succeeds.

    ``palette`` colours label ids 0.. in its colour table (default: the cluster palette).

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
        dst.write_colormap(1, colormap(palette))
        yield dst


# GDAL's raster attribute table codes (gdal.h: GDALRATFieldType, GDALRATFieldUsage).
_RAT_INTEGER, _RAT_STRING = 0, 2
_RAT_MINMAX, _RAT_NAME, _RAT_RED, _RAT_GREEN, _RAT_BLUE = 5, 2, 6, 7, 8


def _class_band_xml(names: Sequence[str], palette: Sequence[Sequence[int]]) -> list[str]:
    """Band 1's category names and thematic attribute table (value, class, red, green, blue)."""
    fields = [("Value", _RAT_INTEGER, _RAT_MINMAX), ("Class", _RAT_STRING, _RAT_NAME)]
    fields += [(name, _RAT_INTEGER, usage) for name, usage in (("Red", _RAT_RED), ("Green", _RAT_GREEN))]
    fields.append(("Blue", _RAT_INTEGER, _RAT_BLUE))
    lines = ['  <PAMRasterBand band="1">', "    <CategoryNames>"]
    lines += [f"      <Category>{escape(name)}</Category>" for name in names]
    lines += ["    </CategoryNames>", '    <GDALRasterAttributeTable tableType="thematic">']
    lines += [
        f'      <FieldDefn index="{i}"><Name>{name}</Name><Type>{kind}</Type>'
        f"<Usage>{usage}</Usage></FieldDefn>"
        for i, (name, kind, usage) in enumerate(fields)
    ]
    for value, (name, colour) in enumerate(zip(names, palette, strict=True)):
        cells = [str(value), escape(name), *(str(int(c)) for c in colour[:3])]
        lines.append(f'      <Row index="{value}">' + "".join(f"<F>{c}</F>" for c in cells) + "</Row>")
    lines += ["    </GDALRasterAttributeTable>", "  </PAMRasterBand>"]
    return lines


def pam_xml(
    georef: Georef | None,
    names: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
) -> str:
    """A GDAL PAM sidecar (``.aux.xml``) text: a PNG's CRS and geotransform, and/or class names.

    Arguments:
        georef: the raster's georeferencing (only for a format that cannot hold it: PNG), or None.
        names: the names of label values 0..N-1, or None.
        palette: their colours (default: the cluster palette).
    """
    lines = ["<PAMDataset>"]
    if georef is not None:
        from rasterio.crs import CRS

        wkt = CRS.from_user_input(georef.crs).to_wkt()
        t = georef.transform
        # GDAL's geotransform order: (c, a, b, f, d, e).
        geotransform = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
        lines.append(f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(wkt)}</SRS>')
        lines.append(f"  <GeoTransform>{geotransform}</GeoTransform>")
    if names is not None:
        colours = list(palette) if palette is not None else make_palette(max(len(names), 1)).tolist()
        lines += _class_band_xml(names, colours[: len(names)])
    lines.append("</PAMDataset>")
    return "\n".join(lines) + "\n"


def write_pam_sidecar(
    raster: str | os.PathLike[str],
    georef: Georef | None,
    names: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
) -> Path:
    """Write ``<raster>.aux.xml`` (``pam_xml``): GDAL/QGIS then place a PNG and/or name its label values.

    A GeoTIFF carries its own georeferencing: pass ``georef=None`` for it (GDAL would prefer the sidecar's).

    Returns:
        The sidecar's path.
    """
    from alps.io.atomic import atomic_write_text

    sidecar = Path(f"{raster}.aux.xml")
    atomic_write_text(sidecar, pam_xml(georef, names, palette))
    return sidecar


SIDECAR_LIMIT = 4 << 20
"""The largest ``.aux.xml`` read back (bytes): class names of 254 values take a few kB."""


def read_class_names(raster: str | os.PathLike[str]) -> list[str] | None:
    """The category names of band 1 in ``<raster>.aux.xml`` (``write_pam_sidecar``), or None if it has none.

    Raises:
        ValueError: the sidecar is larger than ``SIDECAR_LIMIT`` or is not XML.
    """
    from xml.etree import ElementTree

    sidecar = Path(f"{raster}.aux.xml")
    if not sidecar.is_file():
        return None
    if sidecar.stat().st_size > SIDECAR_LIMIT:
        raise ValueError(f"{sidecar}: larger than {SIDECAR_LIMIT} bytes; not a label's sidecar")
    try:
        root = ElementTree.fromstring(sidecar.read_bytes())
    except ElementTree.ParseError as exc:
        raise ValueError(f"{sidecar}: not a GDAL sidecar ({exc})") from exc
    band = root.find("PAMRasterBand[@band='1']/CategoryNames")
    if band is None:
        return None
    return [category.text or "" for category in band.findall("Category")]


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
