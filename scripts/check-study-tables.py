#!/usr/bin/env python3
"""Check that every planned cell of a study's tables holds a reproduced value (``make test-study``).

Reads the configuration's plan (``alps.study.plan_study``) and the long tables ``tables/table<id>.csv`` that
the workflow's ``tables`` rule wrote, in WORK (the Snakemake working directory the configuration's paths
are relative to). Every row that the configuration runs must have been run with every planned seed, its
summary values (mIoU and mAcc; Table 6: mean DSC and mIoU) must be means over all those seeds (``n``), and
the table must have its verdict column with a verdict for every planned row; per-class values may be
absent (a class that neither prediction nor label holds). Prints a line per table with its verdict counts;
exits 1 naming each missing cell.
Usage: check-study-tables.py CONFIG WORK [--tables DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import validate

from alps.study import iter_table_rows, plan_study
from alps.tables import NOT_CONFIGURED, STATUS_COMPARED, STATUS_NO_PUBLISHED, STATUS_NOT_RUN
from alps.verdicts import ROW_VERDICTS

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"

SUMMARY = ("mIoU", "mAcc", "dsc_mean", "miou")
"""The value columns a row must have a number in (whichever of them its table has)."""


def check(config_path: Path, work: Path, tables_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """(one report line per table, the problems found); tables_dir: default the study's ``tables/``."""
    config = yaml.safe_load(config_path.read_text())
    config["tables"] = {str(k): v for k, v in (config.get("tables") or {}).items()}
    validate(config, str(SCHEMA))  # the schema's defaults, as the workflow fills them before planning
    os.chdir(work)  # the configuration's paths are relative to the working directory
    study = plan_study(config)
    planned: dict[str, list[dict[int, str]]] = {}
    for row, paths in iter_table_rows(study):
        if paths:
            planned.setdefault(row.table, []).append(paths)
    report, problems = [], []
    for table in config["tables"]:
        csv = (tables_dir or Path(study.tables_dir())) / f"table{table}.csv"
        if not csv.is_file():
            problems.append(f"table {table}: {csv} was not written")
            continue
        frame = pd.read_csv(csv, keep_default_na=False, dtype={"table": str, "n": str, "verdict": str})
        rows = planned.get(table, [])
        if not rows:
            problems.append(f"table {table}: the configuration plans no run for it")
        if "verdict" not in frame.columns or "n" not in frame.columns:
            problems.append(f"table {table}: {csv} has no n or verdict column")
            continue
        filled = compared = rows_run = 0
        seeds: set[int] = set()
        for paths in rows:
            label = ";".join(paths.values())  # the long CSV lists a row's files in seed order
            lines = frame[frame["metrics_path"] == label]
            if lines.empty:
                problems.append(f"table {table}: no row for the planned runs {label}")
                continue
            if (lines["status"] == STATUS_NOT_RUN).any():
                problems.append(f"table {table}: {label} is 'not run'")
                continue
            summary = lines[lines["column"].isin(SUMMARY)]
            numbers = summary[summary["status"].isin([STATUS_COMPARED, STATUS_NO_PUBLISHED])]
            if summary.empty or len(numbers) != len(summary):
                missing = sorted(set(summary["column"]) - set(numbers["column"])) or list(SUMMARY)
                problems.append(f"table {table}: {label} has no reproduced {', '.join(missing)}")
                continue
            short = numbers[numbers["n"] != str(len(paths))]
            if not short.empty:
                problems.append(
                    f"table {table}: {label}: {', '.join(short['column'])} over n = "
                    f"{', '.join(short['n'])} seeds, not the {len(paths)} planned"
                )
                continue
            if not set(lines["verdict"]) & set(ROW_VERDICTS):
                problems.append(f"table {table}: {label} has no verdict")
                continue
            rows_run += 1
            seeds |= set(paths)
            filled += len(lines[lines["status"].isin([STATUS_COMPARED, STATUS_NO_PUBLISHED])])
            compared += int((lines["status"] == STATUS_COMPARED).sum())
        rows_paper_only = frame[frame["metrics_path"] == str(NOT_CONFIGURED)]["row"].nunique()
        verdicts = frame[frame["verdict"] != ""].groupby("verdict")["row"].nunique()
        report.append(
            f"table {table}: {rows_run} of {len(rows)} planned rows run with seeds "
            f"{', '.join(map(str, sorted(seeds))) or '-'}, {filled} values reproduced ({compared} beside a "
            f"published value); {rows_paper_only} paper rows not in this configuration; verdicts: "
            + (", ".join(f"{n} {v}" for v, n in verdicts.items()) or "none")
        )
    return report, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--tables", type=Path, help="the tables folder (default: WORK/<results_dir>/tables)")
    args = parser.parse_args(argv)
    tables = args.tables.resolve() if args.tables else None
    report, problems = check(args.config.resolve(), args.work.resolve(), tables)
    print("\n".join(report))
    for problem in problems:
        print(f"MISSING {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
