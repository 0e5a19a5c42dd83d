"""Placeholder inputs for a dry run of a study that cannot run here (``make paper-dryrun``).

A Snakemake dry run of ``config/paper.yaml`` needs what its checks and checkpoints read: the raw folders,
the SAM checkpoint and the detector's box folder must exist, and the shard jobs can only be planned once
each dataset's ``manifest.csv`` (the output of the ``prepare_dataset`` checkpoint) lists its images. This
module writes all of that as empty stand-ins under a scratch folder, with each prepared manifest listing
as many images as the real dataset yields, so that the dry run's job counts are the full study's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from alps.io.manifest import write_manifest

PAPER_IMAGE_COUNTS: dict[str, dict[str, int]] = {
    # iSAID cut into 896 px patches with 384 px overlap (alps.datasets.isaid, as mmsegmentation's
    # converter): about 34k / 11.6k, an estimate (no raw iSAID here); only the shard arithmetic uses it.
    "isaid": {"train": 33978, "val": 11644},
    # The paper's merged SAMRS pool (FAST + SIOR + SOTA), split 7:3 (its Sec. "Datasets").
    "samrs": {"train": 73560, "val": 31526},
    # mmsegmentation's Potsdam tiles (512 px), as alps.datasets.potsdam cuts them.
    "potsdam": {"train": 3456, "val": 2016},
    # ATLAS 2023: 60 training and 30 test patients; about 64 axial slices each (an estimate).
    "atlas": {"train": 3840, "test": 1920},
}
"""Images per split of each converter's prepared dataset, for the dry run's shard arithmetic (SAMRS and
Potsdam as the paper and the converter give them; iSAID and ATLAS estimated)."""

DEFAULT_COUNTS: dict[str, int] = {"train": 100, "val": 25}


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def placeholder_manifest(dataset_dir: Path, counts: Mapping[str, int]) -> Path:
    """Write ``dataset_dir/manifest.csv`` listing ``counts[split]`` windows of one empty stand-in image."""
    image = dataset_dir / "placeholder" / "image.png"
    _touch(image)
    rows = [
        {
            "image_id": f"{split}_{index:06d}",
            "split": split,
            "image_path": "placeholder/image.png",
            "height": 512,
            "width": 512,
            "source": "placeholder",
            "window_x": 0,
            "window_y": 0,
            "window_w": 512,
            "window_h": 512,
            "label_path": "",
            "crs": "",
            "transform": "",
        }
        for split, count in counts.items()
        for index in range(count)
    ]
    return write_manifest(pd.DataFrame(rows), dataset_dir / "manifest.csv")


def write_placeholders(
    config: Mapping[str, Any],
    root: str | os.PathLike[str],
    counts: Mapping[str, Mapping[str, int]] = PAPER_IMAGE_COUNTS,
) -> list[Path]:
    """Create the stand-in inputs of ``config`` under ``root`` (the dry run's working directory).

    Arguments:
        config: a workflow configuration (relative paths in it are taken relative to ``root``).
        root: the scratch folder; never a real results folder (the manifests would shadow real ones).
        counts: images per split, by converter name (``DEFAULT_COUNTS`` for converters not listed).

    Returns:
        The files and folders created.
    """
    base = Path(root)
    created: list[Path] = []
    results = base / config["results_dir"]
    for name, dataset in config["datasets"].items():
        if dataset.get("raw_dir"):
            raw = base / dataset["raw_dir"]
            raw.mkdir(parents=True, exist_ok=True)
            created.append(raw)
        converter_counts = counts.get(dataset["converter"], DEFAULT_COUNTS)
        created.append(placeholder_manifest(results / "datasets" / name, converter_counts))
    masks = config.get("labeling", {}).get("masks", {})
    if masks.get("sam", {}).get("checkpoint"):
        checkpoint = base / masks["sam"]["checkpoint"]
        _touch(checkpoint)
        created.append(checkpoint)
    if masks.get("coco", {}).get("json"):
        coco = base / masks["coco"]["json"]
        _touch(coco)
        created.append(coco)
    for pl_set in (config.get("pseudo_labels") or {}).values():
        boxes = (pl_set.get("boxes") or {}).get("dir")
        if boxes:
            (base / boxes).mkdir(parents=True, exist_ok=True)
            created.append(base / boxes)
    return created
