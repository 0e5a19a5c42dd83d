"""Masks from files are checked before pycocotools' C code sees them.

pycocotools parses a compressed RLE string (``rleFrString``) and decodes runs (``rleDecode``) without
bounds checks: a string whose last character asks for more (``0x20`` set) makes the parser read past
its end and write past its buffer, and counts that sum to more than height x width make the decoder write
past the mask (valgrind: invalid writes; fuzzing: SIGSEGV, SIGABRT). A polygon with coordinates around 5e8
overflows ``rleFrPoly``. Every RLE and polygon read from a mask shard or a COCO file passes here first:

- a compressed RLE string holds only the characters ``'0'..'o'`` (48..111), ends a value on its last
  character, encodes no value in more than ``MAX_VALUE_CHARS`` characters, is at most ``MAX_RLE_BYTES``
  long, and its decoded counts (COCO's delta coding) are each in ``[0, H x W]`` and sum to exactly
  ``H x W``;
- uncompressed counts are non-negative integers summing to ``H x W``;
- a polygon has an even number (at least 6) of finite coordinates, each within ``POLYGON_MARGIN`` image
  sizes of the image.

The string is decoded here with numpy (vectorised): a shard of 10^4 masks is checked in about a second.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from alps.limits import MAX_RLE_BYTES

MAX_VALUE_CHARS = 6
"""Characters of one value: pycocotools shifts 5 bits per character in a C ``int``, which a seventh
character overflows (undefined behaviour); six hold any run difference of a mask below 2^29 pixels."""
POLYGON_MARGIN = 4
"""Polygon coordinates may lie up to this many image sizes outside the image (they are clipped)."""
MAX_POLYGON_POINTS = 1 << 20
"""Vertices of one annotation's polygons, at most."""


class MaskFormatError(ValueError):
    """A mask that pycocotools must not be given; the message names where it came from."""


def rle_counts(counts: bytes, height: int, width: int, source: object) -> np.ndarray:
    """Decode a compressed COCO RLE string to its run lengths, checking it completely.

    Arguments:
        counts: the compressed string (bytes, as in a mask shard).
        height: the mask's height.
        width: the mask's width.
        source: where the string came from, for the message.

    Returns:
        The run lengths (int64), alternating background and foreground from background.

    Raises:
        MaskFormatError: any rule of the module docstring broken.
    """
    if not isinstance(counts, (bytes, bytearray)):
        raise MaskFormatError(f"{source}: RLE counts must be bytes, got {type(counts).__name__}")
    pixels = int(height) * int(width)
    if len(counts) > MAX_RLE_BYTES:
        raise MaskFormatError(
            f"{source}: RLE of {len(counts):,} bytes, over the limit of {MAX_RLE_BYTES:,} bytes"
        )
    chars = np.frombuffer(bytes(counts), dtype=np.uint8)
    if chars.size == 0:
        if pixels == 0:
            return np.zeros(0, np.int64)
        raise MaskFormatError(f"{source}: empty RLE for a {height}x{width} mask")
    if chars.min() < 48 or chars.max() > 111:
        raise MaskFormatError(f"{source}: RLE holds characters outside '0'..'o'")
    code = chars.astype(np.int64) - 48
    more = (code & 0x20) != 0
    if more[-1]:
        raise MaskFormatError(f"{source}: RLE ends inside a value (unterminated)")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > MAX_VALUE_CHARS:
        raise MaskFormatError(
            f"{source}: RLE value of {int(lengths.max())} characters (at most {MAX_VALUE_CHARS})"
        )
    position = np.arange(chars.size) - np.repeat(starts, lengths)
    values = np.add.reduceat((code & 0x1F) << (5 * position), starts)
    negative = (code[ends] & 0x10) != 0
    values = np.where(negative, values | (-1 << (5 * lengths)), values)
    # COCO's delta coding: from the fourth count on, each is stored as its difference to the count two
    # before it, so even and odd positions are each a running sum from positions 2 and 1.
    runs = values.copy()
    if runs.size > 3:
        runs[2::2] = np.cumsum(values[2::2])
        runs[1::2] = np.cumsum(values[1::2])
    _check_runs(runs, pixels, height, width, source)
    return runs


def check_rle_batch(
    counts: Sequence[bytes], heights: Sequence[int], widths: Sequence[int], source: Callable[[int], object]
) -> None:
    """``rle_counts``' checks for many compressed RLE strings at once (a mask shard's), vectorised.

    Arguments:
        counts: the compressed strings.
        heights: each mask's height.
        widths: each mask's width.
        source: mask index -> how the message names it (called for the first bad mask only).

    Raises:
        MaskFormatError: naming a mask that breaks a rule (``rle_counts`` gives the detail).
    """
    if not counts:
        return
    if not all(isinstance(c, (bytes, bytearray)) for c in counts):
        bad = next(i for i, c in enumerate(counts) if not isinstance(c, (bytes, bytearray)))
        raise MaskFormatError(f"{source(bad)}: RLE counts must be bytes")
    sizes = np.fromiter((len(c) for c in counts), dtype=np.int64, count=len(counts))
    area = np.asarray(heights, dtype=np.int64) * np.asarray(widths, dtype=np.int64)
    explain = functools.partial(_explain, counts, heights, widths, source)
    suspects = np.flatnonzero((sizes == 0) | (sizes > MAX_RLE_BYTES))
    if suspects.size:
        explain(int(suspects[0]))
    chars = np.frombuffer(b"".join(bytes(c) for c in counts), dtype=np.uint8)
    mask_end = np.cumsum(sizes) - 1  # each mask's last character
    code = chars.astype(np.int64) - 48
    more = (code & 0x20) != 0
    bad_chars = (chars < 48) | (chars > 111)
    if bad_chars.any() or more[mask_end].any():
        first_char = np.concatenate([np.flatnonzero(bad_chars), mask_end[more[mask_end]]]).min()
        explain(int(np.searchsorted(mask_end, first_char)))
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    position = np.arange(chars.size) - np.repeat(starts, lengths)
    values = np.add.reduceat((code & 0x1F) << (5 * np.minimum(position, MAX_VALUE_CHARS)), starts)
    negative = (code[ends] & 0x10) != 0
    values = np.where(negative, values | (-1 << (5 * np.minimum(lengths, MAX_VALUE_CHARS))), values)
    owner = np.searchsorted(mask_end, ends)  # the mask of each value
    first_value = np.searchsorted(owner, np.arange(len(counts)))
    index = np.arange(len(values)) - first_value[owner]  # the value's position within its mask
    # COCO's delta coding, per mask: counts 0, then the odd ones and the even ones from 2, each a running sum.
    odd = (index & 1) == 1
    runs = values.copy()
    for chain in (odd, ~odd & (index > 0)):  # each a running sum within its mask (no sort needed)
        summed = np.cumsum(np.where(chain, values, 0))
        before_mask = np.concatenate([[0], summed])[first_value]  # the running sum before each mask
        runs = np.where(chain, summed - before_mask[owner], runs)
    totals = np.add.reduceat(runs, first_value)
    broken = (
        (np.bincount(owner, weights=(lengths > MAX_VALUE_CHARS), minlength=len(counts)) > 0)
        | (np.bincount(owner, weights=(runs < 0) | (runs > area[owner]), minlength=len(counts)) > 0)
        | (totals != area)
    )
    if broken.any():
        explain(int(np.flatnonzero(broken)[0]))


def _explain(
    counts: Sequence[bytes],
    heights: Sequence[int],
    widths: Sequence[int],
    source: Callable[[int], object],
    bad: int,
) -> None:
    """Raise the detailed error of the mask the batch check found broken (``rle_counts`` says why)."""
    rle_counts(counts[bad], int(heights[bad]), int(widths[bad]), source(bad))
    raise MaskFormatError(f"{source(bad)}: malformed RLE")


def _check_runs(runs: np.ndarray, pixels: int, height: int, width: int, source: object) -> None:
    if runs.size and (runs.min() < 0 or runs.max() > pixels):
        raise MaskFormatError(f"{source}: RLE has a run outside 0..{pixels} (the mask's pixels)")
    total = int(runs.sum())
    if total != pixels:
        raise MaskFormatError(f"{source}: RLE runs cover {total} pixels, the mask has {height}x{width}")


def check_rle(rle: dict[str, Any], height: int, width: int, source: object) -> dict[str, Any]:
    """Check a COCO RLE (compressed string, or uncompressed counts) for an ``height`` x ``width`` mask.

    Returns:
        The RLE with ``counts`` as bytes (compressed) or as a list of ints (uncompressed).

    Raises:
        MaskFormatError: a malformed RLE, or one of another size.
    """
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise MaskFormatError(f"{source}: an RLE is an object with 'size' and 'counts'")
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and [_int(v) for v in size] == [height, width]):
        raise MaskFormatError(f"{source}: RLE size {size!r} is not the image's [{height}, {width}]")
    counts = rle["counts"]
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError as exc:
            raise MaskFormatError(f"{source}: RLE holds characters outside '0'..'o'") from exc
    if isinstance(counts, (bytes, bytearray)):
        rle_counts(counts, height, width, source)
        return {"size": [height, width], "counts": bytes(counts)}
    if not isinstance(counts, list) or not all(_int(c) is not None for c in counts):
        raise MaskFormatError(f"{source}: RLE counts must be a string or a list of integers")
    if len(counts) > height * width + 1:
        raise MaskFormatError(f"{source}: {len(counts)} RLE counts for {height}x{width} pixels")
    _check_runs(np.asarray(counts, dtype=np.int64), height * width, height, width, source)
    return {"size": [height, width], "counts": [int(c) for c in counts]}


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return None
    return int(value)


def check_polygons(polygons: Sequence[Any], height: int, width: int, source: object) -> list[list[float]]:
    """Check COCO polygons (``[[x0, y0, x1, y1, ...], ...]``) before ``frPyObjects`` rasterises them.

    Returns:
        The polygons as lists of floats.

    Raises:
        MaskFormatError: not lists of an even number (>= 6) of finite numbers within the bounds.
    """
    if not isinstance(polygons, list) or not polygons:
        raise MaskFormatError(f"{source}: a polygon segmentation is a non-empty list of polygons")
    bound = POLYGON_MARGIN * max(height, width)
    checked, points = [], 0
    for polygon in polygons:
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
            raise MaskFormatError(f"{source}: a polygon is a list of at least 3 points (x, y pairs)")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in polygon):
            raise MaskFormatError(f"{source}: polygon coordinates must be numbers")
        values = [float(v) for v in polygon]
        if not all(math.isfinite(v) and -bound <= v <= bound for v in values):
            raise MaskFormatError(
                f"{source}: polygon coordinates must be finite and within {POLYGON_MARGIN} image sizes "
                f"of the {width}x{height} image"
            )
        points += len(values) // 2
        if points > MAX_POLYGON_POINTS:
            raise MaskFormatError(f"{source}: more than {MAX_POLYGON_POINTS:,} polygon points")
        checked.append(values)
    return checked
