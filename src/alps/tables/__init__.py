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

The modules, in the order a table is made: ``vocabulary`` (ids, titles, columns, statuses), ``rows``
(``TableRow`` and its JSON), ``published`` (the paper's tables; ``default_published_dir``), ``runs``
(``metrics.json`` -> values), ``build`` (seeds aggregated, matched, compared), ``render`` (Markdown,
LaTeX, CSV, index), ``write`` (the files; a workflow configuration's tables and DVC numbers). Every public
name is importable from ``alps.tables``.
"""

from __future__ import annotations

from alps.study import PUBLISHED_FILES, TABLE_IDS, TABLE_KEYS, normalize_key
from alps.tables.build import LONG_COLUMNS, TABLE_SUBJECTS, build_table, collect, table_title
from alps.tables.published import (
    PUBLISHED_DIR,
    default_published_dir,
    load_published,
    round2,
    tidy_published,
    write_published,
)
from alps.tables.render import cell_text, latex_escape, render_latex, render_markdown
from alps.tables.rows import TableRow, rows_from_json, rows_to_json
from alps.tables.vocabulary import (
    CANONICAL_METHODS,
    ISAID_ABBREVIATIONS,
    ISAID_COLUMNS,
    KEY_TITLES,
    MEDICAL_COLUMNS,
    NA_TEXT,
    POTSDAM_ABBREVIATIONS,
    POTSDAM_COLUMNS,
    STATUS_COMPARED,
    STATUS_NA,
    STATUS_NO_PUBLISHED,
    STATUS_NOT_RUN,
    STATUSES,
    SUMMARY_COLUMNS,
    TABLE_TITLES,
    VALUE_TITLES,
    TableError,
)
from alps.tables.write import NOT_CONFIGURED, study_rows, table_metrics, write_study_tables, write_tables

__all__ = [
    "CANONICAL_METHODS",
    "ISAID_ABBREVIATIONS",
    "ISAID_COLUMNS",
    "KEY_TITLES",
    "LONG_COLUMNS",
    "MEDICAL_COLUMNS",
    "NA_TEXT",
    "NOT_CONFIGURED",
    "POTSDAM_ABBREVIATIONS",
    "POTSDAM_COLUMNS",
    "PUBLISHED_DIR",
    "PUBLISHED_FILES",
    "STATUSES",
    "STATUS_COMPARED",
    "STATUS_NA",
    "STATUS_NOT_RUN",
    "STATUS_NO_PUBLISHED",
    "SUMMARY_COLUMNS",
    "TABLE_IDS",
    "TABLE_KEYS",
    "TABLE_SUBJECTS",
    "TABLE_TITLES",
    "VALUE_TITLES",
    "TableError",
    "TableRow",
    "build_table",
    "cell_text",
    "collect",
    "default_published_dir",
    "latex_escape",
    "load_published",
    "normalize_key",
    "render_latex",
    "render_markdown",
    "round2",
    "rows_from_json",
    "rows_to_json",
    "study_rows",
    "table_metrics",
    "table_title",
    "tidy_published",
    "write_published",
    "write_study_tables",
    "write_tables",
]
