"""Named classes on an ``alps label`` output: its cluster labels remapped by a class map.

Two ways in, one rule:

- ``alps label IMAGES OUT --class-map map.yaml`` names the labels of the run it makes (``name_label_dir``);
- ``alps apply-class-map OUT NAMED --class-map map.yaml`` names an existing output into a NEW folder beside
  it (``apply_class_map_to_label_output``), in seconds: no mask, feature or cluster is computed again, and
  ``OUT`` is only read.

Each label keeps its format. A GeoTIFF is remapped a block of rows at a time (memory does not grow with the
scene) and keeps its CRS, transform, nodata 255 and tiling, with the classes' colours as its colour table; a
PNG is remapped whole (and keeps a georeferencing sidecar it had). Every named label gets a sidecar that
names its classes (``alps.geo.georef.write_pam_sidecar``: GDAL's category names and a raster attribute
table, what QGIS shows); ``vis/<stem>.png`` is the classes' colour map and ``vis/<stem>.overlay.png`` the
colour map over the image with a legend of class names and pixel shares.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from alps.classmap import CLASS_MAP_COPY, CLASSES_JSON, ClassMap, load_class_map
from alps.figures import write_label_views
from alps.geo.georef import label_geotiff, raster_georef, read_label, write_pam_sidecar
from alps.geo.scene import PREVIEW_SIDE, SceneOptions, open_scene, preview_shape
from alps.io.atomic import atomic_directory, atomic_write_text
from alps.io.images import ImageReadError, write_png
from alps.io.outputs import output_folder
from alps.paint import UNLABELED, palette_array
from alps.pl_dataset import CLASS_MAP_WRITER
from alps.progress import track

log = logging.getLogger(__name__)

LABEL_CARD = "label_card.json"
LABEL_SUFFIXES = (".png", ".tif")
"""The label files of an ``alps label`` output: PNG, or GeoTIFF for georeferenced scenes."""
ROWS = 1024
"""Rows of a GeoTIFF label remapped at a time."""
CARD_LIMIT = 64 << 20
"""The largest label card read (bytes): its inputs list grows with the number of images."""

Preview = Callable[[], NDArray[np.uint8]]
"""Returns an image's RGB pixels at most ``PREVIEW_SIDE`` a side (``alps.geo.scene.Scene.preview``)."""


def read_label_card(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``label_card.json`` of an ``alps label`` output.

    Raises:
        FileNotFoundError: the folder has none.
        ValueError: it is too large or not a JSON object.
    """
    path = Path(folder) / LABEL_CARD
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: is {folder} the output of `alps label`?")
    if path.stat().st_size > CARD_LIMIT:
        raise ValueError(f"{path}: larger than {CARD_LIMIT} bytes; not a label card")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(card, dict) or not isinstance(card.get("k"), int):
        raise ValueError(f"{path}: not a label card (no K)")
    return card


def is_label_output(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is an ``alps label`` output (it has a label card and a ``labels/`` folder)."""
    return (Path(folder) / LABEL_CARD).is_file() and (Path(folder) / "labels").is_dir()


def label_files(labels_dir: Path) -> list[Path]:
    """The label rasters of a ``labels/`` folder (hidden files and sidecars are not labels)."""
    return sorted(
        p
        for p in labels_dir.iterdir()
        if p.suffix.lower() in LABEL_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def scene_previews(card: Mapping[str, Any]) -> dict[str, Preview]:
    """A preview of every input of a label card whose image is still where it was (others: a warning)."""
    tiling = card.get("tiling") or {}
    options = SceneOptions(int(tiling.get("tile_size", 1024)), int(tiling.get("overlap", 128)))
    bands = card.get("bands")
    previews: dict[str, Preview] = {}
    for entry in card.get("inputs", []):
        try:
            scene = open_scene(str(entry["image_id"]), entry["file"], bands, options)
        except (ImageReadError, KeyError, TypeError, ValueError) as exc:
            log.warning("no overlay for %s: its image cannot be read (%s)", entry.get("image_id"), exc)
            continue
        previews[scene.image_id] = lambda scene=scene: scene.preview(bands)
    return previews


def _remap_geotiff(
    source: Path, target: Path, lut: NDArray[np.uint8], palette: Sequence[Sequence[int]]
) -> Any:
    """Remap a label GeoTIFF block by block; returns its pixel histogram (256 bins)."""
    import rasterio
    from rasterio.windows import Window

    counts = np.zeros(256, dtype=np.int64)
    georef = raster_georef(source)
    with rasterio.open(source) as src:
        if src.count != 1 or src.dtypes[0] != "uint8" or georef is None:
            raise ValueError(f"{source}: not a label GeoTIFF of alps label (one uint8 band with a CRS)")
        with label_geotiff(target, src.height, src.width, georef, nodata=src.nodata, palette=palette) as dst:
            for row in range(0, src.height, ROWS):
                window = Window(0, row, src.width, min(ROWS, src.height - row))
                mapped = lut[src.read(1, window=window)]
                dst.write(mapped, 1, window=window)
                counts += np.bincount(mapped.ravel(), minlength=256)
    return counts


def _preview(label_path: Path) -> NDArray[np.uint8]:
    """A label at most ``PREVIEW_SIDE`` a side (nearest neighbour)."""
    import rasterio

    with rasterio.open(label_path) as src:
        return src.read(1, out_shape=preview_shape(src.height, src.width, PREVIEW_SIDE))


def _remap_one(
    source: Path, target: Path, lut: NDArray[np.uint8], names: Sequence[str], palette: Sequence[Sequence[int]]
) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """One label remapped into ``target`` with its class-name sidecar; its histogram and preview."""
    if source.suffix.lower() == ".tif":
        counts = _remap_geotiff(source, target, lut, palette)
        write_pam_sidecar(target, None, names, palette)
        return counts, _preview(target)
    label, georef = read_label(source)  # a PNG, with the georeferencing of its sidecar if it has one
    if label.dtype != np.uint8:
        raise ValueError(f"{source}: not a single-channel uint8 label ({label.dtype}, {label.shape})")
    mapped = lut[label]
    write_png(target, mapped)
    write_pam_sidecar(target, georef, names, palette)
    shape = preview_shape(*mapped.shape, PREVIEW_SIDE)
    preview = mapped if mapped.shape == shape else np.asarray(Image.fromarray(mapped).resize(shape[::-1]))
    return np.bincount(mapped.ravel(), minlength=256), preview


def remap_labels(
    labels_dir: Path,
    labels_out: Path,
    vis_out: Path,
    class_map: ClassMap,
    previews: Mapping[str, Preview],
) -> NDArray[np.int64]:
    """Write every label of ``labels_dir`` as ``class_map``'s classes into ``labels_out`` (and ``vis_out``).

    Returns:
        The pixel histogram (256 bins) of all named labels.
    """
    lut = class_map.lut()
    names, colours = list(class_map.names), class_map.palette()
    palette = palette_array(colours)
    total = np.zeros(256, dtype=np.int64)
    files = label_files(labels_dir)
    if not files:
        raise ValueError(f"{labels_dir} holds no label (*.png, *.tif)")
    labels_out.mkdir(parents=True, exist_ok=True)
    for source in track(files, "class map", "label"):
        counts, preview = _remap_one(source, labels_out / source.name, lut, names, colours)
        write_label_views(vis_out, source.stem, preview, counts, names, palette, previews.get(source.stem))
        total += counts
    return total


def _map_entry(class_map: ClassMap, counts: NDArray[np.int64]) -> dict[str, Any]:
    """The ``class_map`` entry of a label card: the map's summary and the named classes' pixels."""
    total = int(counts.sum())
    return {
        **class_map.summary(),
        "class_pixels": counts[: len(class_map.names)].tolist(),
        "coverage": float(total - counts[UNLABELED]) / total if total else 0.0,
    }


def _classes_json(class_map: ClassMap) -> str:
    return json.dumps({"classes": list(class_map.names), "palette": class_map.palette()}, indent=2) + "\n"


def name_label_dir(
    out_dir: str | os.PathLike[str], class_map: ClassMap, previews: Mapping[str, Preview] | None = None
) -> dict[str, Any]:
    """Turn the cluster labels of an ``alps label`` folder into ``class_map``'s classes, in place.

    ``labels/`` and ``vis/`` are rebuilt beside and swapped in whole; ``classes.json`` and a copy of the map
    (``class_map.yaml``) are written. The cluster labels are not kept: ``alps paint`` regenerates them from
    the folder's masks, features and cluster model, and the map turns them into these labels again.

    Arguments:
        out_dir: the ``alps label`` folder (its build folder, while ``alps label`` runs).
        class_map: the validated map.
        previews: per label stem, its image's preview (overlays are drawn where one is given).

    Returns:
        The ``class_map`` entry of the label card (the map's summary and the new classes' pixel counts).
    """
    out = Path(out_dir)
    # Both folders built beside their targets and swapped in whole (alps.io.atomic); vis first, labels last.
    with atomic_directory(out / "labels") as labels, atomic_directory(out / "vis") as vis:
        counts = remap_labels(out / "labels", labels, vis, class_map, previews or {})
    copy = out / CLASS_MAP_COPY
    if not (copy.exists() and copy.samefile(class_map.path)):  # a rerun may pass the copy itself
        shutil.copyfile(class_map.path, copy)
    atomic_write_text(out / CLASSES_JSON, _classes_json(class_map))
    return _map_entry(class_map, counts)


def apply_class_map_to_label_output(
    source_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    class_map_path: str | os.PathLike[str],
) -> dict[str, Any]:
    """Write a NEW folder with the labels of an ``alps label`` output as the named classes of a class map.

    ``OUT/labels/`` (PNG or GeoTIFF, as the source's, with class-name sidecars), ``OUT/vis/`` (colour maps
    and overlays with a legend of class names), ``classes.json``, the map's copy and ``label_card.json``:
    the source's card with the ``class_map`` entry that ``alps label --class-map`` would have written, and
    ``named_from``. The source is only read; masks, features and the cluster model stay there.

    Arguments:
        source_dir: an ``alps label`` output with cluster labels (made without ``--class-map``).
        out_dir: the new folder (built beside, renamed into place); an existing one is replaced only if
            it is empty or this command's recorded earlier output (``alps.io.outputs``).
        class_map_path: the YAML class map; it must name every cluster id ``0..K-1`` of the source.

    Returns:
        The new label card.

    Raises:
        ValueError: the source already holds named classes, the map does not fit the source's K, or a
            label is not a label raster.
        OutputSetError: the output is, holds or lies inside the source, or holds what this command did not
            record as its own.
    """
    source, out = Path(source_dir), Path(out_dir)
    card = read_label_card(source)
    if "class_map" in card:
        raise ValueError(
            f"{source} holds named classes already (made with the map {card['class_map'].get('file')}); "
            "apply a map to the cluster labels of an `alps label` run made without --class-map"
        )
    class_map = load_class_map(class_map_path, int(card["k"]))
    src = source.resolve()
    # A class map never edits a labeling; only this command's earlier output is replaced (alps.io.outputs).
    with output_folder(out, CLASS_MAP_WRITER, inputs=[source, class_map.path]) as tmp:
        counts = remap_labels(source / "labels", tmp / "labels", tmp / "vis", class_map, scene_previews(card))
        shutil.copyfile(class_map.path, tmp / CLASS_MAP_COPY)
        (tmp / CLASSES_JSON).write_text(_classes_json(class_map))
        new_card = {**card, "class_map": _map_entry(class_map, counts), "named_from": str(src)}
        new_card.pop("gallery", None)  # the gallery stays with the source's masks
        (tmp / LABEL_CARD).write_text(json.dumps(new_card, indent=2) + "\n")
    return new_card
