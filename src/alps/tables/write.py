"""Writing the tables of some rows, and of a workflow configuration (with its numbers for DVC)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

# The escaping Styler.to_latex(escape="latex") applies to cells; pandas is pinned (pyproject.toml).
from alps import __version__
from alps.io.atomic import atomic_write_text
from alps.study import TABLE_KEYS, iter_table_rows, plan_study
from alps.tables.build import _build_all, _Built, table_title
from alps.tables.published import load_published
from alps.tables.render import _csv_text, _index_markdown, _summary, render_latex, render_markdown
from alps.tables.rows import TableRow
from alps.tables.vocabulary import STATUS_COMPARED, STATUS_NO_PUBLISHED, STATUSES, TableError


def write_tables(
    rows: Sequence[TableRow],
    out_dir: str | os.PathLike[str],
    published_dir: str | os.PathLike[str] | None,
) -> list[Path]:
    """Write every table the rows belong to, and an index.

    Every ``metrics.json`` is read and checked before anything is written, so a bad file leaves the
    output folder as it was. Each file is written atomically.

    Arguments:
        rows: the rows, in the order they are shown (per table); ``rows_from_json`` reads them.
        out_dir: output folder (created).
        published_dir: the published tables (``default_published_dir``: ``results/paper/``); None: no
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
    published_dir: str | os.PathLike[str] | None,
    log: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """The workflow's ``tables`` rule: every table of ``config`` and its numbers for DVC.

    Arguments:
        config: the validated workflow configuration.
        out_dir: the tables folder (``write_tables``).
        metrics_path: the JSON of ``table_metrics`` (kept outside ``out_dir``, so DVC can track it
            as metrics while ``out_dir`` is a cached output).
        published_dir: the published tables (``default_published_dir``: ``results/paper/``); None: no
            published values.
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
