"""One label raster per scene, mosaicked from its painted tiles (``label``, ``predict``, ``mosaic``).

Each tile fills only its cell of the mosaic: the scene pixels nearest its centre
(``alps.tiling.mosaic_cells``). A georeferenced scene's label is a tiled GeoTIFF
(``alps.geo.georef.label_geotiff``) written cell by cell; any other scene's is a PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from alps.geo.georef import label_geotiff, write_pam_sidecar
from alps.geo.scene import PREVIEW_SIDE, Scene
from alps.io.atomic import atomic_output
from alps.paint import UNLABELED
from alps.tiling import Window, crop_to_cell, mosaic_cells, preview_shape


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
