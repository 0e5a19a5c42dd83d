"""The labeled task the fine-tunings learn: NWPU VHR-10's 150 labeled images, split once and for all.

``prepare_nwpu`` converts them (COCO polygons rasterised, a seeded split stratified by rarest class:
100 train, 50 eval). What the fine-tunings then see is a folder of hard links to that dataset:

* the whole train split, evaluated on the eval split (the experiment);
* with ``label_fraction < 1``, a stratified subset of the train split (the same images in every arm and
  seed), still evaluated on the eval split;
* with ``holdout``, the train split cut in two (stratified, the split's seed + 1): the fine-tunings train
  on one part and are evaluated on the other, so that settings can be chosen without the eval split.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from alps.datasets._layout import CARD_NAME, CLASSES_NAME
from alps.datasets.nwpu import DATASET_NAME, prepare_nwpu, stratified_split
from alps.effect.layout import WRITER, EffectLayout
from alps.io.outputs import output_folder
from alps.pl_dataset import link_or_copy

SUBSET_NAME = "nwpu-vhr10-finetune"
"""The card's ``dataset`` of a fine-tuning folder."""


def _ids(root: Path, split: str) -> list[str]:
    return sorted(p.stem for p in (root / "img_dir" / split).glob("*.png"))


def _present(root: Path, split: str, ids: list[str]) -> dict[str, set[int]]:
    return {
        i: set(np.unique(np.asarray(Image.open(root / "ann_dir" / split / f"{i}.png"))).tolist()) - {0}
        for i in ids
    }


def _card_matches(path: Path, wanted: dict[str, Any]) -> bool:
    if not path.is_file():
        return False
    card = json.loads(path.read_text())
    return all(card.get(k) == v for k, v in wanted.items())


def prepare_job(layout: EffectLayout, labeled_raw: Path) -> dict[str, Any]:
    """Convert the labeled set and link the fine-tuning folder (each unless done); returns the split sizes."""
    settings = layout.settings
    base = layout.labeled
    wanted = {
        "dataset": DATASET_NAME,
        "split_seed": settings.split_seed,
        "val_fraction": settings.val_fraction,
    }
    target = layout.finetune_data
    choice = {"dataset": SUBSET_NAME, "label_fraction": settings.label_fraction, "holdout": settings.holdout}
    if _card_matches(base / CARD_NAME, wanted) and _card_matches(target / CARD_NAME, choice):
        return {"skipped": True}
    if not _card_matches(base / CARD_NAME, wanted):
        prepare_nwpu(labeled_raw, base, val_fraction=settings.val_fraction, seed=settings.split_seed)
    train = _ids(base, "train")
    present = _present(base, "train", train)
    if settings.holdout:
        parts = stratified_split(present, settings.val_fraction, settings.split_seed + 1)
        chosen = {
            "train": [(i, "train") for i in train if parts[i] == "train"],
            "val": [(i, "train") for i in train if parts[i] == "val"],
        }
    else:
        chosen = {"train": [(i, "train") for i in train], "val": [(i, "val") for i in _ids(base, "val")]}
    if settings.label_fraction < 1:
        kept = {i for i, _ in chosen["train"]}
        drop = stratified_split(
            {i: present[i] for i in kept}, 1 - settings.label_fraction, settings.split_seed
        )
        chosen["train"] = [(i, s) for i, s in chosen["train"] if drop[i] == "train"]
    with output_folder(target, WRITER, inputs=[base]) as built:
        for split, members in chosen.items():
            for image_id, source_split in members:
                for folder in ("img_dir", "ann_dir"):
                    source = base / folder / source_split / f"{image_id}.png"
                    link_or_copy(source, built / folder / split / f"{image_id}.png")
        shutil.copy2(base / CLASSES_NAME, built / CLASSES_NAME)
        images = {split: [i for i, _ in members] for split, members in chosen.items()}
        (built / CARD_NAME).write_text(json.dumps({**choice, "images": images}, indent=2) + "\n")
    return {split: len(ids) for split, ids in images.items()}
