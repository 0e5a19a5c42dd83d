"""Building a table: the rows' seeds aggregated, matched with the published values and compared."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

# The escaping Styler.to_latex(escape="latex") applies to cells; pandas is pinned (pyproject.toml).
from alps.aggregation import SeedValues, aggregate
from alps.stats import Summary
from alps.study import TABLE_IDS, TABLE_KEYS
from alps.tables.published import _row_match_key, round2
from alps.tables.rows import TableRow, _paths_json
from alps.tables.runs import _KNOWN_KINDS, _read_runs, _row_columns
from alps.tables.vocabulary import (
    STATUS_COMPARED,
    STATUS_NA,
    STATUS_NO_PUBLISHED,
    STATUS_NOT_RUN,
    SUMMARY_COLUMNS,
    TABLE_TITLES,
    TableError,
)
from alps.verdicts import Comparison, compare_rows, verdict_column


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
