"""``alps mosaic``: one label raster per scene from the tile labels of a ``prepare folder`` dataset.

``prepare folder`` cuts each large image into overlapping tiles and records every tile's window
(``window_x/y/w/h``), source file, CRS and transform in the manifest. Labeled tile by tile (``alps paint`` /
the workflow's PL dataset, all tiles clustered by one k-means), the tiles are put back together here with
the rule of ``alps label``: each scene pixel comes from the tile whose centre is nearest
(``alps.geo.scene.nearest_centre_cells``), so the borders of the tiles, where segments are cut, are never
used and no seam shows. A georeferenced scene becomes ``<scene>.tif`` (GeoTIFF, its CRS and transform,
nodata 255), any other ``<scene>.png``; the scene name is the source path with ``__`` for ``/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from alps.geo.georef import Georef, parse_transform
from alps.geo.scene import Scene, SceneWriter, label_suffix
from alps.io.atomic import atomic_write_text
from alps.io.images import open_image
from alps.io.outputs import output_folder
from alps.io.paths import confined, safe_name
from alps.limits import check_pixels
from alps.paint import colorize
from alps.progress import Progress

WRITER = "alps mosaic"
"""The mosaic folder's writer (``alps.io.outputs``): only an earlier mosaic is replaced."""


def _scene_name(source: str) -> str:
    return "__".join(PurePosixPath(source).with_suffix("").parts)


def mosaic_dataset(
    manifest: str | os.PathLike[str],
    labels_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    split: str | None = None,
) -> dict[str, Any]:
    """Mosaic the tile labels ``labels_dir/<image_id>.png`` of every scene of ``manifest``.

    Arguments:
        manifest: the ``manifest.csv`` of a ``prepare folder`` dataset.
        labels_dir: the tiles' labels: a PL dataset's ``ann_dir/<split>`` or a painted shard's ``labels``.
        out_dir: where ``<scene>.tif|png``, ``vis/<scene>.png`` and ``mosaic_card.json`` go.
        split: only the tiles of this split.

    Returns:
        The mosaic card (scenes, their sizes, tiles and files).

    Raises:
        ValueError: a manifest without sources, a missing or wrongly sized tile label.
    """
    from alps.io.manifest import read_manifest

    df = read_manifest(manifest)
    if split is not None:
        df = df[df["split"] == split]
    if df.empty:
        raise ValueError(f"{manifest}: no tiles{f' in split {split!r}' if split else ''}")
    if (df["source"] == "").any():
        raise ValueError(
            f"{manifest}: rows without a 'source'; mosaic needs the tiles of `alps prepare folder`"
        )
    labels = Path(labels_dir)
    with output_folder(out_dir, WRITER, inputs=[Path(manifest).parent, labels]) as out:
        return _mosaic_into(out, df, Path(manifest), labels)


def _mosaic_into(out: Path, df: Any, manifest: Path, labels: Path) -> dict[str, Any]:
    """``mosaic_dataset``'s work, written into the (empty) folder ``out``."""
    scenes = []
    progress = Progress(len(df), "mosaic", "tile")
    for source, rows in df.groupby("source", sort=True):
        windows = [
            (int(r.window_x), int(r.window_y), int(r.window_w), int(r.window_h)) for r in rows.itertuples()
        ]
        height = max(y + h for _, y, _, h in windows)
        width = max(x + w for x, _, w, _ in windows)
        first = rows.iloc[0]
        georef = None
        if first["crs"] and first["transform"]:
            tile = Georef(first["crs"], parse_transform(first["transform"]))
            georef = tile.origin_of(int(first["window_x"]), int(first["window_y"]))
        name = safe_name(_scene_name(str(source)), manifest, "scene name (its 'source')")
        check_pixels(height, width, manifest, f"scene {name!r}")
        scene = Scene(name, Path(str(source)), height, width, 0, "", [], windows, georef)
        writer = SceneWriter(scene, confined(out, f"{name}{label_suffix(scene)}"))
        try:
            for row, window in zip(rows.itertuples(), windows, strict=True):
                path = confined(labels, f"{row.image_id}.png", source=manifest)
                if not path.is_file():
                    raise ValueError(f"{path}: the label of tile {row.image_id!r} is missing")
                with open_image(path, "label") as im:
                    if (im.height, im.width) != (window[3], window[2]):
                        raise ValueError(
                            f"{path}: label of size {(im.height, im.width)} for a {window[3]}x{window[2]} "
                            "tile window"
                        )
                    label = np.asarray(im)
                writer.put(window, label)
                progress.update()
        except BaseException as exc:
            writer.close(exc)
            raise
        writer.close()
        vis = confined(out, "vis", f"{name}.png")
        vis.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(colorize(writer.preview())).save(vis)
        scenes.append(
            {
                "scene": name,
                "source": str(source),
                "height": height,
                "width": width,
                "tiles": len(windows),
                "file": writer.path.name,
                "crs": georef.crs if georef else None,
            }
        )
    progress.close()
    card = {"manifest": str(manifest), "labels": str(labels), "rule": "nearest tile centre", "scenes": scenes}
    atomic_write_text(out / "mosaic_card.json", json.dumps(card, indent=2) + "\n")
    return card
