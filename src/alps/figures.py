"""Pseudo-label figures like the paper's Fig. 3-5: image | pseudo-label colour map | ground truth."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from alps.io.atomic import atomic_output
from alps.paint import colorize, make_palette

_GAP = 4  # white pixels between panels


def _ground_truth_colours(label: NDArray[np.uint8], palette: NDArray[np.uint8] | None) -> NDArray[np.uint8]:
    if palette is None:
        palette = make_palette()
    full = np.zeros((256, 3), dtype=np.uint8)
    full[: len(palette)] = palette[:256]
    return full[label]


def side_by_side(panels: Sequence[NDArray[np.uint8]]) -> NDArray[np.uint8]:
    """Concatenate equally tall RGB panels horizontally with a white gap."""
    height = panels[0].shape[0]
    gap = np.full((height, _GAP, 3), 255, dtype=np.uint8)
    parts: list[NDArray[np.uint8]] = []
    for panel in panels:
        if panel.shape[0] != height:
            raise ValueError(f"panels differ in height: {panel.shape[0]} vs {height}")
        parts += [panel, gap]
    return np.concatenate(parts[:-1], axis=1)


def write_figures(
    pl_dataset: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    split: str = "train",
    gt_dir: str | os.PathLike[str] | None = None,
    gt_palette: Sequence[Sequence[int]] | None = None,
    count: int = 6,
) -> list[Path]:
    """Write one figure per image: the image, its pseudo-label in the fixed palette, and the ground truth.

    Arguments:
        pl_dataset: a pseudo-label dataset (mmseg layout, as ``alps pl-dataset`` writes it).
        out_dir: folder for ``<image id>.png`` figures.
        split: the split of the PL dataset to draw from.
        gt_dir: ground-truth index labels with the same file names (optional third panel).
        gt_palette: colours of the ground-truth classes (default: the pseudo-label palette).
        count: number of images, the first ``count`` by name (a fixed choice, so runs are comparable).

    Returns:
        The written figure paths.
    """
    root = Path(pl_dataset)
    labels = sorted((root / "ann_dir" / split).glob("*.png"))[:count]
    if not labels:
        raise FileNotFoundError(f"no pseudo-labels in {root / 'ann_dir' / split}")
    palette = None if gt_palette is None else np.asarray(gt_palette, dtype=np.uint8)
    written = []
    for label_path in labels:
        image = np.asarray(Image.open(root / "img_dir" / split / label_path.name).convert("RGB"))
        pseudo = np.asarray(Image.open(label_path))
        panels = [image, colorize(pseudo)]
        if gt_dir is not None:
            gt = np.asarray(Image.open(Path(gt_dir) / label_path.name))
            panels.append(_ground_truth_colours(gt, palette))
        target = Path(out_dir) / label_path.name
        with atomic_output(target) as tmp:
            Image.fromarray(side_by_side(panels)).save(tmp, format="PNG")
        written.append(target)
    return written
