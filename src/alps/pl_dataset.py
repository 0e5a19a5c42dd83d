"""Painted shards gathered into a pseudo-labeled dataset in mmsegmentation's layout (``alps pl-dataset``).

The dataset holds exactly the labeled images: every image of each labeled split must have its painted
label in the shards (a missing one is an error naming it, never a smaller dataset), labels of images
outside the splits are refused, and hidden files (an interrupted writer's temporaries) are never read as
data. The folder is built beside its target and swapped in whole, replacing only an earlier PL dataset
(``alps.io.outputs.output_folder``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from alps import __version__
from alps.geo.georef import Georef, write_georef_sidecars
from alps.io.cards import card_int, card_strings, read_json_object
from alps.io.images import read_image, read_label_array
from alps.io.outputs import output_folder
from alps.io.paths import confined, safe_name
from alps.paint import CLUSTER_LABELER, UNLABELED, colorize
from alps.progress import track
from alps.sharding import ImageItem

log = logging.getLogger(__name__)

PAINT_STATS = "paint_stats.json"
WRITER = "alps pl-dataset"
"""The PL dataset folder's writer (``alps.io.outputs``): only an earlier PL dataset is replaced."""
CLASS_MAP_WRITER = "alps apply-class-map"
"""The writer of a PL dataset with a class map's named classes (``alps.classmap``)."""

SOURCE_CARD = "dataset_card.json"
"""The card a converter writes beside a prepared dataset's manifest (``alps.datasets._layout``)."""


def source_dataset_name(source: str | os.PathLike[str]) -> str | None:
    """The ``dataset`` its converter's card names for a labeled source, or None.

    Arguments:
        source: what was labeled: a prepared dataset's ``manifest.csv`` (its card lies beside it) or a
            folder of images (no card).

    Returns:
        E.g. ``alps-isaid``; None for a folder of images, or a manifest without a readable card. A PL
        dataset records it (``source_dataset``) so that its pre-training takes that dataset's scale.
    """
    path = Path(source)
    card = (path.parent if path.suffix.lower() == ".csv" else path) / SOURCE_CARD
    try:
        name = read_json_object(card, "dataset card").get("dataset")
    except (OSError, ValueError):
        return None
    return name if isinstance(name, str) else None


def link_or_copy(source: Path, target: Path, *, follow_links: bool = False) -> None:
    """Hard-link ``source`` at ``target`` (no second copy of the bytes), or copy it across filesystems.

    Arguments:
        source: a file.
        target: where it goes (its folder is created).
        follow_links: take what a symbolic link ``source`` points to (the user's own images); otherwise a
            link is refused, so that a planted link in a dataset or painted shard never brings a file from
            elsewhere into an output.

    Raises:
        ValueError: ``source`` is a symbolic link (without ``follow_links``) or not a file.
    """
    if source.is_symlink() and not follow_links:
        raise ValueError(
            f"{source} is a symbolic link; datasets and painted shards hold files, and what a link points "
            "to is never copied into an output: replace it by the file"
        )
    if not source.is_file():
        raise ValueError(f"{source} is not a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _shard_vocabulary(
    stats: dict[str, Any], binary: bool, path: object = PAINT_STATS
) -> tuple[int, str, list[str] | None]:
    """``(k, labeler, class names)`` a painted shard declares; the binary variant has 2 unnamed ids."""
    labeler = str(stats.get("labeler", CLUSTER_LABELER))
    if binary:
        return 2, labeler, None
    return card_int(stats, "k", path, 1, UNLABELED), labeler, card_strings(stats, "classes", path)


def _painted_labels(paint_dir: Path, binary: bool) -> dict[str, Path]:
    """Painted label files of one shard by image id; hidden files (temporaries) are not labels."""
    label_dir = paint_dir / ("binary" if binary else "labels")
    if not label_dir.is_dir():
        raise ValueError(f"{paint_dir}: no {label_dir.name}/ folder; paint the shard again")
    return {
        p.stem: p
        for p in sorted(label_dir.iterdir())
        if p.suffix == ".png" and not p.name.startswith(".") and (p.is_file() or p.is_symlink())
    }


def _copy_image(source: Path, target: Path, bands: Sequence[int] | None) -> None:
    """The image as it was labeled: linked when it is a PNG read as is, else re-encoded with ``bands``."""
    if source.suffix.lower() == ".png" and not bands:
        link_or_copy(source, target, follow_links=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(read_image(source, bands=bands)).save(target)


def _missing_message(missing: Sequence[str], split: str, paint_dirs: Sequence[Path]) -> str:
    shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    return (
        f"{len(missing)} image(s) of split {split!r} have no painted label in "
        f"{[str(p) for p in paint_dirs]}: {shown}; the painted shards are incomplete or from another "
        "sharding: paint them again (snakemake reruns them when their inputs changed)"
    )


def _one_vocabulary(paint_dirs: Sequence[Path], binary: bool) -> tuple[int, str, list[str] | None]:
    """The vocabulary all shards share; every shard must be complete (its stats are written last)."""
    vocabulary: tuple[int, str, list[str] | None] | None = None
    for paint_dir in paint_dirs:
        stats_path = paint_dir / PAINT_STATS
        if not stats_path.is_file():
            raise ValueError(f"{paint_dir}: no {PAINT_STATS}; the shard is incomplete: paint it again")
        shard_vocabulary = _shard_vocabulary(read_json_object(stats_path, "paint card"), binary, stats_path)
        if vocabulary is None:
            vocabulary = shard_vocabulary
        elif shard_vocabulary != vocabulary:
            # Label ids of different labelings mean different things: mixing them is never intended.
            raise ValueError(
                f"{paint_dir} and {paint_dirs[0]} come from different labelings (k, labeler, classes: "
                f"{shard_vocabulary} vs {vocabulary}); gather shards of one labeling"
            )
    if vocabulary is None:
        raise ValueError("no painted shards given")
    return vocabulary


def _split_labels(
    split: str, items: Sequence[ImageItem], paint_dirs: Sequence[Path], binary: bool
) -> dict[str, tuple[Path, Path]]:
    """``{image id: (label file, its shard)}`` of one split: exactly its images, each once."""
    wanted = {item.image_id for item in items}
    labels: dict[str, tuple[Path, Path]] = {}
    for paint_dir in paint_dirs:
        for image_id, label_path in _painted_labels(paint_dir, binary).items():
            if image_id not in wanted:
                raise ValueError(f"{label_path}: image {image_id!r} is not in split {split!r} of the source")
            labels[image_id] = (label_path, paint_dir)
    missing = sorted(wanted - set(labels))
    if missing:
        raise ValueError(_missing_message(missing, split, paint_dirs))
    return labels


def _copy_label(label_path: Path, paint_dir: Path, out: Path, split: str, binary: bool) -> np.ndarray:
    """Link the label and its colour view into ``out``; returns its pixel histogram (256 bins)."""
    link_or_copy(label_path, confined(out, "ann_dir", split, label_path.name))
    label = read_label_array(label_path)
    vis_target = confined(out, "vis", split, label_path.name)
    if binary:
        vis_target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(colorize(label)).save(vis_target)
    else:
        link_or_copy(paint_dir / "vis" / label_path.name, vis_target)
    return np.bincount(label.ravel(), minlength=256)


def assemble_pl_dataset(
    items: Sequence[ImageItem] | Mapping[str, Sequence[ImageItem]],
    paint_dirs: Sequence[str | os.PathLike[str]] | Mapping[str, Sequence[str | os.PathLike[str]]],
    out_dir: str | os.PathLike[str],
    *,
    split: str = "train",
    binary: bool = False,
    num_classes: int | None = None,
    bands: Sequence[int] | None = None,
    georefs: Mapping[str, Georef] | None = None,
    inputs: Sequence[str | os.PathLike[str]] = (),
    source_dataset: str | None = None,
) -> dict[str, Any]:
    """Gather painted shards into a pseudo-labeled dataset in mmsegmentation's layout.

    Layout: ``img_dir/<split>/<id>.png`` (the source image as it was labeled: hard-linked where possible,
    else copied, re-encoded to PNG when it is not one or ``bands`` chose its channels),
    ``ann_dir/<split>/<id>.png`` (the pseudo-label, or the binary variant with ``binary``),
    ``vis/<split>/<id>.png`` and ``dataset_card.json``. Built beside ``out_dir`` and swapped in whole, so
    an interrupted run never leaves a half-built dataset.

    The card's ``num_classes`` is the shards' ``k`` (k-means clusters, or the size of a SAMRS* class
    vocabulary; 2 for ``binary``) unless ``num_classes`` overrides it; ``labeler`` says what made the labels
    (``alps`` or ``samrs-star``) and ``classes`` names the label ids where the shards name them.

    Arguments:
        items: the labeled images (their ids name the painted labels); several splits as a mapping
            ``{split: items}`` (the paper's PL datasets have train and val, labeled with one model).
        paint_dirs: painted shard folders (``alps paint`` or ``alps box-labels``), all from one labeling;
            a mapping ``{split: folders}`` with several splits.
        out_dir: the dataset folder to create or replace.
        split: the split folder of a single ``items`` sequence.
        binary: use the binary variant as labels.
        num_classes: declare this many label ids instead (the paper's SAMRS-PL declares 64 with k=46);
            must be at least the largest painted label + 1.
        bands: the 1-based bands the images were labeled with (``labeling.bands``); the images are
            written with the same bands so that ``img_dir`` holds what was labeled.
        georefs: per image id, the tile's CRS and transform (``alps.geo.georef.manifest_georefs``): its
            image and label PNGs get a ``.aux.xml`` sidecar that places them in GIS tools.
        inputs: more inputs ``out_dir`` must stay out of (the images' folder or their manifest's), besides
            the painted shards.
        source_dataset: the labeled dataset's name (``source_dataset_name``), recorded in the card: a
            pre-training takes that dataset's crop and scale (``alps.train.configs.pl_source_kind``).

    Returns:
        The dataset card.

    Raises:
        ValueError: an image of a split without its painted label (all named), a label without its image,
            a shard without its ``paint_stats.json``, shards of different labelings (k, labeler or
            classes differ), or a painted label id >= the declared number of classes.
    """
    if num_classes is not None and not 1 <= num_classes <= UNLABELED:
        raise ValueError(
            f"num_classes must be in 1..{UNLABELED} ({UNLABELED} marks unlabeled), got {num_classes}"
        )
    splits_items = dict(items) if isinstance(items, Mapping) else {split: items}
    splits_dirs = (
        {s: [Path(p) for p in d] for s, d in paint_dirs.items()}
        if isinstance(paint_dirs, Mapping)
        else {s: [Path(p) for p in paint_dirs] for s in splits_items}
    )
    if set(splits_dirs) != set(splits_items):
        raise ValueError(
            f"painted shards for splits {sorted(splits_dirs)}, images for {sorted(splits_items)}"
        )
    vocabulary = _one_vocabulary([p for dirs in splits_dirs.values() for p in dirs], binary)
    counts_total = np.zeros(256, dtype=np.int64)
    per_split: dict[str, int] = {}
    shards = [p for dirs in splits_dirs.values() for p in dirs]
    # A set's PL dataset comes from alps apply-class-map when it has a class map: either replaces the other.
    with output_folder(out_dir, WRITER, inputs=[*shards, *inputs], replaces=[CLASS_MAP_WRITER]) as tmp:
        for split_name, split_items in splits_items.items():
            safe_name(split_name, "the split", "split name")
            labels = _split_labels(split_name, split_items, splits_dirs[split_name], binary)
            by_id = {item.image_id: item for item in split_items}
            for image_id, (label_path, paint_dir) in track(sorted(labels.items()), f"PL {split_name}", "img"):
                image_target = confined(tmp, "img_dir", split_name, f"{image_id}.png", source=label_path)
                _copy_image(by_id[image_id].path, image_target, bands)
                counts_total += _copy_label(label_path, paint_dir, tmp, split_name, binary)
                if georefs and image_id in georefs:
                    label_target = tmp / "ann_dir" / split_name / label_path.name
                    write_georef_sidecars([image_target, label_target], georefs[image_id])
            per_split[split_name] = len(labels)
        if sum(per_split.values()) == 0:
            raise ValueError(f"no images to label in splits {sorted(splits_items)}")
        k, labeler, classes = vocabulary
        painted = np.flatnonzero(counts_total[:UNLABELED])
        needed = int(painted[-1]) + 1 if painted.size else 0
        declared = k if num_classes is None else num_classes
        if needed > declared:
            if num_classes is not None:
                raise ValueError(
                    f"--num-classes {num_classes} is smaller than the largest painted label + 1 ({needed}); "
                    f"pass at least {needed}"
                )
            raise ValueError(
                f"painted label {needed - 1} is outside the shards' {k} label ids: the painted shards are "
                "stale or corrupt; paint them again"
            )
        covered = int(counts_total.sum() - counts_total[UNLABELED])
        total = int(counts_total.sum())
        card: dict[str, Any] = {
            "images": sum(per_split.values()),
            # The split a pre-training trains on (alps.train.configs reads it); the others are for validation.
            "split": "train" if "train" in per_split else next(iter(per_split)),
            "num_classes": declared,
            "variant": "binary" if binary else ("classes" if classes is not None else "clusters"),
            "labeler": labeler,
            "ignore_index": UNLABELED,
            "class_pixels": counts_total[:declared].tolist(),
            "coverage": covered / total if total else 0.0,
            "alps_version": __version__,
        }
        if len(per_split) > 1:
            card["images_per_split"] = per_split
        if bands:
            card["bands"] = list(bands)
        if classes is not None:
            card["classes"] = classes
        if source_dataset is not None:
            card["source_dataset"] = source_dataset
        (tmp / "dataset_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
