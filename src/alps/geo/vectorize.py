"""``alps vectorize``: a label raster to polygons (GeoPackage or GeoJSON), one per connected region.

Regions are 4-connected runs of one label value (``rasterio.features.shapes``); unlabeled pixels (255, the
GeoTIFF's nodata) make no polygon. Each polygon carries its label value, ``area`` (in CRS units squared, or
pixels for a label without georeferencing) and, where the labels' vocabulary names its values,
``class_name``. The value's field is ``class_id`` where names are known (a class map's labels, a model's
prediction, ``--classes``), else ``cluster_id`` (k-means clusters).
Polygons are in the labels' CRS; the file is written by pyogrio (GDAL), atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from alps.geo.georef import read_class_names as raster_class_names
from alps.geo.georef import read_label
from alps.io.cards import card_strings, read_json_object
from alps.io.outputs import check_separate, file_problem, output_file
from alps.paint import UNLABELED
from alps.progress import track

log = logging.getLogger(__name__)

DRIVERS = {"gpkg": "GPKG", "geojson": "GeoJSON"}
"""``--format`` choices and their GDAL drivers."""
LAYER = "labels"
WRITER = "alps vectorize"
"""The vector file's writer (``alps.io.outputs``): only its own earlier file is replaced."""


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Names of label ids 0..n-1 from a JSON with a ``classes`` list (classes.json, a label or dataset card).

    Raises:
        ValueError: the file has no ``classes`` list of strings.
    """
    names = card_strings(read_json_object(path, "class list"), "classes", path)
    if names is None:
        raise ValueError(f"{path}: expected a JSON object with a 'classes' list of names")
    return names


def _default_class_names(labels: Path) -> list[str] | None:
    """The names the label raster's own sidecar gives its values (``alps.geo.georef.write_pam_sidecar``:
    named labels of a class map or a model), else the ``classes.json`` beside ``labels/``."""
    names = raster_class_names(labels)
    if names is not None:
        return names
    classes = labels.parent.parent / "classes.json"
    return read_class_names(classes) if classes.is_file() else None


def vectorize(
    labels: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    simplify: float = 0.0,
    min_area: float = 0.0,
    classes: Sequence[str] | None = None,
    layer: str = LAYER,
) -> dict[str, Any]:
    """Write the polygons of a label raster.

    Arguments:
        labels: a label GeoTIFF (or PNG, with or without ``.aux.xml``) of ``alps label``/``alps mosaic``.
        out: the vector file; its format is ``fmt`` or, by default, its suffix (``.geojson``/``.json``:
            GeoJSON, anything else: GeoPackage).
        fmt: ``gpkg`` or ``geojson``.
        simplify: Douglas-Peucker tolerance in CRS units (topology-preserving per polygon); 0 keeps the
            pixel outlines.
        min_area: drop polygons smaller than this (CRS units squared; pixels without georeferencing).
        classes: names of label ids 0..n-1 (default: the label's class-name sidecar, else the
            ``classes.json`` beside ``labels/``, where there is one).
        layer: the layer name.

    Returns:
        A summary: polygons written and dropped, CRS, driver.

    Raises:
        ValueError: an unknown format, a negative tolerance or area, or a raster with several bands.
    """
    import shapely
    from pyogrio.raw import write as write_vector
    from rasterio.features import shapes

    labels, out = Path(labels), Path(out)
    if fmt is None:
        fmt = "geojson" if out.suffix.lower() in (".geojson", ".json") else "gpkg"
    if fmt not in DRIVERS:
        raise ValueError(f"unknown vector format {fmt!r}; choose one of {sorted(DRIVERS)}")
    if simplify < 0 or min_area < 0:
        raise ValueError(f"--simplify and --min-area must be >= 0, got {simplify} and {min_area}")
    if not labels.is_file():
        raise FileNotFoundError(f"{labels}: no such label raster")
    check_separate(out, [labels], WRITER)
    problem = file_problem(out, WRITER)  # before the work, not after it
    if problem is not None:
        raise ValueError(f"{WRITER} will not replace {problem}; move it away or choose another output")
    array, georef = read_label(labels)
    if array.dtype != np.uint8:
        raise ValueError(f"{labels}: expected a uint8 label raster (255 = unlabeled), got {array.dtype}")
    if georef is None:
        log.warning("%s has no CRS: polygons are in pixel coordinates (x right, y down)", labels)
    transform = georef.transform if georef is not None else Affine.identity()
    names = list(classes) if classes is not None else _default_class_names(labels)
    polygons, values = [], []
    regions = shapes(array, mask=array != UNLABELED, connectivity=4, transform=transform)
    for geometry, value in track(regions, "polygons", "polygon"):
        polygons.append(shapely.geometry.shape(geometry))
        values.append(int(value))
    geoms = np.asarray(polygons, dtype=object)
    ids = np.asarray(values, dtype=np.int32)
    if simplify > 0 and len(geoms):
        geoms = shapely.simplify(geoms, simplify, preserve_topology=True)
    areas = shapely.area(geoms) if len(geoms) else np.zeros(0)
    keep = (areas >= min_area) & ~shapely.is_empty(geoms) if len(geoms) else np.zeros(0, bool)
    geoms, ids, areas = geoms[keep], ids[keep], areas[keep]
    fields = ["class_id" if names is not None else "cluster_id", "area"]
    field_data: list[np.ndarray] = [ids, np.asarray(areas, dtype=np.float64)]
    if names is not None:
        fields.append("class_name")
        field_data.append(np.asarray([names[i] if i < len(names) else "" for i in ids], dtype=object))
    crs = None
    if georef is not None:
        from rasterio.crs import CRS

        crs = CRS.from_user_input(georef.crs).to_wkt()
    with output_file(out, WRITER, inputs=[labels]) as tmp:
        tmp.unlink()  # GDAL creates the file itself; an empty file is not a GeoPackage
        write_vector(
            tmp,
            shapely.to_wkb(geoms) if len(geoms) else np.zeros(0, dtype=object),
            field_data,
            fields,
            layer=layer,
            driver=DRIVERS[fmt],
            geometry_type="Polygon",
            crs=crs,
            # GeoPackage 1.2: read without warnings by the GDAL of Debian 12 / QGIS 3.28 LTR too.
            dataset_options={"VERSION": "1.2"} if fmt == "gpkg" else None,
        )
    return {
        "polygons": len(geoms),
        "dropped": int((~keep).sum()) if len(keep) else 0,
        "crs": georef.crs if georef else None,
        "driver": DRIVERS[fmt],
        "layer": layer,
    }
