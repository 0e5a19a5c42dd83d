"""Parsers of the study commands: tables, placeholders."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from alps.cli.parsers import command


def add_tables(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub, "tables", "tables", help="the paper's tables from fine-tuning runs, beside the published values"
    )
    # Rows come from a JSON list or are planned from a workflow configuration (alps.study).
    rows_source = p.add_mutually_exclusive_group(required=True)
    rows_source.add_argument(
        "--rows", type=Path, help="JSON list of rows: table, keys, metrics_path, dataset_kind, note"
    )
    rows_source.add_argument(
        "--config", type=Path, help="a workflow configuration: the rows of its tables (config/paper.yaml)"
    )
    p.add_argument("--results-dir", type=Path, help="with --config: read the runs under this results_dir")
    p.add_argument("--out", type=Path, required=True, help="folder for table<id>.csv/.md/.tex and the index")
    p.add_argument(
        "--published", type=Path, help="published tables folder (default: results/paper of the repository)"
    )
    return p


def add_placeholders(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub,
        "placeholders",
        "tables",
        help="empty stand-in inputs for a dry run of a study config (make paper-dryrun)",
    )
    p.add_argument("config", type=Path, help="the workflow configuration, e.g. config/paper.yaml")
    p.add_argument("root", type=Path, help="a scratch folder: the dry run's working directory")
    return p
