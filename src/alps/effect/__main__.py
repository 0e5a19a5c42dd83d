"""``python -m alps.effect``: run (or resume) the ALPS-effect experiment and write its report."""

from __future__ import annotations

import argparse
import logging
import sys

from alps.effect import SIZES, load_settings, run_effect
from alps.effect.jobs import JobError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alps.effect", description=__doc__)
    parser.add_argument("--size", default="cpu", choices=sorted(SIZES), help="the preset (default cpu)")
    parser.add_argument("--config", help="a YAML file of settings that replace the preset's")
    parser.add_argument("--out", default="results/effect", help="output and cache folder")
    parser.add_argument(
        "--data", default="../shared/data", help="folder holding nwpu_vhr10_train/ and nwpu_vhr10_pool/"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        settings = load_settings(args.size, args.config)
        report = run_effect(
            args.out, settings, f"{args.data}/nwpu_vhr10_train", f"{args.data}/nwpu_vhr10_pool"
        )
    except (FileNotFoundError, ValueError, JobError) as exc:
        print(f"alps effect: {exc}", file=sys.stderr)
        return 1
    for line in report["reading"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
