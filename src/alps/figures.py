"""Pseudo-label figures like the paper's Fig. 3-5: image | pseudo-label colour map | ground truth."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from alps.io.cards import card_int, read_json_object
from alps.io.images import open_image, read_label_array, write_png
from alps.io.outputs import output_folder
from alps.io.paths import confined
from alps.paint import colorize, legend_entries, make_palette, overlay

log = logging.getLogger(__name__)

WRITER = "alps figures"
"""The figures folder's writer (``alps.io.outputs``): only earlier figures are replaced."""

_GAP = 4  # white pixels between panels
_NO_GT_GREY = 200  # the ground-truth panel of an image without ground truth


def no_ground_truth_panel(height: int, width: int) -> NDArray[np.uint8]:
    """A grey panel in the ground truth's place, so that every figure of a set keeps the same layout."""
    from PIL import ImageDraw

    panel = Image.new("RGB", (width, height), (_NO_GT_GREY,) * 3)
    ImageDraw.Draw(panel).text((2, 2), "no ground truth", fill=(0, 0, 0))
    return np.asarray(panel)


def _ground_truth_colours(label: NDArray[np.uint8], palette: NDArray[np.uint8] | None) -> NDArray[np.uint8]:
    if palette is None:
        palette = make_palette()
    full = np.zeros((256, 3), dtype=np.uint8)
    full[: len(palette)] = palette[:256]
    return full[label]


_ROW = 14  # legend row height in pixels (PIL's default bitmap font is 11 px tall)
_LEGEND_WIDTH = 150


def legend_panel(
    entries: Sequence[tuple[str, tuple[int, int, int], float]], height: int
) -> NDArray[np.uint8]:
    """A white panel listing ``(name, colour, share)`` rows: a colour swatch, the name and the pixel share.

    Rows that do not fit in ``height`` are summed into one "N more" row, so a legend of many clusters is no
    taller than the image it explains (beside a tiny image it still has three rows).
    """
    from PIL import ImageDraw

    # At least three rows (largest cluster, the rest, unlabeled) even beside a tiny image.
    rows = max(min(len(entries), 3), (height - 4) // _ROW)
    shown = list(entries)
    if len(shown) > rows:
        # Keep "unlabeled" (last) and the largest ids, in id order; the rest become one row.
        ids = shown[:-1]
        top = set(sorted(range(len(ids)), key=lambda i: -ids[i][2])[: rows - 2])
        kept = [entry for i, entry in enumerate(ids) if i in top]
        rest = sum(entry[2] for i, entry in enumerate(ids) if i not in top)
        shown = [*kept, (f"{len(ids) - len(kept)} more", (255, 255, 255), rest), shown[-1]]
    panel = Image.new("RGB", (_LEGEND_WIDTH, max(height, len(shown) * _ROW + 4)), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for row, (name, colour, share) in enumerate(shown):
        top = 2 + row * _ROW
        draw.rectangle((4, top + 1, 16, top + _ROW - 2), fill=tuple(colour), outline=(96, 96, 96))
        draw.text((22, top + 1), f"{name}  {100 * share:.1f}%", fill=(0, 0, 0))
    return np.asarray(panel)


def overlay_with_legend(
    image: NDArray[np.uint8],
    label: NDArray[np.uint8],
    counts: NDArray[np.integer],
    k: int,
    names: Sequence[str] | None = None,
    palette: NDArray[np.uint8] | None = None,
) -> NDArray[np.uint8]:
    """The label over the image, beside a legend of colours, names (default ``cluster <id>``) and pixel
    shares (``counts``); ``palette`` (``alps.paint.palette_array``) colours a class map's or model's ids."""
    blended = overlay(image, label, palette=palette)
    legend = legend_panel(legend_entries(counts, k, names, palette), blended.shape[0])
    return side_by_side(_pad_to_tallest([blended, legend]))


def _pad_to_tallest(panels: Sequence[NDArray[np.uint8]]) -> list[NDArray[np.uint8]]:
    height = max(p.shape[0] for p in panels)
    return [np.concatenate([p, np.full((height - p.shape[0], *p.shape[1:]), 255, np.uint8)]) for p in panels]


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
    legend: bool = True,
) -> list[Path]:
    """Write one figure per image: the image, its pseudo-label in the fixed palette, and the ground truth.

    Arguments:
        pl_dataset: a pseudo-label dataset (mmseg layout, as ``alps pl-dataset`` writes it).
        out_dir: folder for ``<image id>.png`` figures.
        split: the split of the PL dataset to draw from.
        gt_dir: ground-truth index labels with the same file names (optional third panel). An image
            without its ground truth there (datasets where only some images are labeled) gets a grey
            "no ground truth" panel and a warning naming the missing file.
        gt_palette: colours of the ground-truth classes (default: the pseudo-label palette).
        count: number of images, the first ``count`` by name (a fixed choice, so runs are comparable).
        legend: add a legend panel: each painted cluster's colour and pixel share, and ``unlabeled``.

    Returns:
        The written figure paths (``out_dir`` holds exactly these, built beside it and swapped in whole).
    """
    root = Path(pl_dataset)
    labels = sorted((root / "ann_dir" / split).glob("*.png"))[:count]
    if not labels:
        raise FileNotFoundError(f"no pseudo-labels in {root / 'ann_dir' / split}")
    palette = None if gt_palette is None else np.asarray(gt_palette, dtype=np.uint8)
    written = []
    card_path = root / "dataset_card.json"
    k = (
        card_int(read_json_object(card_path), "num_classes", card_path, 1, 255)
        if card_path.is_file()
        else 255
    )
    # One folder of figures, built beside and swapped in whole; only earlier figures are replaced.
    inputs = [root, *([gt_dir] if gt_dir is not None else [])]
    with output_folder(out_dir, WRITER, inputs=inputs) as built:
        for label_path in labels:
            with open_image(root / "img_dir" / split / label_path.name) as im:
                image = np.asarray(im.convert("RGB"))
            pseudo = read_label_array(label_path)
            panels = [image, colorize(pseudo)]
            if gt_dir is not None:
                gt_path = Path(gt_dir) / label_path.name
                if gt_path.is_file():
                    panels.append(_ground_truth_colours(read_label_array(gt_path, "ground truth"), palette))
                else:
                    log.warning("no ground truth %s for %s: its panel is left grey", gt_path, label_path)
                    panels.append(no_ground_truth_panel(*pseudo.shape[:2]))
            if legend:
                counts = np.bincount(pseudo.ravel(), minlength=256)
                panels.append(legend_panel(legend_entries(counts, k), pseudo.shape[0]))
                panels = _pad_to_tallest(panels)
            Image.fromarray(side_by_side(panels)).save(confined(built, label_path.name), format="PNG")
            written.append(Path(out_dir) / label_path.name)
    return written


def write_label_views(
    vis_dir: Path,
    stem: str,
    label: NDArray[np.uint8],
    counts: NDArray[np.integer],
    names: Sequence[str],
    palette: NDArray[np.uint8],
    preview: Callable[[], NDArray[np.uint8]] | None,
) -> None:
    """``vis/<stem>.png`` (the label's colour map) and, where the image is at hand (``preview`` returns its
    RGB pixels, resized to the label's size here), ``vis/<stem>.overlay.png`` with a legend of ``names``."""
    write_png(vis_dir / f"{stem}.png", colorize(label, palette))
    if preview is None:
        return
    image = preview()
    if image.shape[:2] != label.shape:
        image = np.asarray(Image.fromarray(image).resize(label.shape[::-1]))
    write_png(
        vis_dir / f"{stem}.overlay.png",
        overlay_with_legend(image, label, counts, len(names), names, palette),
    )
