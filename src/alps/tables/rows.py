"""Table rows: ``TableRow`` and its JSON form (the ``alps tables --rows`` format)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alps.tables.vocabulary import _TABLE_ID, TableError

# The escaping Styler.to_latex(escape="latex") applies to cells; pandas is pinned (pyproject.toml).


@dataclass(frozen=True)
class TableRow:
    """One row of a paper table and the fine-tuning run that reproduces it.

    Attributes:
        table: the table id: ``"1"``, ``"2"``, ``"3a"``, ``"3b"``, ``"4"``, ``"5"``, ``"6"`` (or another id
            made of letters, digits, ``_`` and ``-`` for a table the paper does not have, e.g. the demo's).
        keys: the row's key columns in the paper's vocabulary, named as the published CSV's non-value
            columns minus ``table`` (``TABLE_KEYS``); values are strings (numbers are converted).
        metrics_path: the fine-tuning runs' ``metrics.json``: a mapping seed -> file (one run per
            training seed, as the study plans them), or one file (one run, of the seed it records); a
            missing file means that seed was not run.
        dataset_kind: ``isaid``, ``potsdam``, ``medical``, or anything else (e.g. ``folder`` for the demo:
            one IoU column per class found in the metrics files).
        note: shown beside the row, e.g. "model differs from the paper's: UNet, not DoDNet".
    """

    table: str
    keys: Mapping[str, str] = field(hash=False)  # a dict: rows stay hashable by their other fields
    metrics_path: Path | Mapping[int, Path] = field(hash=False)
    dataset_kind: str
    note: str = ""

    def __post_init__(self) -> None:
        # Coerce here (frozen dataclass) so rows built from JSON or by hand behave the same.
        if not isinstance(self.table, str) or not _TABLE_ID.fullmatch(self.table):
            raise TableError(f"table id must be letters, digits, '_' or '-' (e.g. '3a'), got {self.table!r}")
        if not isinstance(self.keys, Mapping):
            raise TableError(f"keys of a table {self.table} row must be a mapping, got {self.keys!r}")
        if any(v is None for v in self.keys.values()):
            raise TableError(f"a key of a table {self.table} row is null: {dict(self.keys)}")
        object.__setattr__(self, "keys", {str(k): str(v) for k, v in self.keys.items()})
        object.__setattr__(self, "metrics_path", _metrics_paths(self.table, self.metrics_path))
        if not isinstance(self.dataset_kind, str) or not self.dataset_kind:
            raise TableError(f"dataset_kind of a table {self.table} row must be a non-empty string")
        object.__setattr__(self, "note", "" if self.note is None else str(self.note))

    @property
    def runs(self) -> dict[int | None, Path]:
        """Seed -> ``metrics.json``; a single file's seed is None (the seed the file records)."""
        if isinstance(self.metrics_path, Mapping):
            return dict(self.metrics_path)
        return {None: self.metrics_path}


def _metrics_paths(table: str, value: Any) -> Path | dict[int, Path]:
    """A row's ``metrics_path``: one path, or seed (an integer >= 0, or its text) -> path, in seed order."""
    if not isinstance(value, Mapping):
        return Path(value)
    paths: dict[int, Path] = {}
    for seed, path in value.items():
        text = str(seed)
        if isinstance(seed, bool) or not text.isdigit():
            raise TableError(f"a table {table} row's metrics_path seeds must be integers >= 0, got {seed!r}")
        paths[int(text)] = Path(path)
    if not paths:
        raise TableError(f"a table {table} row's metrics_path names no seed")
    return dict(sorted(paths.items()))


def _paths_json(value: Path | Mapping[int, Path]) -> str | dict[str, str]:
    if isinstance(value, Mapping):
        return {str(seed): str(path) for seed, path in value.items()}
    return str(value)


_ROW_FIELDS = ("table", "keys", "metrics_path", "dataset_kind", "note")


def rows_to_json(rows: Sequence[TableRow]) -> str:
    """Serialise rows to JSON (the ``alps tables --rows`` format).

    Arguments:
        rows: the rows.

    Returns:
        A JSON list of objects with ``table``, ``keys``, ``metrics_path`` (as given: a path, or an object
        seed -> path), ``dataset_kind``, ``note``; newline-terminated.
    """
    items = [
        {
            "table": r.table,
            "keys": dict(r.keys),
            "metrics_path": _paths_json(r.metrics_path),
            "dataset_kind": r.dataset_kind,
            "note": r.note,
        }
        for r in rows
    ]
    return json.dumps(items, indent=2) + "\n"


def _based(text: Any, base_dir: str | os.PathLike[str] | None) -> Path:
    path = Path(str(text))
    return Path(base_dir) / path if base_dir is not None and not path.is_absolute() else path


def rows_from_json(text: str, base_dir: str | os.PathLike[str] | None = None) -> list[TableRow]:
    """Parse rows written by ``rows_to_json`` (or by hand).

    Arguments:
        text: a JSON list of objects with ``table``, ``keys``, ``metrics_path`` (a path, or an object
            seed -> path), ``dataset_kind`` and optionally ``note``.
        base_dir: relative ``metrics_path`` values are taken relative to this folder; None leaves them
            relative (to the current directory).

    Returns:
        The rows, in the given order.

    Raises:
        TableError: not valid JSON, not a list of objects, a missing or unknown field.
    """
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TableError(f"rows are not valid JSON: {exc}") from exc
    if not isinstance(items, list):
        raise TableError(
            "rows must be a JSON list of objects (table, keys, metrics_path, dataset_kind, note)"
        )
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TableError(f"row {i}: expected a JSON object, got {type(item).__name__}")
        missing = [f for f in _ROW_FIELDS[:4] if f not in item]
        unknown = sorted(set(item) - set(_ROW_FIELDS))
        if missing:
            raise TableError(f"row {i}: missing {', '.join(missing)} (fields: {', '.join(_ROW_FIELDS)})")
        if unknown:
            raise TableError(f"row {i}: unknown {', '.join(unknown)} (fields: {', '.join(_ROW_FIELDS)})")
        given = item["metrics_path"]
        paths = (
            {seed: _based(p, base_dir) for seed, p in given.items()}
            if isinstance(given, dict)
            else _based(given, base_dir)
        )
        try:
            rows.append(
                TableRow(
                    table=str(item["table"]),
                    keys=item["keys"],
                    metrics_path=paths,
                    dataset_kind=item["dataset_kind"],
                    note=item.get("note", ""),
                )
            )
        except TableError as exc:
            raise TableError(f"row {i}: {exc}") from exc
    return rows
