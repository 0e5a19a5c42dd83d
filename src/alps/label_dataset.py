"""An ``alps label`` output as a pseudo-label (PL) dataset: the one step between labeling and pre-training.

``alps label`` gives one label per scene, of any size, beside the scenes it read; mmsegmentation trains on
image/label tiles of a fixed size in ``img_dir/<split>`` and ``ann_dir/<split>``. ``label_output_dataset``
cuts each scene and its label into the same ``tile_size`` windows (``alps.geo.scene``'s reader: the same
bands, stretch and no-data rule as the labeling, one tile in memory at a time), leaves out tiles with no
labeled pixel (a no-data strip, a cloud mask), and splits the rest into train and val by a keyed hash of
each tile's id (``val_fraction``, ``seed``): the same tiles go to val however many scenes there are and in
whatever order. The labels are the output's as they are: cluster ids, or the named classes of a class map
(``alps label --class-map``, ``alps apply-class-map``), whose names and colours the card carries to
mmsegmentation (``alps.train.configs.dataset_spec("pl", ...)``).

Tiles do not overlap (``overlap`` 0), except the last window of a row or column, which is shifted back to
end at the scene's border (``tile_windows``), so train and val share at most that strip.
Georeferenced tiles get ``.aux.xml`` sidecars (GDAL PAM) in ``img_dir`` and ``ann_dir``, as ``alps
pl-dataset`` writes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from numpy.typing import NDArray

from alps import __version__
from alps.geo.georef import Georef, write_georef_sidecars
from alps.geo.scene import Scene, SceneOptions, Window, open_scene
from alps.io.images import write_png
from alps.io.outputs import output_folder
from alps.io.paths import confined, safe_name
from alps.named_labels import read_label_card
from alps.paint import UNLABELED, colorize, palette_array
from alps.pl_dataset import CLASS_MAP_WRITER
from alps.pl_dataset import WRITER as PL_WRITER
from alps.progress import Progress

TILE_SIZE = 512
"""Default tile side: the pre-training crop (``alps.train.configs``, 512)."""
VAL_FRACTION = 0.2
"""Default share of the labeled tiles kept for validation."""


def val_score(seed: int, tile_id: str) -> float:
    """A tile's place in ``[0, 1)``, from a keyed hash of its id: tiles below ``val_fraction`` are val."""
    digest = hashlib.blake2b(tile_id.encode("utf-8"), key=str(seed).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _read_label_window(path: Path, window: Window) -> NDArray[np.uint8]:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window as RioWindow

    x, y, w, h = window
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG label of a plain image
        with rasterio.open(path) as src:
            return src.read(1, window=RioWindow(x, y, w, h))


def _names(card: Mapping[str, Any]) -> tuple[int, list[str] | None, list[list[int]] | None]:
    """``(num_classes, names, palette)``: the class map's classes, or K unnamed clusters."""
    named = card.get("class_map")
    if named:
        names = [str(n) for n in named["classes"]]
        return len(names), names, palette_array().tolist()[: len(names)]
    return int(card["k"]), None, None


def _scenes(source: Path, card: Mapping[str, Any], tile_size: int) -> list[tuple[Scene, Path]]:
    # Names from the card (a file anyone may edit) stay inside the output's labels/ folder.
    files = {
        Path(name).stem: confined(source, "labels", name, source=source)
        for name in card.get("label_files", [])
    }
    # Where the labeling placed an image by its manifest row (the file has no CRS), the card says so.
    georefs = {
        str(entry["image_id"]): Georef(entry["crs"], Affine(*entry["transform"]))
        for entry in card.get("inputs", [])
        if entry.get("crs") and entry.get("transform")
    }
    scenes = []
    for entry in card.get("inputs", []):
        image_id = str(entry["image_id"])
        if image_id not in files or not files[image_id].is_file():
            raise ValueError(f"{source}/labels has no label of {image_id!r}; is {source} complete?")
        options = SceneOptions(tile_size, 0, georefs)
        scene = open_scene(image_id, entry["file"], card.get("bands"), options)
        scenes.append((scene, files[image_id]))
    if not scenes:
        raise ValueError(f"{source}/label_card.json lists no labeled scene")
    return scenes


def _assign_splits(scores: dict[str, float], val_fraction: float) -> dict[str, str]:
    """train/val per tile id; with two tiles or more, each split gets at least one."""
    splits = {tile: "val" if score < val_fraction else "train" for tile, score in scores.items()}
    if len(scores) >= 2 and val_fraction > 0:
        ranked = sorted(scores, key=scores.__getitem__)
        if "val" not in splits.values():
            splits[ranked[0]] = "val"
        if "train" not in splits.values():
            splits[ranked[-1]] = "train"
    return splits


def label_output_dataset(
    source_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    tile_size: int = TILE_SIZE,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
) -> dict[str, Any]:
    """Write a PL dataset (train and val tiles) of an ``alps label`` output; see the module docstring.

    Arguments:
        source_dir: the ``alps label`` output (or a named one: ``alps apply-class-map``); only read. Its
            scenes are read from where the label card says they are.
        out_dir: the dataset folder to create or replace (built beside, swapped in whole).
        tile_size: tile side in pixels (scenes smaller than it are one tile).
        val_fraction: share of the labeled tiles in val, in ``[0, 1)``.
        seed: keys the split.

    Returns:
        The dataset card.

    Raises:
        ValueError: bad options, a scene without its label, or no labeled pixel in any tile.
        ImageReadError: a scene cannot be read any more.
    """
    if tile_size < 32 or not 0 <= val_fraction < 1:
        raise ValueError(f"need tile_size >= 32 and 0 <= val_fraction < 1, got {tile_size}, {val_fraction}")
    source = Path(source_dir)
    card = read_label_card(source)
    num_classes, names, colours = _names(card)
    scenes = _scenes(source, card, tile_size)
    palette = palette_array(colours)
    tiles = [(scene, label, window) for scene, label in scenes for window in scene.windows]
    counts = {"train": np.zeros(256, np.int64), "val": np.zeros(256, np.int64)}
    kept: dict[str, int] = {"train": 0, "val": 0}
    # The one output rule (alps.io.outputs): only an earlier PL dataset is replaced, never the source.
    inputs = [source, *{Path(str(entry.get("file"))).parent for entry in card.get("inputs", [])}]
    with output_folder(out_dir, PL_WRITER, inputs=inputs, replaces=[CLASS_MAP_WRITER]) as tmp:
        # First pass: which tiles hold a labeled pixel (labels are small; only one tile in memory at once).
        labeled = [
            (scene, label_path, window)
            for scene, label_path, window in tiles
            if (_read_label_window(label_path, window) != UNLABELED).any()
        ]
        splits = _assign_splits(
            {scene.tile_id(w): val_score(seed, scene.tile_id(w)) for scene, _, w in labeled}, val_fraction
        )
        if not labeled:
            raise ValueError(f"{source}: no tile holds a labeled pixel; nothing to train on")
        with Progress(len(labeled), "PL dataset tiles", "tile") as progress:
            for scene, label_path, window in labeled:
                split = splits[scene.tile_id(window)]
                label = _read_label_window(label_path, window)
                _write_tile(tmp, split, scene, window, label, card.get("bands"), palette)
                counts[split] += np.bincount(label.ravel(), minlength=256)
                kept[split] += 1
                progress.update()
        total = counts["train"] + counts["val"]
        out_card: dict[str, Any] = {
            "images": len(labeled),
            "split": "train",
            "images_per_split": kept,
            "num_classes": num_classes,
            "variant": "classes" if names is not None else "clusters",
            "labeler": "alps",
            "ignore_index": UNLABELED,
            "class_pixels": total[:num_classes].tolist(),
            "coverage": float(total.sum() - total[UNLABELED]) / float(total.sum()),
            "tiles": {"tile_size": tile_size, "overlap": 0, "empty_left_out": len(tiles) - len(labeled)},
            "val": {"fraction": val_fraction, "seed": seed, "rule": "blake2b(tile id, key=seed) < fraction"},
            "source_label_dir": str(source.resolve()),
            "alps_version": __version__,
        }
        if card.get("bands"):
            out_card["bands"] = card["bands"]
        if names is not None:
            out_card.update(classes=names, palette=colours, class_map=card["class_map"])
        (tmp / "dataset_card.json").write_text(json.dumps(out_card, indent=2) + "\n")
    return out_card


def _write_tile(
    root: Path,
    split: str,
    scene: Scene,
    window: Window,
    label: NDArray[np.uint8],
    bands: Any,
    palette: NDArray[np.uint8],
) -> None:
    """One tile's image, label and colour view (and their georeferencing sidecars) in the dataset."""
    name = f"{safe_name(scene.tile_id(window), scene.path, 'tile id')}.png"
    write_png(confined(root, "img_dir", split, name), scene.read_tile(window, bands))
    write_png(confined(root, "ann_dir", split, name), label)
    write_png(confined(root, "vis", split, name), colorize(label, palette))
    if scene.georef is not None:
        pngs = [confined(root, sub, split, name) for sub in ("img_dir", "ann_dir")]
        write_georef_sidecars(pngs, scene.georef.window(window[0], window[1]))
