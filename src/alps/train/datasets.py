"""The datasets a training run reads: ``DatasetSpec`` and the standard setting of each kind
(``dataset_spec``), or the kind read from a folder's files (``detect_dataset``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alps.datasets import atlas, isaid, potsdam
from alps.datasets._layout import CARD_NAME, CLASSES_NAME
from alps.io.cards import card_int, card_strings, read_json_object
from alps.names import DATASET_KINDS
from alps.paint import make_palette
from alps.train.scales import DEFAULT_CROPS, pl_crop, pl_source_kind

IGNORE_INDEX = 255
"""Label value that no loss or metric counts: unlabeled pseudo-label pixels, Potsdam's reduced boundary."""


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset as the config builder needs it.

    Attributes:
        kind: ``"isaid"``, ``"potsdam"``, ``"pl"`` (pseudo-labels), ``"folder"`` (classes.json, e.g. the
            demo) or ``"medical"``.
        data_root: the folder holding ``img_dir/<split>`` and ``ann_dir/<split>``.
        classes: class names, indexed by label value after ``reduce_zero_label``.
        palette: one RGB colour per class.
        crop_size: training crop ``(h, w)``.
        scale: the ``RandomResize``/``Resize`` target scale ``(w, h)`` (mmseg's convention).
        dataset_type: the mmseg dataset class (``"BaseSegDataset"`` for data-built metainfo).
        reduce_zero_label: label 0 is "ignore" and every other label shifts down by one (Potsdam).
        img_suffix: image file suffix.
        seg_map_suffix: label file suffix.
        train_split: the ``img_dir``/``ann_dir`` sub-folder trained on.
        eval_split: the sub-folder evaluated on; None: no evaluation (a PL dataset without a val split).
        metrics: mmseg ``IoUMetric`` metrics (``"mIoU"``, ``"mDice"``).
    """

    kind: str
    data_root: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    crop_size: tuple[int, int]
    scale: tuple[int, int]
    dataset_type: str = "BaseSegDataset"
    reduce_zero_label: bool = False
    img_suffix: str = ".png"
    seg_map_suffix: str = ".png"
    train_split: str = "train"
    eval_split: str | None = "val"
    metrics: tuple[str, ...] = ("mIoU",)

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts."""
        return len(self.classes)


# One source of truth for class names and colours: the converters that write these datasets.
ISAID_CLASSES = isaid.CLASSES
"""mmseg's ``iSAIDDataset.METAINFO`` classes (16, label 0 = background)."""

POTSDAM_CLASSES = potsdam.CLASSES
"""mmseg's ``PotsdamDataset.METAINFO`` classes (6, after ``reduce_zero_label`` drops the boundary 0)."""

MEDICAL_CLASSES = atlas.CLASSES
"""The paper's medical task (ATLAS liver MRI, Table 6): Dice and IoU per class; label 0 is background."""

MEDICAL_DATASETS: frozenset[str] = frozenset({atlas.DATASET_NAME})
"""``dataset`` values of a ``dataset_card.json`` that ``detect_dataset`` reads as ``medical``."""


def _palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """The project's fixed cluster palette (``alps.paint.make_palette``), so model outputs match ``vis/``."""
    return tuple(tuple(int(v) for v in row) for row in make_palette(max(n, 1))[:n])  # type: ignore[misc]


def _pl_names(
    root: Path, card: dict[str, Any], k: int
) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """Class names and palette of a PL dataset: its card's ``classes``/``palette`` (a class map's, or a
    SAMRS* vocabulary), else its ``classes.json``, else ``cluster_00``... and the cluster palette. Ids past
    the named ones (``--num-classes`` padding) are called ``unused_NN``."""
    info = card
    if "classes" not in info and (root / CLASSES_NAME).is_file():
        info = read_json_object(root / CLASSES_NAME, "class list")
    if "classes" not in info:
        return tuple(f"cluster_{i:02d}" for i in range(k)), _palette(k)
    names = [str(c) for c in card_strings(info, "classes", root) or []]
    if len(names) > k:
        raise ValueError(f"{root}: {len(names)} class names for num_classes {k}")
    names += [f"unused_{i:02d}" for i in range(len(names), k)]
    palette = list(_palette(k))
    for i, colour in enumerate(info.get("palette", [])[:k]):
        palette[i] = tuple(int(v) for v in colour)  # type: ignore[assignment]
    return tuple(names), tuple(palette)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def _eval_split(data_root: Path, wanted: str | None, fallbacks: Sequence[str] = ("val",)) -> str | None:
    """``wanted``, else the first of ``fallbacks`` that has an ``ann_dir/<split>`` folder, else None."""
    if wanted is not None:
        return wanted
    for split in fallbacks:
        if (data_root / "ann_dir" / split).is_dir():
            return split
    return None


def dataset_spec(
    kind: str,
    data_root: str | os.PathLike[str],
    crop_size: int | Sequence[int] | None = None,
    scale: int | Sequence[int] | None = None,
    eval_split: str | None = None,
) -> DatasetSpec:
    """The standard setting of a dataset kind.

    * ``isaid``: mmseg's ``iSAIDDataset`` (16 classes, ``*_instance_color_RGB.png`` labels as written by
      mmseg's ``tools/dataset_converters/isaid.py``), 896 crops of images resized to 896.
    * ``potsdam``: mmseg's ``PotsdamDataset`` (6 classes, ``reduce_zero_label``), 512 crops.
    * ``pl``: a pseudo-label dataset (``alps.pl_dataset.assemble_pl_dataset``): K = ``num_classes`` of its
      ``dataset_card.json``, classes named by the card (a class map's or SAMRS* names; ``alps.classmap``),
      else ``cluster_00``..., 255 ignored; the crop and scale of the dataset it labels (the card's
      ``source_dataset``: iSAID-PL 896 as iSAID, ATLAS-PL 256), else 512 (SAMRS-PL, image folders).
    * ``folder``: any mmseg-layout folder with a ``classes.json`` (``{"classes": [...], "palette": [...]}``),
      e.g. the demo (3 classes, 256 px tiles, 256 crops).
    * ``medical``: a ``folder`` whose default classes are background/liver/tumour, evaluated with IoU and
      Dice per class, on ``val`` or, where there is none, on ``test`` (the ATLAS converter,
      ``alps.datasets.atlas``, splits patients into train and test only, as the paper).

    Arguments:
        kind: one of the kinds above.
        data_root: the dataset folder.
        crop_size: training crop side (or ``(h, w)``); default per kind.
        scale: resize target (or ``(w, h)``); default: the crop size (iSAID 896, Potsdam 512, as mmseg;
            ``DEFAULT_CROPS``).
        eval_split: split evaluated after training; default ``val`` where ``ann_dir/val`` exists (always
            for isaid/potsdam; for medical, else ``test`` where ``ann_dir/test`` exists), else none.

    Returns:
        The ``DatasetSpec``.

    Raises:
        ValueError: unknown kind, or a card/classes file without the needed keys.
        FileNotFoundError: the card or classes file is missing.
    """
    root = Path(data_root)
    if kind == "isaid":
        crop = _pair(crop_size or DEFAULT_CROPS[kind])
        return DatasetSpec(
            kind=kind,
            data_root=str(root),
            classes=ISAID_CLASSES,
            palette=isaid.PALETTE,
            crop_size=crop,
            scale=_pair(scale or crop[::-1]),
            dataset_type="iSAIDDataset",
            # The converter (datasets/isaid.py) writes ann_dir/<split>/<name>.png, index labels.
            seg_map_suffix=".png",
            eval_split=eval_split or "val",
        )
    if kind == "potsdam":
        crop = _pair(crop_size or DEFAULT_CROPS[kind])
        return DatasetSpec(
            kind=kind,
            data_root=str(root),
            classes=POTSDAM_CLASSES,
            palette=((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)),
            crop_size=crop,
            scale=_pair(scale or crop[::-1]),
            dataset_type="PotsdamDataset",
            reduce_zero_label=True,
            eval_split=eval_split or "val",
        )
    if kind == "pl":
        card_path = root / CARD_NAME
        if not card_path.is_file() and (root / "label_card.json").is_file():
            raise ValueError(
                f"{root} is an `alps label` output, not a PL dataset: make one of it first, "
                f"`alps pl-dataset {root} PL_DIR` (tiles of its scenes and labels, train and val)"
            )
        card = read_json_object(card_path, "dataset card")
        if "num_classes" not in card:
            raise ValueError(f"{card_path} has no num_classes; is {root} a PL dataset?")
        k = card_int(card, "num_classes", card_path, 1, IGNORE_INDEX)
        # The scale of the dataset it labels (its card's source_dataset), else the PL default.
        crop = _pair(crop_size or pl_crop(pl_source_kind(card)))
        classes, palette = _pl_names(root, card, k)
        return DatasetSpec(
            kind=kind,
            data_root=str(root),
            classes=classes,
            palette=palette,
            crop_size=crop,
            scale=_pair(scale or crop[::-1]),
            # The labeled split (one name); a card listing several (train and val) trains on train.
            train_split=card["split"] if isinstance(card.get("split"), str) else "train",
            eval_split=_eval_split(root, eval_split),
        )
    if kind in ("folder", "medical"):
        classes_path = root / CLASSES_NAME
        if classes_path.is_file():
            info = read_json_object(classes_path, "class list")
            if "classes" not in info:
                raise ValueError(f"{classes_path} has no 'classes' list")
            classes = tuple(str(c) for c in info["classes"])
            palette = (
                tuple(tuple(int(v) for v in p) for p in info["palette"])
                if "palette" in info
                else _palette(len(classes))
            )
        elif kind == "medical":
            classes, palette = MEDICAL_CLASSES, atlas.PALETTE
        else:
            raise FileNotFoundError(f"{classes_path} is missing; it names the classes of {root}")
        crop = _pair(crop_size or DEFAULT_CROPS[kind])
        return DatasetSpec(
            kind=kind,
            data_root=str(root),
            classes=classes,  # type: ignore[arg-type]
            palette=palette,  # type: ignore[arg-type]
            crop_size=crop,
            scale=_pair(scale or crop[::-1]),
            eval_split=_eval_split(root, eval_split, ("val", "test") if kind == "medical" else ("val",)),
            metrics=("mIoU", "mDice") if kind == "medical" else ("mIoU",),
        )
    raise ValueError(f"unknown dataset kind {kind!r}; choose one of {', '.join(DATASET_KINDS)}")


def detect_dataset(
    data_root: str | os.PathLike[str],
    crop_size: int | Sequence[int] | None = None,
    scale: int | Sequence[int] | None = None,
    eval_split: str | None = None,
) -> DatasetSpec:
    """``dataset_spec`` for a folder whose kind is read from its files.

    A ``dataset_card.json`` written by a medical converter (its ``dataset`` is in ``MEDICAL_DATASETS``:
    ``prepare_dataset("atlas", ...)``) makes it ``medical``; else a ``classes.json`` makes it a ``folder``
    (the demo, or any user dataset); else a ``dataset_card.json`` with ``num_classes`` makes it a ``pl``
    dataset. iSAID and Potsdam are not guessed (their folders carry neither file): name them with
    ``dataset_spec``.

    Returns:
        The ``DatasetSpec``.

    Raises:
        ValueError: the folder has neither file.
    """
    root = Path(data_root)
    card_path = root / CARD_NAME
    card = read_json_object(card_path, "dataset card") if card_path.is_file() else {}
    # The ATLAS converter also writes a classes.json; its card tells it apart from a plain folder dataset.
    if isinstance(card, dict) and card.get("dataset") in MEDICAL_DATASETS:
        return dataset_spec("medical", root, crop_size, scale, eval_split)
    if (root / CLASSES_NAME).is_file():
        return dataset_spec("folder", root, crop_size, scale, eval_split)
    if isinstance(card, dict) and "num_classes" in card:
        return dataset_spec("pl", root, crop_size, scale, eval_split)
    raise ValueError(
        f"{root}: neither {CLASSES_NAME} nor a {CARD_NAME} with num_classes; pass the kind explicitly "
        f"({', '.join(DATASET_KINDS)})"
    )
