"""SAMRS (SOTA, SIOR, FAST) merged into one image pool and split 7:3, as ALPS's SAMRS-PL does.

SAMRS (Wang et al., NeurIPS 2023) is distributed through OneDrive/Baidu links in
github.com/ViTAE-Transformer/SAMRS, with no fixed archive layout documented there (its own training code reads
``dotav2_1024/trainval/images``, ``dior/JPEGImages-trainval`` and ``fair1m_1024/trainval/images``, with labels
in ``.../hbox_segs_init/gray``-style folders). This converter therefore defines the layout it accepts; move or
rename the downloaded folders into it (one subset per folder or per zip)::

    raw_dir/
        SOTA/images/**/<name>.png|jpg|tif     labels (optional): SOTA/labels/**/<name>.png
        SIOR/images/...                        SIOR/labels/...
        FAST/images/...                        FAST/labels/...

Each ``<SUBSET>`` may instead be ``<SUBSET>.zip`` whose members are ``<SUBSET>/images/...`` (or
``images/...``) and ``.../labels/...``. Subset folder names are matched case-insensitively. A label is
matched to its image by file stem; images without one are kept (empty ``label_path``).

What comes out (ALPS uses the images only; labels are kept for reference):

* ``img_dir/<split>/<subset>_<stem>.<ext>``: the image bytes unchanged (PNG stays PNG, DIOR's JPEGs stay
  JPEG: re-encoding 105k images to PNG would only grow them); every image is fully decoded once, so a
  corrupt file is reported rather than copied.
* ``ann_dir/<split>/<subset>_<stem>.png``: the SAMRS label, its bytes unchanged when it is a PNG.
* the pool of all subsets is sorted by image id, shuffled with ``numpy.random.default_rng(seed)`` and the
  first ``round(val_fraction * n)`` images go to val, the rest to train. With the paper's 105,086 images and
  ``val_fraction=0.3`` that is 73,560 train / 31,526 val, the ALPS paper's counts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from alps.datasets._layout import (
    CARD_NAME,
    IMAGE_DIR,
    LABEL_DIR,
    MANIFEST_NAME,
    DatasetSourceError,
    RawFile,
    RawSource,
    SkipLog,
    building,
    check_same_size,
    decode_image,
    write_json,
)
from alps.io.atomic import atomic_write_bytes
from alps.io.images import write_png
from alps.io.manifest import MANIFEST_COLUMNS, write_manifest
from alps.progress import track

DATASET_NAME = "alps-samrs"
"""Written into ``dataset_card.json``; ``prepare_samrs`` only ever replaces folders that carry it."""

SUBSETS: tuple[str, ...] = ("SOTA", "SIOR", "FAST")
"""The SAMRS subsets (from DOTA-v2.0, DIOR and FAIR1M-2.0)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
VAL_FRACTION = 0.3


def _role(raw: RawFile) -> str | None:
    """``"images"`` or ``"labels"`` from the folder the file sits in (the first such path component)."""
    for part in PurePosixPath(raw.member).parts[:-1]:
        if part.lower() in ("images", "labels"):
            return part.lower()
    return None


def _subset_files(raw: Path, subset: str, source: RawSource) -> list[RawFile]:
    """The files of one subset: ``raw/<subset>/`` (any case) and/or ``raw/<subset>.zip``."""
    files: list[RawFile] = []
    found = False
    for entry in sorted(raw.iterdir()):
        name = entry.name.lower()
        if entry.is_dir() and name == subset.lower():
            files.extend(source.scan(entry))
            found = True
        elif entry.is_file() and name == f"{subset.lower()}.zip":
            files.extend(source.members(entry))
            found = True
    if not found:
        raise DatasetSourceError(
            f"{raw}: no {subset}/ folder or {subset}.zip (expected {subset}/images/... and optionally "
            f"{subset}/labels/...; see docs/datasets.md)"
        )
    return files


def prepare_samrs(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    subsets: Sequence[str] = SUBSETS,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
    on_error: str = "raise",
) -> Path:
    """Merge the SAMRS subsets into one pool, split it train/val, and write images, labels, manifest, card.

    See the module docstring for the raw layout and the output.

    Arguments:
        raw_dir: the folder holding ``SOTA/``, ``SIOR/``, ``FAST/`` (or their zips); never written to.
        out_dir: the dataset folder to create or replace (absent, empty, or a previous SAMRS dataset).
        subsets: which subsets to merge.
        val_fraction: fraction of the pool that goes to val, in (0, 1).
        seed: seed of the shuffle.
        on_error: ``"raise"`` stops at the first bad input; ``"skip"`` leaves the image out and lists it in
            ``skipped.json`` and the card.

    Returns:
        The manifest path, ``out_dir / "manifest.csv"``.

    Raises:
        DatasetSourceError: a bad input (missing subset, truncated zip, undecodable image or label,
            image/label size mismatch, duplicate image), with ``on_error="raise"``.
        FileExistsError: ``out_dir`` holds something other than a previous SAMRS dataset.
    """
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise DatasetSourceError(f"{raw} does not exist or is not a folder")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    unknown = [s for s in subsets if s.upper() not in SUBSETS]
    if unknown or not subsets:
        raise ValueError(f"subsets must be a non-empty subset of {', '.join(SUBSETS)}; got {list(subsets)}")
    skip = SkipLog(on_error)
    with building(out_dir, DATASET_NAME, "prepare_samrs") as built, RawSource(skip) as source:
        pool: dict[str, tuple[str, RawFile, RawFile | None]] = {}
        per_subset: dict[str, dict[str, int]] = {}
        for subset in (s.upper() for s in subsets):
            images: dict[str, RawFile] = {}
            labels: dict[str, RawFile] = {}
            for raw_file in _subset_files(raw, subset, source):
                role = _role(raw_file)
                suffix = PurePosixPath(raw_file.name).suffix.lower()
                stem = PurePosixPath(raw_file.name).stem
                if role == "images" and suffix in IMAGE_SUFFIXES:
                    target = images
                elif role == "labels" and suffix in IMAGE_SUFFIXES:
                    target = labels
                else:
                    continue
                if stem in target:
                    skip.fail(
                        raw_file.origin,
                        f"{raw_file.origin}: {subset} {role[:-1]} {stem!r} found twice "
                        f"(also {target[stem].origin})",
                    )
                    continue
                target[stem] = raw_file
            if not images:
                raise DatasetSourceError(f"{raw}: subset {subset} holds no image under {subset}/images/")
            for stem, image_file in images.items():
                pool[f"{subset.lower()}_{stem}"] = (subset, image_file, labels.get(stem))
            per_subset[subset] = {
                "images": len(images),
                "labels": len(set(labels) & set(images)),
                "labels_without_image": len(set(labels) - set(images)),
            }

        ids = sorted(pool)
        n_val = round(val_fraction * len(ids))
        order = np.random.default_rng(seed).permutation(len(ids))
        val_ids = {ids[i] for i in order[:n_val].tolist()}
        rows: list[dict[str, Any]] = []
        for image_id in track(ids, "SAMRS images", "img"):
            subset, image_file, label_file = pool[image_id]
            split = "val" if image_id in val_ids else "train"
            try:
                image_bytes = source.read(image_file)
                image = decode_image(image_bytes, image_file.origin).array
                label_bytes = None if label_file is None else source.read(label_file)
                if label_file is not None and label_bytes is not None:
                    label = decode_image(label_bytes, label_file.origin).array
                    check_same_size(label, image, label_file.origin, image_file.origin)
            except DatasetSourceError as exc:
                skip.fail(image_file.origin, exc)
                continue
            suffix = PurePosixPath(image_file.name).suffix.lower()
            image_rel = f"{IMAGE_DIR}/{split}/{image_id}{suffix}"
            atomic_write_bytes(built / image_rel, image_bytes)
            label_rel = ""
            if label_file is not None and label_bytes is not None:
                label_rel = f"{LABEL_DIR}/{split}/{image_id}.png"
                if label_file.name.lower().endswith(".png"):
                    atomic_write_bytes(built / label_rel, label_bytes)
                else:
                    write_png(built / label_rel, label)
            rows.append(
                {
                    "image_id": image_id,
                    "split": split,
                    "image_path": image_rel,
                    "height": int(image.shape[0]),
                    "width": int(image.shape[1]),
                    "source": subset,
                    "window_x": 0,
                    "window_y": 0,
                    "window_w": int(image.shape[1]),
                    "window_h": int(image.shape[0]),
                    "label_path": label_rel,
                    "crs": "",
                    "transform": "",
                }
            )
        if not rows:
            raise DatasetSourceError(f"{raw}: no image could be converted (see the skipped items)")
        write_manifest(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), built / MANIFEST_NAME)
        skip.write(built)
        splits = [r["split"] for r in rows]
        card = {
            "dataset": DATASET_NAME,
            "format_version": 1,
            "source": {"raw_dir": str(raw.absolute()), "subsets": per_subset},
            "split": {
                "rule": "pool sorted by image id, numpy.random.default_rng(seed).permutation, "
                "first round(val_fraction * n) to val",
                "val_fraction": val_fraction,
                "seed": seed,
                "images": {"train": splits.count("train"), "val": splits.count("val")},
            },
            "images": "source bytes unchanged; labels kept for reference (SAMRS class indices)",
            "skipped": skip.entries,
        }
        # Written last: its presence marks a complete dataset.
        write_json(built / CARD_NAME, card)
    return Path(out_dir).absolute() / MANIFEST_NAME
