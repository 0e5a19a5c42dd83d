"""Parsers of the dataset commands: prepare, pl-dataset, figures, evaluate-labels."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from alps.cli.options import bands, json_object
from alps.cli.parsers import command
from alps.names import CONVERTERS


def add_prepare(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub,
        "prepare",
        "datasets",
        help="build a dataset (images + labels + manifest, mmseg layout) from its raw archives",
    )
    p.add_argument("dataset", choices=CONVERTERS)
    p.add_argument(
        "paths",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="RAW_DIR OUT_DIR: the raw archives' folder (read-only) and the output folder (demo: OUT_DIR)",
    )
    p.add_argument(
        "--options",
        type=json_object,
        default={},
        help="converter options as JSON, e.g. '{\"patch_size\": 896}' (docs/datasets.md)",
    )
    return p


def add_pl_dataset(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub,
        "pl-dataset",
        "datasets",
        help="an mmseg-layout pseudo-label dataset: of an `alps label` output, or of painted shards",
    )
    p.add_argument(
        "source",
        type=Path,
        help="an `alps label` (or `alps apply-class-map`) output, or the folder of images or manifest CSV "
        "that painted shards labeled",
    )
    p.add_argument("out_dir", type=Path)
    p.add_argument("--paint-dirs", type=Path, nargs="+", help="painted shards (a source of images)")
    p.add_argument(
        "--tile-size", type=int, default=512, help="an `alps label` output: tile side of the dataset"
    )
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="an `alps label` output: share of tiles in val"
    )
    p.add_argument("--seed", type=int, default=0, help="an `alps label` output: keys the train/val split")
    p.add_argument("--split", default="train", help="split of the source to take the images from")
    p.add_argument("--binary", action="store_true", help="use the binary-mask variant as labels")
    p.add_argument(
        "--val-paint-dirs", type=Path, nargs="+", help="painted shards of the source's val split, if labeled"
    )
    p.add_argument("--bands", type=bands, help="1-based bands the images were labeled with, e.g. 4,3,2")
    p.add_argument(
        "--num-classes",
        type=int,
        help="declare N label ids in the card (the paper's SAMRS-PL: 64 with k=46); default: the shards' k",
    )
    return p


def add_figures(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub, "figures", "datasets", help="image | pseudo-label | ground truth figures (paper Fig. 3-5)"
    )
    p.add_argument("pl_dataset", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--split", default="train")
    p.add_argument("--gt-dir", type=Path, help="ground-truth index labels with the same file names")
    p.add_argument("--gt-classes", help="classes.json whose 'palette' colours the ground truth")
    p.add_argument("--count", type=int, default=6)
    return p


def add_evaluate_labels(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub,
        "evaluate-labels",
        "datasets",
        help="score pseudo-labels against ground truth (Hungarian, majority)",
    )
    p.add_argument("pred_dir", type=Path)
    p.add_argument("gt_dir", type=Path)
    p.add_argument("--num-classes", type=int)
    p.add_argument("--ignore", type=int, nargs="*", default=[255], help="ground-truth values not scored")
    p.add_argument("--class-names", help="JSON file with a 'classes' list (a dataset's classes.json)")
    p.add_argument("--out", type=Path, help="write the report here (it is always printed)")
    return p
