"""The runs of a row: its seeds' ``metrics.json`` files read and checked, their values per column."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from alps.tables.published import round2
from alps.tables.rows import TableRow
from alps.tables.vocabulary import (
    _LIVER_NAMES,
    _TUMOUR_NAMES,
    ISAID_ABBREVIATIONS,
    ISAID_COLUMNS,
    MEDICAL_COLUMNS,
    POTSDAM_ABBREVIATIONS,
    POTSDAM_COLUMNS,
    SUMMARY_COLUMNS,
    TableError,
)

# The escaping Styler.to_latex(escape="latex") applies to cells; pandas is pinned (pyproject.toml).


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
