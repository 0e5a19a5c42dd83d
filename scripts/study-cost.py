#!/usr/bin/env python3
"""The GPU-hours of a study configuration's training jobs (``alps.study_cost``), computed from its plan.

Plans the configuration (``alps.study.plan_study``, every seed's runs) and sums iterations x the measured
seconds per iteration of each model on an H200 (docs/performance.md) x the GPUs per job. Prints the
totals, at the measured 512 px speeds and scaled by each job's crop; ``--seeds N`` plans the study with
``training.seeds`` 0..N-1 instead of the configuration's (what another choice would cost).
Usage: study-cost.py [CONFIG] [--seeds N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

from alps.study import plan_study
from alps.study_cost import cost_lines, study_cost

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, nargs="?", default=REPO / "config" / "paper.yaml")
    parser.add_argument("--seeds", type=int, help="plan with training.seeds 0..N-1 (tables keep their own)")
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text())
    config["tables"] = {str(k): v for k, v in (config.get("tables") or {}).items()}
    if args.seeds is not None:
        config.setdefault("training", {})["seeds"] = list(range(args.seeds))
    validate(config, str(SCHEMA))  # the schema's defaults, as the workflow fills them before planning
    study = plan_study(config)
    seeds = len({run.seed for run in study.finetune_runs})
    print(f"{args.config}:")
    print("\n".join(cost_lines(study_cost(study, config), seeds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
