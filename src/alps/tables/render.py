"""Rendering a built table: the wide Markdown and LaTeX tables, the long CSV and the index."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

# The escaping Styler.to_latex(escape="latex") applies to cells; pandas is pinned (pyproject.toml).
from pandas.io.formats.style_render import _escape_latex

from alps import __version__
from alps.aggregation import seed_count_text
from alps.tables.build import _Built, table_title
from alps.tables.published import round2
from alps.tables.vocabulary import (
    KEY_TITLES,
    NA_TEXT,
    STATUS_COMPARED,
    STATUS_NA,
    STATUS_NO_PUBLISHED,
    STATUS_NOT_RUN,
    STATUSES,
    VALUE_TITLES,
)
from alps.verdicts import count_verdicts, delta_text, verdict_line


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
