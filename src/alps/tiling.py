"""Tiles of a large image and the mosaic that joins them: window geometry only, no pixels.

One rule cuts every large image into tiles, in ``alps prepare folder`` (``alps.datasets.folder``), ``alps
label``, ``alps predict`` and the PL datasets of ``alps label`` outputs (``alps.geo``): ``tile_size`` windows
every ``tile_size - overlap`` pixels, the last window of a row or column shifted back to end at the border
(``sliding_starts``, mmsegmentation's iSAID rule, which ``alps.datasets.isaid`` cuts patches with too).
The mosaic gives each image pixel to the tile whose centre is nearest (``mosaic_cells``), so tile borders,
where a segmentation is cut, never reach the output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Window = tuple[int, int, int, int]
"""``(x, y, w, h)`` in image pixels."""

TILE_SIZE = 1024
"""Default tile side of ``alps label`` and ``alps prepare folder``: efficientnet-lite0 and felzenszwalb stay
near 1 GB at this size."""
OVERLAP = 128
"""Default overlap of neighbouring tiles: every pixel a mosaic keeps lies at least 64 px inside its tile
(with 0, ``alps mosaic`` would join a ``prepare folder`` dataset's tiles at their cut edges)."""


def sliding_starts(length: int, size: int, stride: int) -> list[int]:
    """Window starts along one axis, as mmsegmentation's iSAID converter places them.

    Starts run ``0, stride, 2*stride, ...`` while ``< length``; a window that would cross the border is
    shifted back to end exactly at it; repeated starts (two windows shifted onto the same place) are kept
    once. If ``length <= size`` there is one window, at 0.

    Arguments:
        length: the image side in pixels.
        size: the window side.
        stride: the step between windows (``size - overlap``), > 0.

    Returns:
        The sorted, distinct window starts.
    """
    if size < 1 or stride < 1:
        raise ValueError(f"window size and stride must be >= 1, got {size} and {stride}")
    if length <= size:
        return [0]
    starts: list[int] = []
    for start in range(0, length, stride):
        shifted = start if start + size <= length else length - size
        if shifted not in starts:
            starts.append(shifted)
    return starts


def tile_windows(height: int, width: int, tile_size: int, overlap: int) -> list[Window]:
    """The ``(x0, y0, w, h)`` tile windows of an image (one whole-image window if it fits in a tile).

    Arguments:
        height: image height.
        width: image width.
        tile_size: tile side.
        overlap: overlap of neighbouring tiles, ``0 <= overlap < tile_size``.

    Returns:
        The windows, rows first; a side shorter than ``tile_size`` is not padded (its windows are that short).
    """
    if tile_size < 1 or not 0 <= overlap < tile_size:
        raise ValueError(f"need tile_size >= 1 and 0 <= overlap < tile_size, got {tile_size} and {overlap}")
    stride = tile_size - overlap
    ys = sliding_starts(height, tile_size, stride)
    xs = sliding_starts(width, tile_size, stride)
    return [(x, y, min(tile_size, width), min(tile_size, height)) for y in ys for x in xs]


def nearest_centre_cells(starts: Sequence[int], sizes: Sequence[int], length: int) -> list[tuple[int, int]]:
    """Along one axis, the pixels ``[a, b)`` whose nearest tile centre is each tile's (ties: the earlier).

    The tiles of a scene form a grid (the product of the x and y starts), so the nearest centre in the
    plane is the nearest centre along each axis: a scene pixel's tile is the product of two 1-D cells.
    Each cell lies inside its tile because neighbouring tiles overlap or touch.

    Arguments:
        starts: tile starts along the axis, increasing.
        sizes: tile lengths along the axis.
        length: the scene's length along the axis.
    """
    centres = [s + n / 2 for s, n in zip(starts, sizes, strict=True)]
    cells = []
    low = 0
    for i in range(len(starts)):
        if i + 1 < len(starts):
            midpoint = (centres[i] + centres[i + 1]) / 2
            # Pixel p (centre p + 0.5) stays with tile i while p + 0.5 <= midpoint.
            high = int(np.floor(midpoint - 0.5)) + 1
        else:
            high = length
        high = max(low, min(high, starts[i] + sizes[i], length))
        if low < starts[i]:
            raise ValueError(
                f"tiles starting at {list(starts)} with sizes {list(sizes)} leave a gap at {low}"
            )
        cells.append((low, high))
        low = high
    return cells


def mosaic_cells(windows: Sequence[Window], height: int, width: int) -> dict[Window, Window]:
    """For each tile window, the part of the scene ``(x, y, w, h)`` it fills in the mosaic."""
    xs = sorted({(x, w) for x, _, w, _ in windows})
    ys = sorted({(y, h) for _, y, _, h in windows})
    x_cells = dict(zip(xs, nearest_centre_cells([x for x, _ in xs], [w for _, w in xs], width), strict=True))
    y_cells = dict(zip(ys, nearest_centre_cells([y for y, _ in ys], [h for _, h in ys], height), strict=True))
    cells = {}
    for window in windows:
        x, y, w, h = window
        (xa, xb), (ya, yb) = x_cells[(x, w)], y_cells[(y, h)]
        cells[window] = (xa, ya, xb - xa, yb - ya)
    return cells


def crop_to_cell(label: NDArray[np.uint8], window: Window, cell: Window) -> NDArray[np.uint8]:
    """The part of a tile's label that lies in its mosaic cell."""
    x, y, _, _ = window
    cx, cy, cw, ch = cell
    return label[cy - y : cy - y + ch, cx - x : cx - x + cw]


def preview_shape(height: int, width: int, max_side: int) -> tuple[int, int]:
    """``(h, w)`` shrunk to at most ``max_side`` a side, keeping the aspect ratio."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))
