"""Plumbing shared by the dataset converters: build-then-rename, raw file access, error policy, writers.

Every converter builds its dataset in a hidden sibling of ``out_dir`` and renames it into place at the end
(``building``), so ``out_dir`` is always absent, the previous complete dataset, or the new complete dataset.
A folder is only ever replaced when it is empty or holds only a dataset the same converter recorded as its
own (``alps.io.outputs``), so a mistaken ``out_dir`` (a home folder, the raw data) is never deleted.

Raw inputs are read where they lie, never extracted next to the user's download and never written to:
``RawSource`` lists files on disk and the members of the ``.zip`` archives it meets, and reads either kind
into memory. A truncated or corrupt archive, an undecodable image or a label that does not decode is a
``DatasetSourceError`` naming the file and what was expected; with ``on_error="skip"`` the item is recorded
(``skipped.json`` and the dataset card) and the conversion goes on.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from alps.io.atomic import atomic_write_text
from alps.io.outputs import OWNED_RECORD, OutputSetError, folder_problems, output_folder

if TYPE_CHECKING:
    from affine import Affine

MANIFEST_NAME = "manifest.csv"
CARD_NAME = "dataset_card.json"
CLASSES_NAME = "classes.json"
SKIPPED_NAME = "skipped.json"
IMAGE_DIR = "img_dir"
LABEL_DIR = "ann_dir"
ON_ERROR_CHOICES: tuple[str, ...] = ("raise", "skip")


class DatasetSourceError(ValueError):
    """A raw input is missing, truncated, corrupt or not what the converter expects (the message says)."""


def check_on_error(on_error: str) -> str:
    """Return ``on_error`` if it is ``"raise"`` or ``"skip"``, else raise ValueError."""
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, got {on_error!r}")
    return on_error


@dataclass
class SkipLog:
    """The ``on_error`` policy: raise the first problem, or record it and go on.

    Attributes:
        on_error: ``"raise"`` or ``"skip"``.
        entries: the recorded problems, ``{"item": ..., "reason": ...}``, in the order they occurred.
    """

    on_error: str
    entries: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_on_error(self.on_error)

    def fail(self, item: str, reason: str | BaseException) -> None:
        """Raise ``DatasetSourceError`` about ``item`` (``on_error="raise"``) or record it (``"skip"``)."""
        message = str(reason)
        if self.on_error == "raise":
            if isinstance(reason, DatasetSourceError):
                raise reason
            error = DatasetSourceError(message if message.startswith(item) else f"{item}: {message}")
            if isinstance(reason, BaseException):
                raise error from reason
            raise error
        self.entries.append({"item": item, "reason": message})

    def write(self, folder: Path) -> None:
        """Write ``skipped.json`` (an empty list when nothing was skipped, so its absence means nothing)."""
        write_json(folder / SKIPPED_NAME, {"on_error": self.on_error, "skipped": self.entries})


# ---------------------------------------------------------------------------------------- raw file access


@dataclass(frozen=True)
class RawFile:
    """One raw input: a file on disk, or a member of a zip archive.

    Attributes:
        name: the file name (last path component).
        member: the path inside the archive (POSIX), or the path relative to the scanned folder.
        path: the file on disk, or the archive that holds it.
        in_archive: whether ``path`` is an archive and ``member`` a member of it.
    """

    name: str
    member: str
    path: Path
    in_archive: bool

    @property
    def origin(self) -> str:
        """How messages name the file: ``/raw/part1.zip:images/P0000.png`` or ``/raw/P0000.png``."""
        return f"{self.path}:{self.member}" if self.in_archive else str(self.path)


def _is_junk(member: str) -> bool:
    # macOS archivers add resource forks; they look like images by suffix but are not.
    parts = member.split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._")


class RawSource:
    """Lists and reads raw files on disk and inside zip archives, keeping each archive open once.

    Use as a context manager so the archives are closed. Archives that cannot be opened are reported
    through ``skip_log`` (raise, or record and leave their members out).
    """

    def __init__(self, skip_log: SkipLog) -> None:
        self.skip_log = skip_log
        self._archives: dict[Path, zipfile.ZipFile] = {}

    def __enter__(self) -> RawSource:
        return self

    def __exit__(self, *exc: object) -> None:
        for archive in self._archives.values():
            archive.close()
        self._archives.clear()

    def _open(self, path: Path) -> zipfile.ZipFile | None:
        if path not in self._archives:
            try:
                self._archives[path] = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                self.skip_log.fail(
                    str(path),
                    f"{path}: not a readable zip archive ({exc}); the download is probably truncated or "
                    "corrupt: download it again",
                )
                return None
        return self._archives[path]

    def scan(self, folder: Path, *, recursive: bool = True) -> list[RawFile]:
        """List the files under ``folder`` and the members of every ``.zip`` among them, sorted.

        Arguments:
            folder: the folder to scan (an absent folder gives an empty list).
            recursive: also scan sub-folders.

        Returns:
            The files (zip archives themselves are replaced by their members).
        """
        if not folder.is_dir():
            return []
        found: list[RawFile] = []
        candidates = folder.rglob("*") if recursive else folder.iterdir()
        for path in sorted(candidates):
            if not path.is_file() or _is_junk(path.name):
                continue
            if path.suffix.lower() == ".zip":
                found.extend(self.members(path))
            else:
                found.append(RawFile(path.name, path.relative_to(folder).as_posix(), path, False))
        return found

    def members(self, archive: Path) -> list[RawFile]:
        """List the file members of one zip archive (empty if it cannot be opened and errors are skipped)."""
        handle = self._open(archive)
        if handle is None:
            return []
        return [
            RawFile(info.filename.rsplit("/", 1)[-1], info.filename, archive, True)
            for info in sorted(handle.infolist(), key=lambda i: i.filename)
            if not info.is_dir() and not _is_junk(info.filename)
        ]

    def read(self, raw: RawFile) -> bytes:
        """Return the bytes of ``raw``; a damaged member raises ``DatasetSourceError`` naming it."""
        if not raw.in_archive:
            try:
                return raw.path.read_bytes()
            except OSError as exc:
                raise DatasetSourceError(f"{raw.origin}: cannot read ({exc})") from exc
        handle = self._open(raw.path)
        if handle is None:
            raise DatasetSourceError(f"{raw.path}: not a readable zip archive")
        try:
            return handle.read(raw.member)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise DatasetSourceError(
                f"{raw.origin}: damaged archive member ({exc}); download {raw.path.name} again"
            ) from exc


# ---------------------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class Raster:
    """A decoded raw image.

    Attributes:
        array: ``(H, W)`` or ``(H, W, C)`` pixels of the file's own dtype.
        crs: ``EPSG:nnnn`` or WKT, empty if the file is not georeferenced.
        transform: the file's affine transform, or None if not georeferenced.
    """

    array: NDArray[np.generic]
    crs: str = ""
    transform: Affine | None = None


@contextlib.contextmanager
def _no_pixel_limit() -> Iterator[None]:
    # DOTA/iSAID images reach 13000 px a side (169 Mpx): above PIL's decompression-bomb guard, which is
    # meant for untrusted web uploads, not for a dataset the user downloaded on purpose.
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def format_crs(crs: Any) -> str:
    """A rasterio CRS as ``EPSG:nnnn`` where it has a code, else WKT; ``""`` for None."""
    if crs is None:
        return ""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


def format_transform(transform: Affine) -> str:
    """The six coefficients ``a,b,c,d,e,f``; repr() round-trips floats exactly."""
    return ",".join(repr(float(v)) for v in tuple(transform)[:6])


def window_transform_text(transform: Affine, x: int, y: int, width: int, height: int) -> str:
    """The ``a,b,c,d,e,f`` transform of the window ``(x, y, width, height)`` of a raster at ``transform``."""
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    with warnings.catch_warnings():
        # rasterio 1.4 multiplies Affines with `*`, which affine >= 2.4 flags as pending deprecation; the
        # result is the same.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return format_transform(window_transform(Window(x, y, width, height), transform))


def decode_image(data: bytes, origin: str, *, mode: str | None = None) -> Raster:
    """Decode PNG/JPEG/BMP (Pillow) or TIFF/GeoTIFF/JPEG2000 (rasterio) bytes.

    Arguments:
        data: the file's bytes.
        origin: the file's name for messages (and, by its suffix, the decoder).
        mode: for Pillow files, convert to this mode (``"RGB"``, ``"L"``); TIFFs are returned as stored.

    Returns:
        The pixels, ``(H, W)`` or ``(H, W, C)``, with the georeferencing of a GeoTIFF.

    Raises:
        DatasetSourceError: the bytes do not decode, or decode to an empty image.
    """
    suffix = origin.rsplit(".", 1)[-1].lower() if "." in origin else ""
    try:
        if suffix in ("tif", "tiff", "jp2"):
            import rasterio
            from rasterio.errors import NotGeoreferencedWarning
            from rasterio.io import MemoryFile

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with MemoryFile(data) as memfile, memfile.open() as src:
                    bands = src.read()
                    georeferenced = src.crs is not None and src.transform != rasterio.Affine.identity()
                    crs = format_crs(src.crs) if georeferenced else ""
                    transform = src.transform if georeferenced else None
            array = bands[0] if bands.shape[0] == 1 else np.moveaxis(bands, 0, -1)
            raster = Raster(np.ascontiguousarray(array), crs, transform)
        else:
            with _no_pixel_limit(), Image.open(io.BytesIO(data)) as im:
                im.load()
                if mode is not None and im.mode != mode:
                    im = im.convert(mode)
                raster = Raster(np.asarray(im))
    except Exception as exc:  # decoders raise many types; the user needs the file name
        raise DatasetSourceError(
            f"{origin}: cannot decode image ({type(exc).__name__}: {exc}); the file is corrupt or truncated"
        ) from exc
    if raster.array.size == 0:
        raise DatasetSourceError(f"{origin}: empty image (shape {raster.array.shape})")
    return raster


def palette_to_index(
    rgb: NDArray[np.uint8],
    palette: dict[tuple[int, int, int], int],
    origin: str,
    *,
    unknown: int | None = None,
    chunk_rows: int = 1024,
) -> tuple[NDArray[np.uint8], int]:
    """Map an RGB label image to class indices through an exact colour palette.

    Arguments:
        rgb: ``(H, W, 3)`` uint8 label colours.
        palette: colour -> class index.
        origin: the label file's name, for the error message.
        unknown: index given to colours outside the palette; None makes them an error.
        chunk_rows: rows converted at a time (bounds the temporary memory on 13000 px images).

    Returns:
        The ``(H, W)`` uint8 index image and the number of pixels whose colour was not in the palette.

    Raises:
        DatasetSourceError: ``unknown`` is None and a colour is not in the palette (names up to five of
            them, with their pixel counts and the first position).
    """
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise DatasetSourceError(f"{origin}: expected an RGB colour label, got an array of shape {rgb.shape}")
    keys = np.array(sorted((r << 16) | (g << 8) | b for r, g, b in palette), dtype=np.uint32)
    values = np.array(
        [palette[((k >> 16) & 255, (k >> 8) & 255, k & 255)] for k in keys.tolist()], dtype=np.uint8
    )
    height = rgb.shape[0]
    out = np.empty(rgb.shape[:2], dtype=np.uint8)
    n_unknown = 0
    for start in range(0, height, chunk_rows):
        block = rgb[start : start + chunk_rows, :, :3].astype(np.uint32)
        key = (block[..., 0] << 16) | (block[..., 1] << 8) | block[..., 2]
        pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        known = keys[pos] == key
        if not known.all():
            if unknown is None:
                bad_keys, counts = np.unique(key[~known], return_counts=True)
                order = np.argsort(-counts)[:5]
                colours = ", ".join(
                    f"({int(k) >> 16}, {(int(k) >> 8) & 255}, {int(k) & 255}) x {int(c)} px"
                    for k, c in zip(bad_keys[order], counts[order], strict=True)
                )
                rows, cols = np.nonzero(~known)
                raise DatasetSourceError(
                    f"{origin}: label colour(s) not in the palette: {colours} (in rows "
                    f"{start}..{start + block.shape[0] - 1}, first at row {start + int(rows[0])}, column "
                    f"{int(cols[0])}); expected only {sorted(palette)}"
                )
            n_unknown += int((~known).sum())
        out[start : start + block.shape[0]] = np.where(known, values[pos], np.uint8(unknown or 0))
    return out, n_unknown


def check_same_size(
    label: NDArray[np.generic], image: NDArray[np.generic], label_origin: str, image_origin: str
) -> None:
    """Raise ``DatasetSourceError`` naming both files unless ``label`` and ``image`` have the same H x W."""
    if label.shape[:2] != image.shape[:2]:
        raise DatasetSourceError(
            f"{label_origin}: label is {label.shape[1]}x{label.shape[0]} px but its image {image_origin} is "
            f"{image.shape[1]}x{image.shape[0]} px; expected the same size"
        )


# ---------------------------------------------------------------------------------------- windows


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


# ---------------------------------------------------------------------------------------- writers


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


# ---------------------------------------------------------------------------------------- build and swap


def dataset_writer(dataset: str) -> str:
    """The writer a converter's dataset records (``alps.io.outputs``): only the same converter replaces it."""
    return f"alps prepare {dataset}"


def is_replaceable(folder: Path, dataset: str) -> bool:
    """True if ``folder`` is absent, empty, or a dataset the converter of ``dataset`` recorded as its own.

    The record (``alps.io.outputs.OWNED_RECORD``, with every file's SHA-256) decides, not the card: a file
    added by hand, an edited one, or a dataset of another converter is never replaced. A recorded file that
    is gone is fine: Snakemake deletes the declared output (manifest.csv) before it reruns ``prepare``.
    """
    return not folder_problems(folder, dataset_writer(dataset), deep=False)


def check_replaceable(out_dir: Path, dataset: str, writer: str) -> None:
    """Refuse, before any work, an ``out_dir`` that ``building`` would not replace (FileExistsError)."""
    problems = folder_problems(out_dir, dataset_writer(dataset), deep=False)
    if problems:
        raise FileExistsError(refuse_message(out_dir, dataset, writer, "; ".join(problems[:5])))


def refuse_message(out_dir: Path, dataset: str, writer: str, detail: str = "") -> str:
    reason = detail or f"no {OWNED_RECORD} of {dataset_writer(dataset)}; remove it or choose another out_dir"
    return f"{out_dir} is not a dataset written by {writer}, refusing to replace it: {reason}"


@contextlib.contextmanager
def building(
    out_dir: str | os.PathLike[str],
    dataset: str,
    writer: str,
    exchange: Callable[[Path, Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield an empty hidden sibling of ``out_dir`` to build in; on success rename it onto ``out_dir``.

    The one output rule (``alps.io.outputs.output_folder``): ``out_dir`` is checked before any work (a
    mistaken folder fails fast) and again by content at the swap. On any exception, KeyboardInterrupt
    included, the partial build is removed and ``out_dir`` is untouched.

    Arguments:
        out_dir: the dataset folder to create or replace.
        dataset: the converter's dataset name; only a dataset this converter recorded is replaced.
        writer: the converter's name, for messages.
        exchange: the atomic swap (``alps.io.atomic.rename_exchange`` by default; tests replace it).

    Returns:
        A context manager yielding the build folder.

    Raises:
        FileExistsError: ``out_dir`` holds something other than this converter's dataset.
    """
    final = Path(out_dir).absolute()
    try:
        with output_folder(final, dataset_writer(dataset), exchange=exchange) as built:
            yield built
    except OutputSetError as exc:
        raise FileExistsError(refuse_message(final, dataset, writer, str(exc))) from exc
