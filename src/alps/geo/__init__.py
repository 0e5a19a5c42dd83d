"""Geospatial in and out: georeferenced labels, scenes of any size (tiles + mosaic), polygons.

- ``alps.geo.georef``: CRS/transform from rasters and manifests; label GeoTIFFs; PNG ``.aux.xml`` sidecars.
- ``alps.geo.scene``: scenes of any size opened once, cut into tiles (``alps.tiling``) and read by windows.
- ``alps.geo.writer``: one label raster per scene, mosaicked from its tiles (nearest tile centre).
- ``alps.geo.painting``: ``alps label``'s painting of every tile into its scene's label, with previews.
- ``alps.geo.mosaic``: ``alps mosaic``, one label per scene from the tile labels of a ``prepare folder`` set.
- ``alps.geo.vectorize``: ``alps vectorize``, label rasters to GeoPackage/GeoJSON polygons.
"""
