#!/usr/bin/env python3
"""Build the inputs of the study's executed miniature (.test/config.yaml) in a work folder.

Writes, under WORK (default .test/work): raw/{isaid,potsdam,samrs,atlas} (each dataset's download layout,
from the real samples in ../shared/data, tests/miniature.py), boxes/samrs-star (DOTA box files for SAMRS*) and
weights/sam_tiny.pth (a random-weight vit_tiny SAM). Everything is built in a hidden sibling folder and
renamed into place, so WORK/inputs.done marks a complete set; a complete set is left as it is.
Usage: test-study-inputs.py [WORK] [--samples DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The builders are test fixtures (tests/miniature.py), not part of the installed package.
sys.path.insert(0, str(REPO / "tests"))

from miniature import (  # noqa: E402
    atlas_raw,
    isaid_raw,
    potsdam_raw,
    samrs_labeled_boxes,
    samrs_labeled_raw,
    tiny_sam_checkpoint,
)

INPUTS = ("raw", "boxes", "weights")
DONE = "inputs.done"


def build(samples: Path, into: Path) -> None:
    isaid_raw(samples, into / "raw/isaid", ids=("P0003", "P0004"))
    potsdam_raw(samples, into / "raw/potsdam")
    # Every SAMRS image labeled, as SAMRS's are (the figures show the label beside each pseudo-label).
    samrs_labeled_raw(samples, into / "raw/samrs")
    # Slices 6-11 hold the liver; three patients make two train and one test patient.
    atlas_raw(samples, into / "raw/atlas", patients=3, slices=(6, 12), empty_above=4)
    samrs_labeled_boxes(samples, into / "boxes/samrs-star")
    (into / "weights").mkdir(parents=True)
    tiny_sam_checkpoint(into / "weights/sam_tiny.pth", seed=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", nargs="?", type=Path, default=REPO / ".test/work")
    parser.add_argument("--samples", type=Path, default=REPO.parent / "shared/data")
    args = parser.parse_args(argv)
    work: Path = args.work.resolve()
    if (work / DONE).is_file():
        print(f"{work}: inputs already built")
        return 0
    if not args.samples.is_dir():
        print(
            f"error: the samples folder {args.samples} is absent (../shared/data beside the clone)",
            file=sys.stderr,
        )
        return 2
    scratch = work.parent / f".{work.name}.inputs"
    shutil.rmtree(scratch, ignore_errors=True)  # a previous, interrupted build of ours
    scratch.mkdir(parents=True)
    build(args.samples.resolve(), scratch)
    work.mkdir(parents=True, exist_ok=True)
    for name in INPUTS:
        if (work / name).exists():
            print(
                f"error: {work / name} exists without {DONE}: remove it (an interrupted build?)",
                file=sys.stderr,
            )
            return 2
        (scratch / name).rename(work / name)
    scratch.rmdir()
    (work / DONE).write_text("raw, boxes, weights built by scripts/test-study-inputs.py\n")
    print(f"{work}: inputs built")
    return 0


if __name__ == "__main__":
    sys.exit(main())
