"""Size limits of every input: a small file must not make a command allocate or work without bound.

A 300 KB TIFF can claim 100000 x 100000 pixels, a mask shard can claim a 10^10-pixel image, a 348-byte
YAML file can expand to gigabytes through aliases. Every reader checks the size an input *claims*
(header, metadata) against these limits before it allocates or loops, and a refusal names the file, the
size and the option that raises the limit.

The limits are decided once per process: the defaults below, overridden by the environment
(``ALPS_MAX_PIXELS``, ``ALPS_MAX_TILES``; a workflow exports them for all its jobs) and by the ``alps``
command's options (``--max-pixels``, ``--max-tiles``), which ``alps.cli`` applies with ``configure``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

PIXEL_BUDGET_BYTES = 32
"""Bytes per pixel the largest reader holds at once (a 16-bit multi-band raster stretched in float64):
the default pixel limit is the machine's memory divided by this."""
MIN_DEFAULT_PIXELS = 1 << 26
"""The default pixel limit on any machine is at least this (67 Mpx: an 8192 x 8192 scene)."""
MAX_DEFAULT_PIXELS = 1 << 32
"""... and at most this (4.3 Gpx: a 65536 x 65536 scene), above which a user raises it knowingly."""
DEFAULT_MAX_TILES = 4096
"""Tiles of one scene that ``alps label`` works through (4096 tiles of 1024 px: a 57000 px square)."""
MAX_RLE_BYTES = 1 << 26
"""The longest mask RLE string read (64 MiB; a mask of a 4 Gpx image with every other pixel set)."""
MAX_YAML_BYTES = 1 << 20
"""Class maps and workflow configurations are at most 1 MiB (the paper's configuration is 10 KB)."""
MAX_YAML_NODES = 100_000
"""Nodes a YAML document may expand to through its aliases (a 348-byte alias bomb expands to 10^9)."""
MAX_GALLERY_TILE = 1024
"""The largest example tile of ``alps gallery`` in pixels (a sheet holds 12 of them)."""
MAX_CLASSES = 1024
"""Classes of a ground truth scored by ``alps evaluate-labels`` (its confusion matrix is classes^2)."""
MAX_ARRAY_BYTES = 16 << 30
"""The uncompressed size of a shard or model read (16 GiB: a feature shard of 64 images is ~0.2 GB)."""
MAX_SHARD_ROWS = 1 << 24
"""Masks in one mask shard (16 M; SAM gives ~100-500 per image)."""

PIXELS_ENV = "ALPS_MAX_PIXELS"
TILES_ENV = "ALPS_MAX_TILES"


class LimitError(ValueError):
    """An input claims more than a limit allows; the message names the file, the size and the option."""


def _machine_memory() -> int | None:
    """Physical memory in bytes, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_max_pixels() -> int:
    """The pixel limit that fits this machine: its memory over ``PIXEL_BUDGET_BYTES``, clipped."""
    memory = _machine_memory()
    if memory is None:
        return MIN_DEFAULT_PIXELS * 4
    return max(MIN_DEFAULT_PIXELS, min(MAX_DEFAULT_PIXELS, memory // PIXEL_BUDGET_BYTES))


@dataclass(frozen=True)
class Limits:
    """The limits in force.

    Attributes:
        max_pixels: pixels of one image, label or raster (height x width), and of a scene ``alps label``
            tiles.
        max_tiles: tiles of one scene in ``alps label``.
    """

    max_pixels: int
    max_tiles: int


def _positive_int(text: str, name: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise LimitError(f"{name}={text!r} is not a positive whole number")
    return value


def from_environment(environ: dict[str, str] | None = None) -> Limits:
    """The defaults, with ``ALPS_MAX_PIXELS`` / ``ALPS_MAX_TILES`` where set."""
    env = os.environ if environ is None else environ
    pixels = env.get(PIXELS_ENV)
    tiles = env.get(TILES_ENV)
    return Limits(
        max_pixels=_positive_int(pixels, PIXELS_ENV) if pixels else default_max_pixels(),
        max_tiles=_positive_int(tiles, TILES_ENV) if tiles else DEFAULT_MAX_TILES,
    )


_current: Limits | None = None


def current() -> Limits:
    """The limits of this process (the environment's, until ``configure`` sets them)."""
    global _current
    if _current is None:
        _current = from_environment()
    return _current


def configure(max_pixels: int | None = None, max_tiles: int | None = None) -> Limits:
    """Set the limits of this process (the ``alps`` options); ``None`` keeps the environment's value."""
    global _current
    limits = from_environment()
    if max_pixels is not None:
        limits = replace(limits, max_pixels=max_pixels)
    if max_tiles is not None:
        limits = replace(limits, max_tiles=max_tiles)
    if limits.max_pixels < 1 or limits.max_tiles < 1:
        raise LimitError(f"limits must be positive, got {limits}")
    _current = limits
    return limits


def check_pixels(height: int, width: int, source: object, what: str = "image") -> None:
    """Refuse a raster of ``height`` x ``width`` pixels above the pixel limit (or of no pixels).

    Arguments:
        height: the claimed height.
        width: the claimed width.
        source: the file (or shard entry) that claims it, as messages name it.
        what: what it is (``image``, ``label``, ``scene``...).

    Raises:
        LimitError: the size is not positive or exceeds ``current().max_pixels``.
    """
    if (
        not all(isinstance(v, int) and not isinstance(v, bool) for v in (height, width))
        or min(height, width) < 1
    ):
        raise LimitError(f"{source}: a {what} of {width!r} x {height!r} pixels is not a valid size")
    limit = current().max_pixels
    if height * width > limit:
        raise LimitError(
            f"{source}: the {what} claims {width} x {height} = {height * width:,} pixels, over the limit of "
            f"{limit:,} (--max-pixels or {PIXELS_ENV}); raise it if the file is real and fits in memory"
        )


def check_tiles(tiles: int, source: object) -> None:
    """Refuse a scene of more tiles than ``current().max_tiles``."""
    limit = current().max_tiles
    if tiles > limit:
        raise LimitError(
            f"{source}: the scene makes {tiles:,} tiles, over the limit of {limit:,} (--max-tiles or "
            f"{TILES_ENV}); raise it if the scene is real, or pass a larger --tile-size"
        )


def check_archive(path: object, max_bytes: int = MAX_ARRAY_BYTES) -> None:
    """Refuse an ``.npz`` (a zip) whose members unpack to more than ``max_bytes`` (a zip bomb).

    Raises:
        LimitError: naming the file and its unpacked size. A file that is not a zip is left to its reader.
    """
    import zipfile

    try:
        with zipfile.ZipFile(str(path)) as archive:
            total = sum(member.file_size for member in archive.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return
    if total > max_bytes:
        raise LimitError(
            f"{path}: unpacks to {total:,} bytes, over the limit of {max_bytes:,} for a shard or model"
        )
