"""Geospatial in and out: georeferenced labels, scenes of any size (tiles + mosaic), polygons.

- ``alps.geo.georef``: CRS/transform from rasters and manifests; label GeoTIFFs; PNG ``.aux.xml`` sidecars.
- ``alps.geo.scene``: windowed reading, tiling and nearest-centre mosaicking inside ``alps label``.
- ``alps.geo.mosaic``: ``alps mosaic``, one label per scene from the tile labels of a ``prepare folder`` set.
- ``alps.geo.vectorize``: ``alps vectorize``, label rasters to GeoPackage/GeoJSON polygons.
"""
