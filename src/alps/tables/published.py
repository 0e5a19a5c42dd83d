"""The published tables: reading, tidying and writing them, key matching and the paper's rounding."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd

# The escaping Styler.to_latex(escape="latex") applies to cells; pandas is pinned (pyproject.toml).
from alps.io.atomic import atomic_write_text
from alps.study import PUBLISHED_FILES, TABLE_KEYS, normalize_key
from alps.tables.vocabulary import CANONICAL_METHODS, TableError

PUBLISHED_DIR = Path("results") / "paper"
"""Where a repository keeps the published tables, relative to its root: the working directory of the
workflow, and of ``alps tables`` run in a checkout."""


def default_published_dir(root: str | os.PathLike[str] = ".") -> Path | None:
    """``PUBLISHED_DIR`` under ``root`` (the current directory), as an absolute path, or None where there is
    none (outside a checkout: no published values are shown)."""
    path = Path(root) / PUBLISHED_DIR
    return path.resolve() if path.is_dir() else None


def _row_match_key(columns: Sequence[str], keys: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(normalize_key(c, keys.get(c, "")) for c in columns)


def round2(value: float | Decimal) -> float:
    """Round half up to two decimals, as the paper does (mean DSC (79.54 + 24.03) / 2 = 51.785 -> 51.79).

    Arguments:
        value: a number; floats are taken by their shortest repr, so 51.785 rounds up, not down.

    Returns:
        The rounded float.
    """
    return float(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _value_columns(frame: pd.DataFrame, table_id: str) -> list[str]:
    return [c for c in frame.columns if c != "table" and c not in TABLE_KEYS[table_id]]


def _read_published_csv(path: Path, table_id: str) -> pd.DataFrame:
    """One published CSV: key columns as text, values as floats; checked."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "table" not in frame.columns:
        raise TableError(f"{path}: no 'table' column")
    frame = frame[frame["table"].str.strip() == table_id].copy()
    missing = [c for c in TABLE_KEYS[table_id] if c not in frame.columns]
    if missing:
        raise TableError(f"{path}: table {table_id} needs the key columns {', '.join(missing)}")
    for column in _value_columns(frame, table_id):
        try:
            frame[column] = pd.to_numeric(frame[column].str.strip(), errors="raise")
        except ValueError as exc:
            raise TableError(f"{path}: column {column} holds a value that is not a number ({exc})") from exc
    for column in TABLE_KEYS[table_id]:
        frame[column] = frame[column].str.strip()
    return frame.reset_index(drop=True)


def _dedupe(frame: pd.DataFrame, table_id: str, path: Path) -> pd.DataFrame:
    """Drop rows that repeat another's keys and values; refuse rows with equal keys and other values."""
    keys = TABLE_KEYS[table_id]
    values = _value_columns(frame, table_id)
    match = [_row_match_key(keys, row) for row in frame[list(keys)].to_dict("records")]
    keep: dict[tuple[str, ...], int] = {}
    drop = []
    for i, key in enumerate(match):
        if key not in keep:
            keep[key] = i
            continue
        first = frame.loc[keep[key], values].to_numpy(dtype=float)
        if not (first == frame.loc[i, values].to_numpy(dtype=float)).all():
            raise TableError(
                f"{path}: table {table_id} has two rows with the keys {dict(zip(keys, key, strict=True))} "
                "and different values"
            )
        drop.append(i)
    return frame.drop(index=drop).reset_index(drop=True)


def load_published(published_dir: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """The published tables of a folder (``results/paper/``, or ``../shared/paper/`` as it is).

    Arguments:
        published_dir: a folder with the ``PUBLISHED_FILES`` CSVs (those absent are skipped). Rows are
            selected by their ``table`` column, so a file that also holds another table's rows (the shared
            Table 3a file repeats Table 3b) is read correctly; exact repeats are dropped.

    Returns:
        Table id -> DataFrame: ``table``, the key columns (text, stripped), the value columns (float).

    Raises:
        TableError: a malformed file, or two rows with the same keys and different values.
        FileNotFoundError: ``published_dir`` does not exist.
    """
    folder = Path(published_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"published tables folder {folder} does not exist")
    tables: dict[str, pd.DataFrame] = {}
    for table_id, name in PUBLISHED_FILES.items():
        path = folder / name
        if path.is_file():
            tables[table_id] = _dedupe(_read_published_csv(path, table_id), table_id, path)
    return tables


def _canonical_key(column: str, value: str) -> str:
    if column == "method":
        return CANONICAL_METHODS.get(normalize_key(column, value), value)
    if column == "step":
        return value.lower()
    return value


def tidy_published(source_dir: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """The published tables as ``results/paper/`` keeps them, built from ``../shared/paper/``.

    Curation: Table 3a keeps only its own rows (SAMRS* and SAMRS-PL pre-training; the shared file repeats
    the Table 3b rows under id 3a); method spellings are made consistent (``CANONICAL_METHODS``: Pspnet ->
    PspNet); steps are lower case (Table 5's 80K -> 80k). Values are unchanged.

    Arguments:
        source_dir: the folder of the shared CSVs.

    Returns:
        Table id -> DataFrame in the published column order (all seven tables must be there).

    Raises:
        FileNotFoundError: a table file is missing.
    """
    source = Path(source_dir)
    out: dict[str, pd.DataFrame] = {}
    for table_id, name in PUBLISHED_FILES.items():
        path = source / name
        if not path.is_file():
            raise FileNotFoundError(f"published table {path} is missing")
        frame = _read_published_csv(path, table_id)
        if table_id == "3a":
            frame = frame[frame["pretrained"].isin(["SAMRS*", "SAMRS-PL"])]
        for column in TABLE_KEYS[table_id]:
            frame[column] = [_canonical_key(column, v) for v in frame[column]]
        out[table_id] = _dedupe(frame.reset_index(drop=True), table_id, path)
    return out


def write_published(tables: Mapping[str, pd.DataFrame], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write published tables (``tidy_published``) as CSV, values with two decimals.

    Arguments:
        tables: table id -> DataFrame.
        out_dir: the folder (``results/paper/``).

    Returns:
        The files written.
    """
    paths = []
    for table_id, frame in tables.items():
        path = Path(out_dir) / PUBLISHED_FILES[table_id]
        atomic_write_text(path, frame.to_csv(index=False, float_format="%.2f", lineterminator="\n"))
        paths.append(path)
    return paths
