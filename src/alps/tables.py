"""The paper's tables regenerated from fine-tuning runs, side by side with the published numbers.

A table is a list of ``TableRow`` objects: the row's key columns in the paper's vocabulary (method, type,
pre-training set, step, ...) and the ``metrics.json`` of the fine-tuning runs that reproduce it, one per
training seed (``alps.train.runner``; a missing file means that seed has not been run). ``write_tables``
combines each row's seeds (``alps.aggregation``: mean, std, n), matches every row to the published row
with the same keys (``results/paper/``, spelling and case normalised), compares every row with its
baseline row (``alps.verdicts``: the delta paired by seed, its 95 % interval, the verdict) and writes, per
table, a long CSV (one line per row and value column: n, mean, std, published, difference, status, delta,
interval, verdict), a wide Markdown and a wide LaTeX table, plus an index (``README.md``, ``tables.json``).
docs/tables.md describes the tables and the formats.

Values are percentages with two decimals, as mmseg's ``IoUMetric`` (and ``ALPSIoUMetric``) writes them
into ``metrics.json`` and as the paper prints them; differences are mean - published.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pandas as pd

# The escaping Styler.to_latex(escape="latex") applies to cells; pandas is pinned (pyproject.toml).
from pandas.io.formats.style_render import _escape_latex

from alps import __version__
from alps.aggregation import SeedValues, aggregate, seed_count_text
from alps.datasets import isaid, potsdam
from alps.io.atomic import atomic_write_text
from alps.stats import Summary
from alps.study import PUBLISHED_FILES, TABLE_IDS, TABLE_KEYS, iter_table_rows, normalize_key, plan_study
from alps.verdicts import Comparison, compare_rows, count_verdicts, delta_text, verdict_column, verdict_line

# ----------------------------------------------------------------------------------------------------------
# The published tables: ids, files, key columns, value columns
# ----------------------------------------------------------------------------------------------------------

TABLE_TITLES: dict[str, str] = {
    "1": "Table 1: fine-tuning on iSAID from pseudo-label pre-training (IoU per class, mIoU, mAcc, %)",
    "2": "Table 2: fine-tuning on Potsdam from pseudo-label pre-training (IoU per class, mIoU, mAcc, %)",
    "3a": "Table 3a: pre-training on SAMRS-PL (ALPS) vs SAMRS* (unsupervised SAMRS), fine-tuned on iSAID (%)",
    "3b": "Table 3b: binary-mask, iSAID-PL, SAMRS-PL and Mixed-PL pre-training, fine-tuned on iSAID (%)",
    "4": "Table 4: longer pre-training on SAMRS-PL (backbone init), fine-tuned on iSAID and Potsdam (%)",
    "5": "Table 5: area size threshold of the filtering gate, UperNet fine-tuned on Potsdam (%)",
    "6": "Table 6: ATLAS 2023 liver and tumour segmentation, baseline vs ATLAS-PL pre-training (%)",
}

ISAID_ABBREVIATIONS: tuple[str, ...] = (
    "BG", "SH", "ST", "BD", "TC", "BC", "GTF", "BR", "LV", "SV", "HC", "SP", "RA", "SBF", "PL", "HA",
)  # fmt: skip
"""The paper's iSAID column headers, in mmseg's class order (label 0..15)."""

POTSDAM_ABBREVIATIONS: tuple[str, ...] = ("IS", "BD", "LV", "TR", "CR", "CL")
"""The paper's Potsdam column headers, in mmseg's class order (after ``reduce_zero_label``)."""

if len(ISAID_ABBREVIATIONS) != len(isaid.CLASSES) or len(POTSDAM_ABBREVIATIONS) != len(potsdam.CLASSES):
    raise ImportError("alps.tables: the paper's class columns no longer match the dataset classes")

ISAID_COLUMNS: dict[str, str] = dict(zip(ISAID_ABBREVIATIONS, isaid.CLASSES, strict=True))
"""Paper column -> class name in ``metrics.json`` ``per_class`` (``alps.datasets.isaid.CLASSES``, mmseg's
spelling: ``store_tank``, ``Ground_Track_Field``, ...)."""

POTSDAM_COLUMNS: dict[str, str] = dict(zip(POTSDAM_ABBREVIATIONS, potsdam.CLASSES, strict=True))
"""Paper column -> class name in ``metrics.json`` (``alps.datasets.potsdam.CLASSES``)."""

SUMMARY_COLUMNS: tuple[str, ...] = ("mIoU", "mAcc")
"""Summary metrics taken from ``metrics.json`` ``metrics`` as they are (mmseg's means over all classes)."""

MEDICAL_COLUMNS: tuple[str, ...] = ("dsc_liver", "dsc_tumor", "dsc_mean", "iou_liver", "iou_tumor", "miou")
"""Table 6's values. The means are over liver and tumour only, not background (the paper's mean DSC of
DoDNet is (79.54 + 24.03) / 2 = 51.79), so they are computed here, not taken from ``mDice``/``mIoU``."""

# The medical dataset's classes (alps.train.configs.MEDICAL_CLASSES, not imported: that module imports mmseg).
_LIVER_NAMES = ("liver",)
_TUMOUR_NAMES = ("tumour", "tumor")

KEY_TITLES: dict[str, str] = {
    "finetune_dataset": "Fine-tuned",
    "method": "Method",
    "type": "Type",
    "pretrained": "Pre-trained",
    "step": "Step",
    "area_threshold": "Area threshold",
}
"""Column headers of the Markdown/LaTeX tables for the key columns (the CSVs keep the key names)."""

VALUE_TITLES: dict[str, str] = {
    "dsc_liver": "DSC Liver",
    "dsc_tumor": "DSC Tumor",
    "dsc_mean": "DSC Mean",
    "iou_liver": "IoU Liver",
    "iou_tumor": "IoU Tumor",
    "miou": "mIoU (liver, tumor)",
}

# Spellings the paper itself mixes (Table 1 "PspNet", Tables 2 and 4 "Pspnet"): the tidy CSVs use one.
CANONICAL_METHODS: dict[str, str] = {"pspnet": "PspNet"}
"""Normalised method name -> the spelling ``results/paper/`` uses (the paper's text writes "PspNet")."""

STATUS_COMPARED = "compared"
STATUS_NO_PUBLISHED = "no published value"
STATUS_NOT_RUN = "not run"
STATUS_NA = "absent"
STATUSES: tuple[str, ...] = (STATUS_COMPARED, STATUS_NO_PUBLISHED, STATUS_NOT_RUN, STATUS_NA)
"""Status of a value (the long CSV's ``status``): compared with the paper; reproduced, but the paper has no
value; the run's ``metrics.json`` does not exist; the run has no value (a class absent from both prediction
and labels, IoU null), shown as "n/a" in the wide tables. Not "n/a" in the CSV: pandas reads that as NaN."""

NA_TEXT = "n/a"
"""How the wide tables show a value the run does not have."""

_REPO_PUBLISHED = Path(__file__).resolve().parents[2] / "results" / "paper"
DEFAULT_PUBLISHED_DIR: Path | None = _REPO_PUBLISHED if _REPO_PUBLISHED.is_dir() else None
"""``results/paper/`` of the repository this package runs from, or None (an installed, non-editable
package has no repository beside it)."""

_TABLE_ID = re.compile(r"[0-9A-Za-z_-]+")


class TableError(ValueError):
    """A row, a published table or a ``metrics.json`` that the tables cannot be built from."""


# ----------------------------------------------------------------------------------------------------------
# Rows
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# Key matching and rounding
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# Published tables
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# Runs: metrics.json -> values
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """What one row's ``metrics.json`` gives: values per column (None = n/a) and provenance."""

    values: dict[str, float | None]
    provenance: dict[str, Any] = field(default_factory=dict)


def _fail(path: Path, what: str) -> TableError:
    return TableError(f"{path}: {what}")


def _number(path: Path, where: str, value: Any, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise _fail(path, f"{where} is {value!r}, not a number")
    if not 0.0 <= float(value) <= 100.0:
        raise _fail(path, f"{where} is {value}, outside 0-100 (metrics.json values are percentages)")
    return float(value)


def _per_class(path: Path, record: dict[str, Any], metric: str) -> dict[str, Any]:
    per_class = record.get("per_class")
    if not isinstance(per_class, dict) or not isinstance(per_class.get(metric), dict):
        raise _fail(path, f"has no per_class {metric} (a fine-tune result evaluated with ALPSIoUMetric has)")
    return per_class[metric]


def _class_value(path: Path, values: dict[str, Any], metric: str, names: Sequence[str], column: str) -> Any:
    """The value of the first of ``names`` in ``values``; exact name first, then ignoring case."""
    for name in names:
        if name in values:
            return _number(path, f"per_class {metric} {name!r}", values[name], allow_none=True)
    folded = {str(k).casefold(): k for k in values}
    for name in names:
        if name.casefold() in folded:
            key = folded[name.casefold()]
            return _number(path, f"per_class {metric} {key!r}", values[key], allow_none=True)
    raise _fail(
        path,
        f"per_class {metric} lacks the class {names[0]!r} needed for column {column} "
        f"(classes present: {', '.join(map(str, values)) or 'none'})",
    )


def _mean2(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return round2((Decimal(str(a)) + Decimal(str(b))) / 2)


def _load_record(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise _fail(path, "exists but is not a file")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, f"is not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise _fail(path, "is not a JSON object (a metrics.json written by alps finetune)")
    role = record.get("role")
    if role != "finetune":
        raise _fail(path, f"is not a fine-tune result (role {role!r}, expected 'finetune')")
    if record.get("evaluated") is not True:
        raise _fail(path, "holds no evaluation ('evaluated' is not true)")
    if not isinstance(record.get("metrics"), dict):
        raise _fail(path, "has no 'metrics' object")
    return record


_KNOWN_KINDS = ("isaid", "potsdam", "medical")


def _read_runs(row: TableRow) -> dict[int, _Run]:
    """The row's runs by seed: every ``metrics.json`` that exists (none: the row was not run).

    A file given for seed s must record seed s (or none); a single file is the run of the seed it
    records (0 if none). Two files of one seed are an error.
    """
    runs: dict[int, _Run] = {}
    for planned, path in row.runs.items():
        if not path.exists():
            continue
        run = _read_run(row, path)
        recorded = run.provenance.get("seed")
        recorded = recorded if isinstance(recorded, int) and not isinstance(recorded, bool) else None
        if planned is not None and recorded is not None and recorded != planned:
            raise _fail(
                path, f"records seed {recorded}, but its table {row.table} row lists it as seed {planned}"
            )
        seed = planned if planned is not None else (recorded if recorded is not None else 0)
        if seed in runs:
            raise _fail(path, f"is a second run of seed {seed} in its table {row.table} row")
        runs[seed] = run
    return runs


def _read_run(row: TableRow, path: Path) -> _Run:
    """The values of one of the row's ``metrics.json`` files (it exists)."""
    record = _load_record(path)
    dataset = record.get("dataset") if isinstance(record.get("dataset"), dict) else {}
    recorded_kind = dataset.get("kind")
    if (
        row.dataset_kind in _KNOWN_KINDS
        and recorded_kind in _KNOWN_KINDS
        and recorded_kind != row.dataset_kind
    ):
        raise _fail(path, f"is a {recorded_kind} result, but its table {row.table} row is {row.dataset_kind}")
    metrics = record["metrics"]
    values: dict[str, float | None] = {}
    if row.dataset_kind == "medical" and row.table not in ("4", "5"):
        dice, iou = _per_class(path, record, "Dice"), _per_class(path, record, "IoU")
        values["dsc_liver"] = _class_value(path, dice, "Dice", _LIVER_NAMES, "dsc_liver")
        values["dsc_tumor"] = _class_value(path, dice, "Dice", _TUMOUR_NAMES, "dsc_tumor")
        values["dsc_mean"] = _mean2(values["dsc_liver"], values["dsc_tumor"])
        values["iou_liver"] = _class_value(path, iou, "IoU", _LIVER_NAMES, "iou_liver")
        values["iou_tumor"] = _class_value(path, iou, "IoU", _TUMOUR_NAMES, "iou_tumor")
        values["miou"] = _mean2(values["iou_liver"], values["iou_tumor"])
    else:
        if row.table not in ("4", "5"):
            if row.dataset_kind in ("isaid", "potsdam"):
                classes = ISAID_COLUMNS if row.dataset_kind == "isaid" else POTSDAM_COLUMNS
                iou = _per_class(path, record, "IoU")
                for column, name in classes.items():
                    values[column] = _class_value(path, iou, "IoU", (name,), column)
            else:
                iou = _per_class(path, record, "IoU")
                for name, value in iou.items():
                    values[str(name)] = _number(path, f"per_class IoU {name!r}", value, allow_none=True)
        for name in SUMMARY_COLUMNS:
            if name not in metrics:
                raise _fail(path, f"metrics has no {name}")
            values[name] = _number(path, f"metrics {name}", metrics[name], allow_none=False)
    provenance = {
        k: record.get(k) for k in ("model", "init", "iter", "seed", "config_hash", "split", "from_checkpoint")
    }
    provenance["dataset_kind"] = recorded_kind
    return _Run(values=values, provenance=provenance)


def _row_columns(row: TableRow, runs: Mapping[int, _Run]) -> list[str]:
    """The value columns a row has (for other kinds: the classes of its metrics files, if any exist)."""
    if row.table in ("4", "5"):
        return list(SUMMARY_COLUMNS)
    if row.dataset_kind == "medical":
        return list(MEDICAL_COLUMNS)
    if row.dataset_kind == "isaid":
        return [*ISAID_ABBREVIATIONS, *SUMMARY_COLUMNS]
    if row.dataset_kind == "potsdam":
        return [*POTSDAM_ABBREVIATIONS, *SUMMARY_COLUMNS]
    columns: list[str] = []
    for run in runs.values():
        columns += [c for c in run.values if c not in columns]
    return columns or list(SUMMARY_COLUMNS)


# ----------------------------------------------------------------------------------------------------------
# Building a table
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Built:
    table: str
    frame: pd.DataFrame
    key_columns: list[str]
    value_columns: list[str]
    rows: list[dict[str, Any]]
    analogue_of: list[str] = field(default_factory=list)  # fine-tuning datasets of a table not on the paper's
    verdict_column: str | None = None  # the column the verdicts judge (alps.verdicts)
    comparisons: list[Comparison] = field(default_factory=list)  # each row against its baseline

    @property
    def verdicts(self) -> list[str]:
        return [c.verdict for c in self.comparisons]


TABLE_SUBJECTS: dict[str, str] = {
    "1": "pseudo-label pre-training with each sub-model initialisation, against training from scratch",
    "2": "pseudo-label pre-training with each sub-model initialisation, against training from scratch",
    "3a": "SAMRS* (box-prompted SAM) against ALPS pseudo-labels for pre-training",
    "3b": "binary-mask against clustered pseudo-label pre-training",
    "4": "longer pre-training",
    "5": "area size threshold of the filtering gate",
    "6": "baseline against pseudo-label pre-training",
}
"""What each table compares, for the titles of its analogues on other datasets (e.g. the demo's)."""


def table_title(built: _Built) -> str:
    """The paper's title of the table, or "Table N analogue on <datasets>: <what it compares>"."""
    if built.analogue_of:
        subject = TABLE_SUBJECTS.get(built.table, "")
        return f"Table {built.table} analogue on {', '.join(built.analogue_of)}: {subject} (%)"
    return TABLE_TITLES.get(built.table, f"Table {built.table}")


def _key_columns(table_id: str, rows: Sequence[TableRow]) -> list[str]:
    if table_id in TABLE_KEYS:
        expected = TABLE_KEYS[table_id]
        for i, row in enumerate(rows):
            if set(row.keys) != set(expected):
                raise TableError(
                    f"row {i + 1} of table {table_id}: keys must be {', '.join(expected)}; "
                    f"got {', '.join(row.keys) or 'none'}"
                )
        return list(expected)
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row.keys if c not in columns]
    return columns


LONG_COLUMNS: tuple[str, ...] = (
    "column", "n", "reproduced", "std", "published", "difference", "status", "baseline_row", "delta",
    "delta_low", "delta_high", "delta_n", "published_delta", "verdict", "seeds", "note", "metrics_path",
)  # fmt: skip
"""The long CSV's columns after ``table``, ``row`` and the key columns (docs/tables.md)."""

_FLOATS = (
    "reproduced", "std", "published", "difference", "delta", "delta_low", "delta_high", "published_delta",
)  # fmt: skip
_COUNTS = ("n", "baseline_row", "delta_n")  # integers, empty where there is none


def _round(value: float | None) -> float | None:
    return None if value is None else round2(value)


def _value_fields(cell: SeedValues | None, ran: bool, published_value: float | None) -> dict[str, Any]:
    """One value of one row: n, mean and std over its seeds, beside the published value."""
    summary = cell.summary if cell is not None else None
    reproduced = _round(summary.mean) if summary is not None else None
    difference = None
    if not ran:
        status = STATUS_NOT_RUN
    elif reproduced is None:
        status = STATUS_NA
    elif published_value is None:
        status = STATUS_NO_PUBLISHED
    else:
        status = STATUS_COMPARED
        difference = round2(Decimal(str(reproduced)) - Decimal(str(published_value)))
    return {
        "n": summary.n if summary is not None else 0,
        "reproduced": reproduced,
        "std": _round(summary.std) if summary is not None else None,
        "published": published_value,
        "difference": difference,
        "status": status,
        "seeds": ";".join(str(seed) for seed in cell.seeds) if cell is not None else "",
    }


def _delta_fields(delta: Summary | None, paper_delta: float | None) -> dict[str, Any]:
    """A value's delta against the baseline row: mean, 95 % interval and n of the seed pairs."""
    if delta is None:
        return dict.fromkeys(("delta", "delta_low", "delta_high", "delta_n", "published_delta"))
    return {
        "delta": _round(delta.mean),
        "delta_low": _round(delta.low),
        "delta_high": _round(delta.high),
        "delta_n": delta.n,
        "published_delta": paper_delta,
    }


def _delta_json(delta: Summary | None) -> dict[str, Any] | None:
    if delta is None:
        return None
    return {
        "n": delta.n,
        "mean": _round(delta.mean),
        "std": _round(delta.std),
        "low": _round(delta.low),
        "high": _round(delta.high),
    }


def _check_rows(table_id: str, rows: Sequence[TableRow], key_columns: Sequence[str]) -> None:
    for row in rows:
        if row.table != table_id:
            raise TableError(f"a table {row.table} row was given to table {table_id}")
    seen: dict[tuple[str, ...], int] = {}
    for i, row in enumerate(rows):
        match = _row_match_key(key_columns, row.keys)
        if match in seen:
            raise TableError(
                f"rows {seen[match] + 1} and {i + 1} of table {table_id} have the same keys {dict(row.keys)}"
            )
        seen[match] = i


def _build(table_id: str, rows: Sequence[TableRow], published: Mapping[str, pd.DataFrame]) -> _Built:
    key_columns = _key_columns(table_id, rows)
    _check_rows(table_id, rows, key_columns)
    runs = [_read_runs(row) for row in rows]
    row_columns = [_row_columns(row, run) for row, run in zip(rows, runs, strict=True)]
    # Class columns in order of first appearance, the summary metrics last (as the paper).
    value_columns: list[str] = []
    for columns in row_columns:
        value_columns += [c for c in columns if c not in value_columns and c not in SUMMARY_COLUMNS]
    value_columns += [c for c in SUMMARY_COLUMNS if any(c in columns for columns in row_columns)]

    table = published.get(table_id)
    lookup: dict[tuple[str, ...], dict[str, Any]] = {}
    if table is not None:
        for record in table.to_dict("records"):
            lookup[_row_match_key(key_columns, record)] = record
    papers = [lookup.get(_row_match_key(key_columns, row.keys)) for row in rows]

    def paper_value(i: int, column: str) -> float | None:
        p = papers[i].get(column) if papers[i] is not None else None
        return None if p is None or pd.isna(p) else round2(float(p))

    # Each row's values over its seeds (alps.aggregation), and each row against its baseline
    # (alps.verdicts).
    cells = [
        aggregate({seed: run.values for seed, run in by_seed.items()}, columns)
        for by_seed, columns in zip(runs, row_columns, strict=True)
    ]
    judged = verdict_column(table_id, value_columns)
    comparisons = compare_rows(
        table_id,
        [row.keys for row in rows],
        [{c: v.by_seed for c, v in row_cells.items() if v.by_seed} for row_cells in cells],
        [{c: paper_value(i, c) for c in value_columns} for i in range(len(rows))],
        judged,
    )
    records = []
    summary_rows = []
    for i, (row, comparison) in enumerate(zip(rows, comparisons, strict=True)):
        base = comparison.baseline
        for column in value_columns:
            records.append(
                {
                    "table": table_id,
                    "row": i + 1,
                    **{k: row.keys.get(k, "") for k in key_columns},
                    "column": column,
                    **_value_fields(cells[i].get(column), bool(runs[i]), paper_value(i, column)),
                    "baseline_row": None if base is None else base + 1,
                    **_delta_fields(comparison.deltas.get(column), comparison.published_deltas.get(column)),
                    "verdict": comparison.verdict if column == judged else "",
                    "note": row.note,
                    "metrics_path": ";".join(str(path) for path in row.runs.values()),
                }
            )
        summary_rows.append(
            {
                "row": i + 1,
                "keys": {k: row.keys.get(k, "") for k in key_columns},
                "in_paper": papers[i] is not None,
                "run": bool(runs[i]),
                "seeds": sorted(runs[i]),
                "planned_runs": len(row.runs),
                "metrics_path": _paths_json(row.metrics_path),
                "dataset_kind": row.dataset_kind,
                "note": row.note,
                "baseline_row": None if base is None else base + 1,
                "verdict_column": judged,
                "delta": _delta_json(comparison.deltas.get(judged or "")),
                "published_delta": comparison.published_deltas.get(judged or ""),
                "verdict": comparison.verdict,
                **({"provenance": {str(s): r.provenance for s, r in runs[i].items()}} if runs[i] else {}),
            }
        )
    columns_out = ["table", "row", *key_columns, *LONG_COLUMNS]
    frame = pd.DataFrame.from_records(records, columns=columns_out)
    for column in _FLOATS:
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    for column in _COUNTS:
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    # A table whose rows fine-tune on none of the paper's datasets is an analogue (the demo's Table 1).
    analogue_of = []
    if not any(row.dataset_kind in _KNOWN_KINDS for row in rows):
        analogue_of = sorted({row.keys.get("finetune_dataset", row.dataset_kind) for row in rows})
    return _Built(table_id, frame, key_columns, value_columns, summary_rows, analogue_of, judged, comparisons)


def build_table(
    table_id: str, rows: Sequence[TableRow], published: Mapping[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """One table in long form: a line per (row, value column), reproduced beside published.

    Arguments:
        table_id: the table (every row must belong to it).
        rows: its rows, in the order they are shown.
        published: ``load_published`` output (None: no published values).

    Returns:
        DataFrame with ``table``, ``row`` (1-based), the key columns, then ``LONG_COLUMNS``: ``column``
        (value column), ``n`` (seeds with a value), ``reproduced`` (their mean), ``std`` (sample standard
        deviation, n >= 2), ``published``, ``difference`` (reproduced - published), ``status``
        (``STATUSES``), ``baseline_row`` (the row compared with, ``alps.verdicts``), ``delta``,
        ``delta_low``, ``delta_high`` (the delta against it, paired by seed, and its 95 % interval),
        ``delta_n`` (seed pairs), ``published_delta`` (the paper's), ``verdict`` (on the verdict column's
        line only), ``seeds`` (those with a value, ``;``-separated), ``note``, ``metrics_path`` (the row's
        files, ``;``-separated); floats NaN where there is no value.

    Raises:
        TableError: rows of another table, wrong or repeated keys, a malformed ``metrics.json``.
    """
    return _build(table_id, rows, published or {}).frame


def collect(
    rows: Sequence[TableRow], published: Mapping[str, pd.DataFrame] | None = None
) -> dict[str, pd.DataFrame]:
    """``build_table`` for every table the rows belong to.

    Arguments:
        rows: rows of any tables.
        published: ``load_published`` output (None: no published values).

    Returns:
        Table id -> long DataFrame, in ``_table_order``.
    """
    return {b.table: b.frame for b in _build_all(rows, published or {})}


def _table_order(rows: Sequence[TableRow]) -> list[str]:
    present = list(dict.fromkeys(r.table for r in rows))
    return [t for t in TABLE_IDS if t in present] + [t for t in present if t not in TABLE_IDS]


def _build_all(rows: Sequence[TableRow], published: Mapping[str, pd.DataFrame]) -> list[_Built]:
    return [_build(t, [r for r in rows if r.table == t], published) for t in _table_order(rows)]


# ----------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def _fmt_difference(value: float) -> str:
    return f"{value + 0.0:+.2f}"  # + 0.0 turns -0.0 into 0.0, so no "-0.00"


def _absent(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell_text(
    reproduced: float | None,
    published: float | None,
    difference: float | None,
    status: str,
    std: float | None = None,
) -> str:
    """The wide tables' cell.

    Arguments:
        reproduced, published, difference: the values (None or NaN where absent); ``reproduced`` is the
            mean over the row's seeds.
        status: one of ``STATUSES``.
        std: the standard deviation over the seeds (None or NaN with fewer than two).

    Returns:
        ``"64.90 ± 0.21 (paper 64.52, +0.38)"`` (one seed: ``"64.90 (paper 64.52, +0.38)"``),
        ``"64.90 (no published value)"``, ``"not run (paper 64.52)"``, ``"not run"``,
        ``"n/a (paper 0.00)"`` or ``"n/a"``.
    """
    paper = None if _absent(published) else f"paper {_fmt(published)}"  # type: ignore[arg-type]
    if status in (STATUS_NOT_RUN, STATUS_NA):
        text = STATUS_NOT_RUN if status == STATUS_NOT_RUN else NA_TEXT
        return f"{text} ({paper})" if paper else text
    value = _fmt(reproduced)  # type: ignore[arg-type]
    if not _absent(std):
        value += f" ± {_fmt(std)}"  # type: ignore[arg-type]
    if status == STATUS_NO_PUBLISHED or _absent(difference):
        return f"{value} (no published value)"
    return f"{value} ({paper}, {_fmt_difference(difference)})"  # type: ignore[arg-type]


def _verdict_columns(built: _Built) -> list[str]:
    """The wide layout's columns after the values: seeds, delta, the paper's delta, verdict."""
    if built.verdict_column is None:
        return ["n"]
    shown = VALUE_TITLES.get(built.verdict_column, built.verdict_column)
    return ["n", f"Δ {shown} [95 % CI]", "Paper Δ", "Verdict"]


def _verdict_cells(built: _Built, i: int) -> list[str]:
    """Row ``i``'s seeds run, and its delta, the paper's delta and verdict on the verdict column."""
    detail = built.rows[i]
    cells = [seed_count_text(len(detail["seeds"]), detail["planned_runs"]) if detail["run"] else ""]
    if built.verdict_column is None:
        return cells
    comparison = built.comparisons[i]
    paper = comparison.published_deltas.get(built.verdict_column)
    ours = delta_text(comparison.deltas.get(built.verdict_column))
    return [*cells, ours, "" if paper is None else _fmt_difference(paper), comparison.verdict]


def _wide(built: _Built) -> tuple[list[str], list[list[str]]]:
    """Header and body of the wide layout: keys, one column per value, seeds and the verdict on the
    row's delta against its baseline, a note column if any row has one."""
    has_note = any(r["note"] for r in built.rows)
    header = [KEY_TITLES.get(k, k) for k in built.key_columns]
    header += [VALUE_TITLES.get(c, c) for c in built.value_columns]
    header += _verdict_columns(built)
    header += ["Note"] if has_note else []
    body = []
    for i, (_, group) in enumerate(built.frame.groupby("row", sort=True)):
        first = group.iloc[0]
        lines = {r.column: r for r in group.itertuples()}
        cells = {
            c: cell_text(r.reproduced, r.published, r.difference, r.status, r.std) for c, r in lines.items()
        }
        line = [str(first[k]) for k in built.key_columns] + [cells[c] for c in built.value_columns]
        line += _verdict_cells(built, i)
        line += [str(first["note"])] if has_note else []
        body.append(line)
    return header, body


_LEGEND = (
    "Cells: reproduced, the mean over the row's seeds ± their standard deviation (two or more seeds) "
    "(paper P, difference mean - paper); *not run*: no metrics.json of the row exists; *n/a*: the runs "
    "have no value (a class absent from both prediction and labels); *no published value*: the paper has "
    "no such row or column. *n*: seeds run (of those planned). *Δ [95 % CI]*: the row minus its "
    "baseline row, the mean of the per-seed differences with its Student-t interval; *Paper Δ*: the "
    "same delta in the paper; *Verdict*: *reproduced* (the paper's delta lies in our interval, which "
    "excludes zero), *not reproduced* (it lies outside), *inconclusive* (fewer than two seed pairs, or "
    "the interval holds both zero and the paper's delta), *no published delta*, *baseline* (the row "
    "others are compared with), *no baseline*, *not run*. Percent, two decimals."
)


def _wide_frame(built: _Built) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The wide layout as a frame, and each column's alignment: keys, the verdict and the note left,
    numbers (values, n, deltas) right."""
    header, body = _wide(built)
    numbers = len(built.value_columns) + len(_verdict_columns(built)) - (built.verdict_column is not None)
    aligns = ("left",) * len(built.key_columns) + ("right",) * numbers
    aligns += ("left",) * (len(header) - len(aligns))
    return pd.DataFrame(body, columns=header, dtype=str), aligns


def render_markdown(built: _Built, title: str) -> str:
    """The wide Markdown table (pandas' ``to_markdown``) with a heading and the legend."""
    frame, aligns = _wide_frame(built)
    # A "|" inside a cell would end it; tabulate leaves escaping to the caller.
    frame = frame.map(lambda text: text.replace("|", "\\|"))
    frame.columns = [c.replace("|", "\\|") for c in frame.columns]
    # disable_numparse: tabulate would reformat a cell that reads as a number ("+0.38" -> "0.38").
    table = frame.to_markdown(index=False, tablefmt="pipe", colalign=aligns, disable_numparse=True)
    line = verdict_line(count_verdicts(built.verdicts), built.verdict_column)
    return "\n".join([f"# {title}", "", _LEGEND, "", line, "", table]) + "\n"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters exactly as pandas' Styler escapes cells (``escape="latex"``).

    Arguments:
        text: plain text.

    Returns:
        The text, safe inside a tabular cell or a caption.
    """
    return _escape_latex(text)


def render_latex(built: _Built, title: str) -> str:
    """The wide table as a booktabs ``tabular`` inside a ``table*`` float (pandas' ``Styler.to_latex``)."""
    frame, aligns = _wide_frame(built)
    # Escaped as Styler would, then the two non-ASCII signs as math (pdflatex has no glyph for a bare Δ).
    frame = frame.map(_latex_cell)
    frame.columns = [_latex_cell(c) for c in frame.columns]
    line = verdict_line(count_verdicts(built.verdicts), built.verdict_column)
    styler = frame.style.hide(axis="index")
    table = styler.to_latex(
        hrules=True,
        column_format="".join(a[0] for a in aligns),
        environment="table*",
        position="t",
        position_float="centering",
        caption=(
            f"{latex_escape(title)}. Cells: mean $\\pm$ standard deviation over the seeds (paper value, "
            f"mean $-$ paper). {_latex_cell(line)}"
        ),
        label=f"tab:alps-table{built.table}",
    )
    comment = (
        "% Generated by alps.tables (alps tables). Needs \\usepackage{booktabs}; for a wide table wrap the\n"
        "% tabular in \\resizebox{\\textwidth}{!}{...} (graphicx).\n"
    )
    return comment + table


def _latex_cell(text: str) -> str:
    return latex_escape(text).replace("±", "$\\pm$").replace("Δ", "$\\Delta$")


def _csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format="%.2f", lineterminator="\n")


def _summary(built: _Built) -> dict[str, Any]:
    frame = built.frame
    counts = {s: int((frame["status"] == s).sum()) for s in STATUSES}
    compared = frame[frame["status"] == STATUS_COMPARED]
    differences = compared["difference"]
    miou = compared[compared["column"].isin(["mIoU", "miou"])]["difference"]
    return {
        "table": built.table,
        "title": table_title(built),
        "files": {kind: f"table{built.table}.{kind}" for kind in ("csv", "md", "tex")},
        "key_columns": built.key_columns,
        "value_columns": built.value_columns,
        "rows": len(built.rows),
        "rows_run": sum(r["run"] for r in built.rows),
        "rows_in_paper": sum(r["in_paper"] for r in built.rows),
        "values": counts,
        "mean_difference": round2(differences.mean()) if len(differences) else None,
        "mean_abs_difference": round2(differences.abs().mean()) if len(differences) else None,
        "max_abs_difference": round2(differences.abs().max()) if len(differences) else None,
        "miou_mean_difference": round2(miou.mean()) if len(miou) else None,
        "verdict_column": built.verdict_column,
        "verdicts": count_verdicts(built.verdicts),
        "verdict_line": verdict_line(count_verdicts(built.verdicts), built.verdict_column),
        "row_details": built.rows,
    }


def _verdict_summary(counts: Mapping[str, int]) -> str:
    """The index's verdict cell: the non-zero counts, e.g. ``2 reproduced, 5 inconclusive, 2 baseline``."""
    return ", ".join(f"{n} {verdict}" for verdict, n in counts.items() if n)


def _index_markdown(summaries: Sequence[dict[str, Any]], published_dir: Path | None) -> str:
    lines = [
        "# ALPS paper tables, reproduced",
        "",
        'Each table beside the numbers published in "ALPS: An Auto-Labeling and Pre-training Scheme for '
        'Remote Sensing Segmentation With Segment Anything Model". Written by `alps tables` '
        f"(alps {__version__}); published values from `{published_dir if published_dir else 'none'}`. "
        "docs/tables.md describes the files.",
        "",
        _LEGEND,
        "",
        "| table | rows | run | in paper | compared | not run | n/a | no published value "
        "| mean diff | mean abs diff | mIoU mean diff | verdicts | files |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]

    def num(value: float | None) -> str:
        return "" if value is None else _fmt_difference(value)

    for s in summaries:
        v = s["values"]
        files = ", ".join(f"[{k}]({name})" for k, name in s["files"].items())
        lines.append(
            f"| {s['title']} | {s['rows']} | {s['rows_run']} | {s['rows_in_paper']} | "
            f"{v[STATUS_COMPARED]} | {v[STATUS_NOT_RUN]} | {v[STATUS_NA]} | {v[STATUS_NO_PUBLISHED]} | "
            f"{num(s['mean_difference'])} | "
            f"{'' if s['mean_abs_difference'] is None else _fmt(s['mean_abs_difference'])} | "
            f"{num(s['miou_mean_difference'])} | {_verdict_summary(s['verdicts'])} | {files} |"
        )
    notes = sorted({r["note"] for s in summaries for r in s["row_details"] if r["note"]})
    if notes:
        lines += ["", "Notes on rows:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


def write_tables(
    rows: Sequence[TableRow],
    out_dir: str | os.PathLike[str],
    published_dir: str | os.PathLike[str] | None = DEFAULT_PUBLISHED_DIR,
) -> list[Path]:
    """Write every table the rows belong to, and an index.

    Every ``metrics.json`` is read and checked before anything is written, so a bad file leaves the
    output folder as it was. Each file is written atomically.

    Arguments:
        rows: the rows, in the order they are shown (per table); ``rows_from_json`` reads them.
        out_dir: output folder (created).
        published_dir: the published tables (default ``results/paper/`` of the repository); None: no
            published values (every value is "no published value" or "not run").

    Returns:
        The files written: per table ``table<id>.csv`` (long), ``table<id>.md`` and ``table<id>.tex``
        (wide), then ``README.md`` and ``tables.json``.

    Raises:
        TableError: malformed rows, published tables or ``metrics.json`` (names the file and the problem).
    """
    if not rows:
        raise TableError("no rows: nothing to tabulate")
    published_path = Path(published_dir) if published_dir is not None else None
    published = load_published(published_path) if published_path is not None else {}
    return _write_built(_build_all(rows, published), Path(out_dir), published_path)


def _write_built(built: Sequence[_Built], out: Path, published_path: Path | None) -> list[Path]:
    """``write_tables`` after the tables are built: the per-table files and the index."""
    written: list[Path] = []
    summaries = []
    for b in built:
        title = table_title(b)
        for suffix, text in (
            ("csv", _csv_text(b.frame)),
            ("md", render_markdown(b, title)),
            ("tex", render_latex(b, title)),
        ):
            path = out / f"table{b.table}.{suffix}"
            atomic_write_text(path, text)
            written.append(path)
        summaries.append(_summary(b))
    index = out / "README.md"
    atomic_write_text(index, _index_markdown(summaries, published_path))
    report = {
        "alps_version": __version__,
        "published_dir": str(published_path) if published_path is not None else None,
        "units": "percent, two decimals; difference = reproduced - published",
        "statuses": list(STATUSES),
        "tables": summaries,
    }
    summary_path = out / "tables.json"
    atomic_write_text(summary_path, json.dumps(report, indent=2) + "\n")
    return [*written, index, summary_path]


NOT_CONFIGURED = Path("<not in this configuration>")
"""The ``metrics_path`` of a published row that the configuration does not run (always "not run")."""


def study_rows(
    config: Mapping[str, Any], published_dir: str | os.PathLike[str] | None = None
) -> list[TableRow]:
    """The table rows of a workflow configuration (``alps.study.plan_study``), with their runs' metrics.

    Arguments:
        config: the validated workflow configuration.
        published_dir: the published tables; their rows that the configuration does not run are included.

    Returns:
        The rows, per table in the paper's order.
    """
    study = plan_study(config, published_dir)
    return [
        TableRow(
            table=row.table,
            keys=row.keys,
            # One metrics.json per planned seed; a paper-only row has none (always "not run").
            metrics_path={seed: Path(path) for seed, path in paths.items()} if paths else NOT_CONFIGURED,
            dataset_kind=row.dataset_kind,
            note=row.note,
        )
        for row, paths in iter_table_rows(study)
    ]


def table_metrics(frames: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """The reproduced mIoU/mAcc (Table 6: DSC and IoU means) of every run row, for ``dvc metrics``.

    Arguments:
        frames: the long tables by table id (``collect``).

    Returns:
        ``{"table<id>": {"<row keys joined by ' | '>": {"mIoU": mean, "mIoU_std": ..., "mIoU_n": ...,
        "mAcc": ..., ...}}}``, and on the verdict column of a row compared with its baseline
        ``delta_<column>``, ``delta_<column>_low``/``_high`` (95 % interval) and ``verdict``; ``_std`` and
        the interval only where there are two seeds or more. Rows not run are left out (DVC shows numbers,
        not "not run").
    """
    metrics: dict[str, Any] = {}
    for table_id, frame in sorted(frames.items()):
        summary = frame[frame["column"].isin(["mIoU", "mAcc", "dsc_mean", "miou"])]
        summary = summary[summary["status"].isin([STATUS_COMPARED, STATUS_NO_PUBLISHED])]
        key_columns = TABLE_KEYS.get(table_id, ())
        for _, line in summary.iterrows():
            label = " | ".join(str(line[c]) for c in key_columns if c in line) or str(line["row"])
            entry = metrics.setdefault(f"table{table_id}", {}).setdefault(label, {})
            column = line["column"]
            entry[column] = float(line["reproduced"])
            entry[f"{column}_n"] = int(line["n"])
            if not pd.isna(line["std"]):
                entry[f"{column}_std"] = float(line["std"])
            if line["verdict"]:
                if not pd.isna(line["delta"]):
                    entry[f"delta_{column}"] = float(line["delta"])
                for end in ("low", "high"):
                    if not pd.isna(line[f"delta_{end}"]):
                        entry[f"delta_{column}_{end}"] = float(line[f"delta_{end}"])
                entry["verdict"] = line["verdict"]
    return metrics


def write_study_tables(
    config: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    *,
    published_dir: str | os.PathLike[str] | None = DEFAULT_PUBLISHED_DIR,
    log: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """The workflow's ``tables`` rule: every table of ``config`` and its numbers for DVC.

    Arguments:
        config: the validated workflow configuration.
        out_dir: the tables folder (``write_tables``).
        metrics_path: the JSON of ``table_metrics`` (kept outside ``out_dir``, so DVC can track it
            as metrics while ``out_dir`` is a cached output).
        published_dir: the published tables (default ``results/paper``).
        log: a file that receives a line per table written.

    Returns:
        The files written.
    """
    published_path = Path(published_dir) if published_dir is not None else None
    published = load_published(published_path) if published_path is not None else {}
    rows = study_rows(config, published_dir)
    if not rows:
        raise TableError("the configuration has no tables: nothing to tabulate")
    # Built once: the same tables give the files and the DVC metrics.
    built = _build_all(rows, published)
    written = _write_built(built, Path(out_dir), published_path)
    metrics = table_metrics({b.table: b.frame for b in built})
    atomic_write_text(Path(metrics_path), json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    if log is not None:
        lines = [f"wrote {path}" for path in [*written, Path(metrics_path)]]
        atomic_write_text(Path(log), "\n".join(lines) + "\n")
    return [*written, Path(metrics_path)]
