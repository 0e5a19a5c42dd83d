"""Class maps: names for pseudo-classes, written by a researcher after looking at the gallery.

A class map is a YAML file that maps every cluster id of a labeling to a name::

    # pseudo-label set demo-pl, K = 4
    0: building
    1: vegetation
    2: building        # the same name merges clusters 0 and 2
    3: ignore          # `ignore` (any case) paints 255, unlabeled

Rules (pinned by tests):

- every id ``0..K-1`` appears exactly once; ids are integers; ids outside ``0..K-1``, duplicate ids,
  empty or non-string names are errors that name the file, the line and what to do;
- the named classes are numbered ``0..N-1`` in the order their names first appear in the file;
- ``ignore`` maps to 255 (unlabeled), as do pixels that were already 255;
- the file is read with ``yaml.safe_load`` semantics (a safe loader that also rejects duplicate keys).

Applying a map never edits a dataset in place: ``apply_class_map_to_dataset`` writes a new PL dataset
beside the source one, which stays as it was (the unmapped cluster labels remain reproducible from it).
The labels of an ``alps label`` output (PNG or GeoTIFF) are named by ``alps.named_labels``.
"""

from __future__ import annotations

import hashlib
import json
import os
import reprlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray
from PIL import Image

from alps.io.cards import card_int, read_json_object
from alps.io.images import read_label_array
from alps.io.outputs import output_folder
from alps.io.paths import confined
from alps.io.yamlfile import YamlLimitError, load_yaml_text, read_yaml_bytes
from alps.paint import UNLABELED, colorize, make_palette
from alps.pl_dataset import CLASS_MAP_WRITER, link_or_copy
from alps.pl_dataset import WRITER as PL_WRITER

IGNORE_NAME = "ignore"
CLASS_MAP_COPY = "class_map.yaml"
"""The map as it was applied, copied byte for byte beside the labels it made."""
CLASSES_JSON = "classes.json"


class ClassMapError(ValueError):
    """A class map file that cannot be used; the message names the file and the fix."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice (safe_load keeps the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if isinstance(key, (list, dict)):
            raise ClassMapError(f"line {line}: key {_short(key)} is not a cluster id")
        if key in seen:
            raise ClassMapError(
                f"line {line}: cluster id {_short(key)} is listed twice (first on line {seen[key]})"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


@dataclass(frozen=True)
class ClassMap:
    """A validated class map.

    Attributes:
        names: the named classes, label id ``i`` = ``names[i]``.
        assignment: cluster id -> label id (0..N-1, or 255 for ``ignore``), for every id ``0..k-1``.
        k: the number of cluster ids the map covers.
        path: the file it was read from.
        sha256: the file's digest (recorded in cards, so a changed map is visible).
    """

    names: tuple[str, ...]
    assignment: dict[int, int]
    k: int
    path: Path
    sha256: str

    def lut(self) -> NDArray[np.uint8]:
        """A 256-entry lookup table: ``lut[cluster id]`` is the new label; 255 and unlisted ids -> 255."""
        table = np.full(256, UNLABELED, dtype=np.uint8)
        for cluster, label in self.assignment.items():
            table[cluster] = label
        return table

    def name_of(self, cluster: int) -> str:
        """The name a cluster id is given (``ignore`` for dropped clusters)."""
        label = self.assignment[cluster]
        return IGNORE_NAME if label == UNLABELED else self.names[label]

    def palette(self) -> list[list[int]]:
        """Colours of the named classes: the project's fixed palette over the new label ids."""
        return make_palette(max(len(self.names), 1))[: len(self.names)].tolist()

    def summary(self) -> dict[str, Any]:
        """What the cards record about the map."""
        return {
            "file": self.path.name,
            "sha256": self.sha256,
            "k": self.k,
            "classes": list(self.names),
            "clusters": {str(c): self.name_of(c) for c in sorted(self.assignment)},
        }


def _short(value: Any) -> str:
    """A bounded repr: a value from the file may be a huge structure."""
    return reprlib.repr(value)


def _fail(path: Path, message: str) -> ClassMapError:
    return ClassMapError(f"class map {path}: {message}")


def _parse(path: Path, data: bytes) -> dict[Any, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(path, f"not UTF-8 text ({exc})") from exc
    try:
        # A SafeLoader subclass (no object tags), its aliases' expansion bounded (alps.io.yamlfile).
        value = load_yaml_text(text, path, _UniqueKeyLoader)
    except ClassMapError as exc:
        raise _fail(path, str(exc)) from exc
    except YamlLimitError as exc:
        raise ClassMapError(str(exc)) from exc
    except yaml.YAMLError as exc:
        raise _fail(path, f"not valid YAML ({exc})") from exc
    if not isinstance(value, dict) or not value:
        raise _fail(path, "expected a mapping of cluster ids to names, e.g. `0: building`")
    return value


def load_class_map(path: str | os.PathLike[str], k: int | None) -> ClassMap:
    """Read and validate a class map for a labeling with ``k`` cluster ids.

    Arguments:
        path: the YAML file.
        k: the labeling's number of cluster ids; ``None`` checks only the file itself (K unknown yet,
            e.g. ``k: auto`` when the workflow is parsed): ids must then be exactly ``0..max id``.

    Raises:
        ClassMapError: the file is missing, unreadable, or breaks a rule of the module docstring.
    """
    path = Path(path)
    if not path.is_file():
        raise ClassMapError(f"class map {path} does not exist")
    try:
        data = read_yaml_bytes(path)
    except YamlLimitError as exc:
        raise ClassMapError(f"class map {exc}") from exc
    value = _parse(path, data)
    names: list[str] = []
    assignment: dict[int, int] = {}
    for key, name in value.items():
        if isinstance(key, bool) or not isinstance(key, int):
            raise _fail(path, f"key {_short(key)} is not a cluster id (an integer 0..K-1)")
        if key < 0 or key >= (k if k is not None else UNLABELED):
            bound = f"0..{k - 1}" if k is not None else f"0..{UNLABELED - 1}"
            raise _fail(path, f"cluster id {key} does not exist (this labeling's ids are {bound})")
        if not isinstance(name, str) or not name.strip():
            raise _fail(path, f"cluster {key}: the name must be a non-empty string, got {_short(name)}")
        name = name.strip()
        if name.lower() == IGNORE_NAME:
            assignment[key] = UNLABELED
            continue
        if name not in names:
            names.append(name)
        assignment[key] = names.index(name)
    size = k if k is not None else max(assignment) + 1
    missing = sorted(set(range(size)) - set(assignment))
    if missing:
        raise _fail(
            path,
            f"cluster ids {_ranges(missing)} are not mapped; give every id 0..{size - 1} a name "
            f"(`{IGNORE_NAME}` drops a cluster)",
        )
    if not names:
        raise _fail(path, f"every cluster is `{IGNORE_NAME}`; name at least one class")
    if len(names) >= UNLABELED:
        raise _fail(
            path, f"{len(names)} classes; at most {UNLABELED - 1} fit a uint8 label (255 = unlabeled)"
        )
    return ClassMap(tuple(names), assignment, size, path, hashlib.sha256(data).hexdigest())


def _ranges(ids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` (a long list of missing ids stays readable)."""
    parts: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


def remap_label(label: NDArray[np.uint8], lut: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Apply a class map's lookup table to one uint8 label."""
    return lut[label]


def _remap_folder(
    source: Path, labels_out: Path, vis_out: Path | None, lut: NDArray[np.uint8]
) -> NDArray[np.int64]:
    """Remap every ``*.png`` label of ``source``; returns the pixel histogram (256 bins) of the result."""
    counts = np.zeros(256, dtype=np.int64)
    labels_out.mkdir(parents=True, exist_ok=True)
    if vis_out is not None:
        vis_out.mkdir(parents=True, exist_ok=True)
    palette = make_palette()
    for label_path in sorted(p for p in source.glob("*.png") if not p.name.startswith(".")):
        label = read_label_array(label_path)
        if label.dtype != np.uint8 or label.ndim != 2:
            raise ValueError(f"{label_path}: not a single-channel uint8 label ({label.dtype}, {label.shape})")
        mapped = remap_label(label, lut)
        Image.fromarray(mapped).save(labels_out / label_path.name)
        sidecar = label_path.with_name(f"{label_path.name}.aux.xml")
        if sidecar.is_file():  # the tile's georeferencing (alps.geo.georef), the same for the new label
            shutil.copyfile(sidecar, labels_out / sidecar.name)
        if vis_out is not None:
            Image.fromarray(colorize(mapped, palette)).save(vis_out / label_path.name)
        counts += np.bincount(mapped.ravel(), minlength=256)
    return counts


def _classes_json(class_map: ClassMap) -> str:
    return json.dumps({"classes": list(class_map.names), "palette": class_map.palette()}, indent=2) + "\n"


def clear_class_map(out_dir: str | os.PathLike[str]) -> None:
    """Remove the class-map files an earlier ``alps label --class-map`` run wrote (its labels are gone)."""
    for name in (CLASS_MAP_COPY, CLASSES_JSON):
        (Path(out_dir) / name).unlink(missing_ok=True)


def apply_class_map_to_dataset(
    source_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    class_map_path: str | os.PathLike[str],
    *,
    k: int | None = None,
) -> dict[str, Any]:
    """Write a NEW pseudo-label dataset whose labels are the named classes of a class map.

    ``img_dir`` is hard-linked (else copied), ``ann_dir`` and ``vis`` are remapped, every split present is
    kept; the card says ``num_classes`` N, ``classes``, ``palette`` and the map it came from, and
    ``classes.json`` names the classes for mmsegmentation. The source dataset is left untouched.

    Arguments:
        source_dir: a PL dataset (``alps pl-dataset``), with cluster ids as labels.
        out_dir: the new dataset folder (built beside, renamed into place).
        class_map_path: the YAML class map.
        k: the labeling's number of cluster ids (the cluster model's K); default: the card's
            ``num_classes`` (which may be larger than K when ``--num-classes`` padded it).

    Returns:
        The new dataset card.
    """
    source, out = Path(source_dir), Path(out_dir)
    card_path = source / "dataset_card.json"
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path} is missing: is {source} a PL dataset (alps pl-dataset)?")
    card = read_json_object(card_path, "dataset card")
    declared = card_int(card, "num_classes", card_path, 1, UNLABELED)
    if k is not None and k > declared:
        raise ValueError(f"K = {k} but {card_path} declares only {declared} label ids; wrong model?")
    class_map = load_class_map(class_map_path, k if k is not None else declared)
    lut = class_map.lut()
    # Built beside and swapped in whole; a class map never edits a dataset in place, and only an earlier
    # output of this command is replaced (alps.io.outputs).
    with output_folder(out, CLASS_MAP_WRITER, inputs=[source, class_map.path], replaces=[PL_WRITER]) as tmp:
        counts = np.zeros(256, dtype=np.int64)
        ann_dir = source / "ann_dir"
        splits = sorted(p.name for p in ann_dir.iterdir() if p.is_dir()) if ann_dir.is_dir() else []
        if not splits:
            raise ValueError(f"{source}/ann_dir has no split folders: is {source} a PL dataset?")
        for split in splits:
            counts += _remap_folder(
                ann_dir / split, confined(tmp, "ann_dir", split), confined(tmp, "vis", split), lut
            )
            for image in sorted((source / "img_dir" / split).glob("*")):
                if not image.name.startswith("."):
                    link_or_copy(image, confined(tmp, "img_dir", split, image.name))
        total = int(counts.sum())
        n = len(class_map.names)
        new_card = {
            **card,
            "num_classes": n,
            "variant": "classes",
            "classes": list(class_map.names),
            "palette": class_map.palette(),
            "class_pixels": counts[:n].tolist(),
            "coverage": float(total - counts[UNLABELED]) / total if total else 0.0,
            "class_map": {
                **class_map.summary(),
                "source_dataset": str(source),
                "source_num_classes": declared,
            },
        }
        shutil.copyfile(class_map.path, tmp / CLASS_MAP_COPY)
        (tmp / CLASSES_JSON).write_text(_classes_json(class_map))
        (tmp / "dataset_card.json").write_text(json.dumps(new_card, indent=2) + "\n")
    return new_card
