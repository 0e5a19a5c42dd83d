"""The manifest: one CSV that lists every image (and label) of a prepared dataset.

Every dataset stage (demo preparation, user folders, downstream benchmarks) writes one, and every later
stage (masks, features, pre-training, fine-tuning) reads it, so the contract lives here. CSV rather than
Parquet because a manifest is small, diff-able in review and stored well by DVC/git.

Columns (``MANIFEST_COLUMNS``, in this order on disk):

=============  ======  =====================================================================================
column         type    meaning
=============  ======  =====================================================================================
image_id       str     unique, a file name (``alps.io.paths``: no separators, not hidden, no control
                       characters; later stages use it as a file stem)
split          str     one of ``train``, ``val``, ``test``
image_path     str     the image file, relative to the manifest's folder (POSIX separators), non-empty
height         int     image height in pixels, > 0
width          int     image width in pixels, > 0
source         str     where the pixels come from (scene or folder name); may be empty
window_x       int     column offset of the image inside its source raster, >= 0 (0 for a whole image)
window_y       int     row offset inside the source raster, >= 0
window_w       int     window width in source pixels, > 0 (the image width for a whole image)
window_h       int     window height in source pixels, > 0
label_path     str     the index-label PNG, relative like image_path; empty for unlabeled sets
crs            str     the source CRS as an EPSG code (``EPSG:32618``) or WKT; empty if not georeferenced
transform      str     the image's affine transform, ``"a,b,c,d,e,f"`` as in rasterio's ``Affine``;
                       empty if not georeferenced
=============  ======  =====================================================================================

Paths are relative so that a dataset folder can be moved or pulled by DVC on another machine; use
``resolve_paths`` to turn them into absolute paths. A manifest may only name files inside its own folder
(datasets are shared, and a later stage hard-links or copies what a manifest names into its outputs):
absolute paths and ``..`` are rejected when the manifest is read, and ``resolve_paths`` rejects a path
that leaves the folder through a symbolic link.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pandas as pd

from alps.io.atomic import atomic_output
from alps.io.paths import name_problem

MANIFEST_COLUMNS: tuple[str, ...] = (
    "image_id",
    "split",
    "image_path",
    "height",
    "width",
    "source",
    "window_x",
    "window_y",
    "window_w",
    "window_h",
    "label_path",
    "crs",
    "transform",
)
"""The manifest's columns, in their on-disk order."""

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The allowed values of the ``split`` column."""

_INT_COLUMNS = ("height", "width", "window_x", "window_y", "window_w", "window_h")
_STR_COLUMNS = tuple(c for c in MANIFEST_COLUMNS if c not in _INT_COLUMNS)
# Columns that may be empty: unlabeled sets have no label, plain PNG folders have no georeferencing.
_OPTIONAL_COLUMNS = ("source", "label_path", "crs", "transform")
_POSITIVE_COLUMNS = ("height", "width", "window_w", "window_h")
_INT_TEXT = re.compile(r"^[+-]?\d+$")


class ManifestError(ValueError):
    """A manifest violates the contract; the message names the file, the row and the column."""


def _fail(where: str, message: str, row: int | None = None, column: str | None = None) -> ManifestError:
    # Rows are reported 0-based (the DataFrame index) and as the CSV line (header = line 1), because the
    # user either inspects the DataFrame or opens the file in an editor.
    parts = [where]
    if row is not None:
        parts.append(f"row {row} (CSV line {row + 2})")
    if column is not None:
        parts.append(f"column {column!r}")
    return ManifestError(", ".join(parts) + f": {message}")


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _to_int(value: Any) -> int | None:
    """Return ``value`` as an int, or None if it is not an integer (floats and bools are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):  # Python and numpy integers
        return int(value)
    if isinstance(value, str) and _INT_TEXT.match(value.strip()):
        return int(value.strip())
    return None


def _check_relative(path_text: str, where: str, row: int, column: str) -> None:
    if not path_text.startswith(("/", "\\")) and path_text[1:2] != ":" and ".." not in path_text:
        # What pathlib would conclude for such a text (no root, no drive, no '..' part), without building
        # two path objects per cell: manifests of 100k rows are checked on every workflow plan.
        return
    if PurePosixPath(path_text).is_absolute() or PureWindowsPath(path_text).drive:
        message = f"{path_text!r} is absolute; paths must be relative to the manifest's folder"
        raise _fail(where, message, row, column)
    if ".." in PurePosixPath(path_text.replace("\\", "/")).parts:
        message = (
            f"{path_text!r} leaves the manifest's folder ('..'); a manifest may only name files inside "
            "its own folder"
        )
        raise _fail(where, message, row, column)


def _check_transform(text: str, where: str, row: int) -> None:
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(parts) != 6 or len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise _fail(where, f"{text!r} is not six finite numbers 'a,b,c,d,e,f'", row, "transform")


def _normalize(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Validate ``df`` against the contract and return a canonical copy (column order and dtypes)."""
    if not isinstance(df, pd.DataFrame):
        raise ManifestError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
    columns = [str(c) for c in df.columns]
    missing = [c for c in MANIFEST_COLUMNS if c not in columns]
    if missing:
        raise _fail(where, f"missing column(s) {missing}; a manifest has exactly {list(MANIFEST_COLUMNS)}")
    extra = [c for c in columns if c not in MANIFEST_COLUMNS]
    if extra:
        # Rejected rather than carried along: a typo ("lable_path") would otherwise pass silently.
        raise _fail(where, f"unknown column(s) {extra}; a manifest has exactly {list(MANIFEST_COLUMNS)}")
    if len(set(columns)) != len(columns):
        raise _fail(where, "duplicate column names")

    records = df.reset_index(drop=True)
    out: dict[str, list[Any]] = {}
    for column in _STR_COLUMNS:
        values: list[str] = []
        for row, value in enumerate(records[column].tolist()):
            if _is_missing(value):
                if column not in _OPTIONAL_COLUMNS:
                    raise _fail(where, "missing value", row, column)
                value = ""
            if not isinstance(value, str):
                raise _fail(where, f"{value!r} is a {type(value).__name__}, expected a string", row, column)
            if column not in _OPTIONAL_COLUMNS and not value.strip():
                raise _fail(where, "empty value", row, column)
            values.append(value)
        out[column] = values
    for column in _INT_COLUMNS:
        ints: list[int] = []
        for row, value in enumerate(records[column].tolist()):
            number = None if _is_missing(value) else _to_int(value)
            if number is None:
                raise _fail(where, f"{value!r} is not an integer", row, column)
            if column in _POSITIVE_COLUMNS and number <= 0:
                raise _fail(where, f"{number} must be > 0", row, column)
            if number < 0:
                raise _fail(where, f"{number} must be >= 0", row, column)
            ints.append(number)
        out[column] = ints

    seen: dict[str, int] = {}
    for row in range(len(records)):
        image_id = out["image_id"][row]
        problem = name_problem(image_id)  # ids name output files (alps.io.paths)
        if problem is not None:
            raise _fail(where, f"{image_id!r} {problem}", row, "image_id")
        if image_id in seen:
            raise _fail(where, f"{image_id!r} duplicates row {seen[image_id]}", row, "image_id")
        seen[image_id] = row
        split = out["split"][row]
        if split not in SPLITS:
            raise _fail(where, f"{split!r} is not one of {', '.join(SPLITS)}", row, "split")
        _check_relative(out["image_path"][row], where, row, "image_path")
        if out["label_path"][row]:
            _check_relative(out["label_path"][row], where, row, "label_path")
        if out["transform"][row]:
            _check_transform(out["transform"][row], where, row)

    frame = pd.DataFrame({c: out[c] for c in MANIFEST_COLUMNS})
    for column in _INT_COLUMNS:
        frame[column] = frame[column].astype("int64")
    for column in _STR_COLUMNS:
        frame[column] = frame[column].astype(str)
    return frame


def validate_manifest(df: pd.DataFrame, where: str = "manifest") -> pd.DataFrame:
    """Check ``df`` against the manifest contract.

    Arguments:
        df: a manifest DataFrame (any column order; missing optional values may be NaN/None).
        where: how error messages name the manifest (usually its path).

    Returns:
        A canonical copy: columns in ``MANIFEST_COLUMNS`` order, int64 integer columns, string columns
        with ``""`` for empty optional values, and a fresh ``RangeIndex``.

    Raises:
        ManifestError: the first violation, naming ``where``, the row and the column.
    """
    return _normalize(df, where)


def write_manifest(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Validate ``df`` and write it atomically as a manifest CSV.

    Arguments:
        df: the manifest rows (see the module docstring for the columns).
        path: the CSV to write; its parent folder is the root the relative paths refer to.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ManifestError: ``df`` violates the contract; nothing is written.
    """
    path = Path(path)
    frame = _normalize(df, f"manifest for {path}")
    with atomic_output(path) as tmp:
        # lineterminator fixed so that the bytes do not depend on the platform (DVC hashes them).
        frame.to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8")
    return path


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a manifest CSV.

    Arguments:
        path: the manifest file.

    Returns:
        The manifest in canonical form (see ``validate_manifest``); paths are still relative, use
        ``resolve_paths`` with the manifest's folder.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ManifestError: the file is not a valid manifest; the message names the file, the row and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    try:
        # Everything as text, nothing turned into NaN: the validator parses and checks each cell itself,
        # so that "", "NA" or "1e3" are reported instead of silently coerced.
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
    except pd.errors.EmptyDataError as exc:
        raise ManifestError(f"{path}: empty file, expected a header with {list(MANIFEST_COLUMNS)}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not a readable CSV ({exc})") from exc
    return _normalize(df, str(path))


def _realpath(path: Path, folders: dict[Path, str]) -> str:
    """``os.path.realpath(path)``, resolving each folder once (``folders`` keeps them): a manifest's
    thousands of files lie in a few folders."""
    if os.path.islink(path):
        return os.path.realpath(path)
    if path.parent not in folders:
        folders[path.parent] = os.path.realpath(path.parent)
    return os.path.join(folders[path.parent], path.name)


def resolve_paths(
    df: pd.DataFrame, root: str | os.PathLike[str], *, must_exist: bool = False
) -> pd.DataFrame:
    """Turn the manifest's relative ``image_path``/``label_path`` into absolute paths under ``root``.

    Arguments:
        df: a manifest DataFrame (as returned by ``read_manifest``).
        root: the folder the paths are relative to, normally the manifest's parent folder.
        must_exist: also check that every image and every non-empty label file exists.

    Returns:
        A copy of ``df`` whose ``image_path`` and non-empty ``label_path`` are absolute path strings;
        empty label paths stay empty.

    Raises:
        FileNotFoundError: ``must_exist`` is set and a file is missing (the message names the row).
        ManifestError: a path leaves ``root`` (``..``, absolute, or through a symbolic link).
    """
    base = Path(root).expanduser().absolute()
    real_base = os.path.realpath(base)
    inside = real_base if real_base.endswith(os.sep) else real_base + os.sep
    out = df.copy()
    ids = out["image_id"].tolist() if "image_id" in out.columns else list(range(len(out)))
    folders: dict[Path, str] = {}
    for column in ("image_path", "label_path"):
        if column not in out.columns:
            continue
        resolved: list[str] = []
        for row, value in enumerate(out[column].tolist()):
            if _is_missing(value) or value == "":
                resolved.append("")
                continue
            image_id = ids[row]
            _check_relative(str(value), f"manifest in {base}", row, column)
            full = base / str(value)
            real = _realpath(full, folders)
            if real != real_base and not real.startswith(inside):
                raise _fail(
                    f"manifest in {base}",
                    f"{value!r} (image {image_id}) leads to {real}, outside the manifest's "
                    "folder, through a symbolic link; a manifest may only name files inside its own folder",
                    row,
                    column,
                )
            if must_exist and not full.is_file():
                raise FileNotFoundError(
                    f"manifest row {row} (image {image_id}), column {column!r}: {full} not found"
                )
            resolved.append(os.fspath(full))
        out[column] = pd.Series(resolved, index=out.index, dtype=str)
    return out
