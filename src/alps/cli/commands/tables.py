"""The study's outputs: the paper's tables, and the stand-in inputs of a dry run."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from alps.config import load_config
from alps.io.yamlfile import load_yaml
from alps.placeholders import write_placeholders
from alps.tables import default_published_dir, rows_from_json, study_rows, write_tables

log = logging.getLogger("alps")


def cmd_tables(args: argparse.Namespace) -> None:
    published = args.published if args.published is not None else default_published_dir()
    if published is None:
        log.warning("no published tables (results/paper/ not found, no --published): no paper values shown")
    if args.config is not None:
        # The rows of the workflow's study: every run the config plans, at the path the workflow gives it.
        config = load_yaml(args.config)
        if isinstance(config, dict) and args.results_dir is not None:
            config["results_dir"] = str(args.results_dir)
        # Validated and checked as the workflow does; the raw data and checkpoints need not be here.
        loaded = load_config(config if isinstance(config, dict) else args.config, check_files=False)
        rows = study_rows(loaded.config, published)
    else:
        # Relative metrics paths in ROWS.json are relative to the current directory, like every path argument.
        rows = rows_from_json(Path(args.rows).read_text(encoding="utf-8"))
    paths = write_tables(rows, args.out, published)
    log.info("wrote %d files for %d rows to %s", len(paths), len(rows), args.out)


def cmd_placeholders(args: argparse.Namespace) -> None:
    config = load_yaml(args.config)
    if not isinstance(config, dict):
        raise ValueError(f"{args.config}: a workflow configuration is a mapping of keys")
    created = write_placeholders(config, args.root)
    log.info("wrote %d placeholder inputs of %s under %s", len(created), args.config, args.root)
