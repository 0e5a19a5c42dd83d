"""What GDAL itself (which QGIS reads rasters with) sees in a label: category names, attribute table, CRS.

rasterio has no API for category names or attribute tables, and no GDAL Python bindings or ``gdalinfo`` are
installed here, so this calls the GDAL C library that rasterio's wheel ships (``rasterio.libs``) through
ctypes. Tests skip where no such library is found (a rasterio built on a system GDAL).
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Any

import pytest
import rasterio


@functools.lru_cache(maxsize=1)
def _gdal() -> Any:
    libs = Path(rasterio.__file__).parent.parent / "rasterio.libs"
    found = sorted(libs.glob("libgdal*.so*")) if libs.is_dir() else []
    if not found:
        pytest.skip("rasterio's bundled libgdal was not found: cannot ask GDAL for category names")
    gdal = ctypes.CDLL(str(found[0]))
    gdal.GDALAllRegister()
    signatures = {
        "GDALOpen": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]),
        "GDALClose": (None, [ctypes.c_void_p]),
        "GDALGetRasterBand": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]),
        "GDALGetProjectionRef": (ctypes.c_char_p, [ctypes.c_void_p]),
        "GDALGetRasterCategoryNames": (ctypes.POINTER(ctypes.c_char_p), [ctypes.c_void_p]),
        "GDALGetDefaultRAT": (ctypes.c_void_p, [ctypes.c_void_p]),
        "GDALRATGetRowCount": (ctypes.c_int, [ctypes.c_void_p]),
        "GDALRATGetColumnCount": (ctypes.c_int, [ctypes.c_void_p]),
        "GDALRATGetNameOfCol": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]),
        "GDALRATGetValueAsString": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(gdal, name)
        function.restype, function.argtypes = restype, argtypes
    return gdal


def gdal_label_info(path: str | Path) -> dict[str, Any]:
    """Band 1's category names and attribute table, and the dataset's CRS (WKT), as GDAL reports them.

    The projection is asked for first, as QGIS does when it opens a layer: GDAL's GeoTIFF driver reads the
    ``.aux.xml`` sidecar (where it keeps category names) on that first access.
    """
    gdal = _gdal()
    dataset = gdal.GDALOpen(str(path).encode(), 0)
    assert dataset, f"GDAL cannot open {path}"
    try:
        wkt = (gdal.GDALGetProjectionRef(dataset) or b"").decode()
        band = gdal.GDALGetRasterBand(dataset, 1)
        names, pointer = [], gdal.GDALGetRasterCategoryNames(band)
        while pointer and pointer[len(names)]:
            names.append(pointer[len(names)].decode())
        rat = gdal.GDALGetDefaultRAT(band)
        columns = (
            [gdal.GDALRATGetNameOfCol(rat, c).decode() for c in range(gdal.GDALRATGetColumnCount(rat))]
            if rat
            else []
        )
        rows = (
            [
                [gdal.GDALRATGetValueAsString(rat, r, c).decode() for c in range(len(columns))]
                for r in range(gdal.GDALRATGetRowCount(rat))
            ]
            if rat
            else []
        )
    finally:
        gdal.GDALClose(dataset)
    return {"crs_wkt": wkt, "categories": names, "rat_columns": columns, "rat_rows": rows}
