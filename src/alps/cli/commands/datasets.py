"""Datasets: converted from raw archives, assembled from pseudo-labels, shown as figures, scored."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from alps.cli.commands.shared import source_folder
from alps.datasets import prepare_dataset
from alps.evaluate import evaluate_label_dirs
from alps.figures import write_figures
from alps.geo.georef import manifest_georefs
from alps.io.atomic import atomic_write_text
from alps.io.cards import read_json_object
from alps.label_dataset import label_output_dataset
from alps.named_labels import is_label_output
from alps.pl_dataset import assemble_pl_dataset, source_dataset_name
from alps.sharding import images_from_source

log = logging.getLogger("alps")


def cmd_prepare(args: argparse.Namespace) -> None:
    if len(args.paths) == 1:
        raw_dir, out_dir = None, args.paths[0]
    elif len(args.paths) == 2:
        raw_dir, out_dir = args.paths
    else:
        raise ValueError("give RAW_DIR OUT_DIR (or only OUT_DIR for the demo)")
    if raw_dir is None and args.dataset != "demo":
        raise ValueError(f"the {args.dataset} converter needs the folder of raw archives: RAW_DIR OUT_DIR")
    manifest = prepare_dataset(args.dataset, raw_dir, out_dir, **args.options)
    log.info("%s dataset ready: %s", args.dataset, manifest)


def cmd_pl_dataset(args: argparse.Namespace) -> None:
    if is_label_output(args.source):
        card = label_output_dataset(
            args.source,
            args.out_dir,
            tile_size=args.tile_size,
            val_fraction=args.val_fraction,
            seed=args.seed,
        )
        log.info(
            "pseudo-labeled dataset %s: %s tiles, %d classes, coverage %.3f",
            args.out_dir,
            card["images_per_split"],
            card["num_classes"],
            card["coverage"],
        )
        return
    if not args.paint_dirs:
        raise ValueError(
            f"{args.source} is not an `alps label` output: pass its painted shards (--paint-dirs)"
        )
    split = args.split or "train"
    images = {split: images_from_source(args.source, args.split)}
    paint_dirs = {split: args.paint_dirs}
    if args.val_paint_dirs:
        # The paper's PL datasets: val labeled with the model fitted on train (alps.pl_dataset).
        images["val"] = images_from_source(args.source, "val")
        paint_dirs["val"] = args.val_paint_dirs
    # Tiles of a georeferenced scene keep their CRS and transform in the PL dataset (.aux.xml sidecars).
    georefs = manifest_georefs(args.source) if args.source.suffix.lower() == ".csv" else None
    card = assemble_pl_dataset(
        images,
        paint_dirs,
        args.out_dir,
        binary=args.binary,
        num_classes=args.num_classes,
        bands=args.bands,
        georefs=georefs,
        inputs=[source_folder(args.source)],
        source_dataset=source_dataset_name(args.source),  # its pre-training takes that dataset's scale
    )
    log.info(
        "pseudo-labeled dataset %s: %d images, coverage %.3f", args.out_dir, card["images"], card["coverage"]
    )


def cmd_figures(args: argparse.Namespace) -> None:
    palette = None
    gt_dir = args.gt_dir
    if gt_dir is not None and not gt_dir.is_dir():
        # The workflow always passes the dataset's label folder; an unlabeled dataset has none.
        log.info("no ground truth at %s: figures show image and pseudo-label only", gt_dir)
        gt_dir = None
    if gt_dir is not None and args.gt_classes and Path(args.gt_classes).is_file():
        palette = read_json_object(args.gt_classes, "class list").get("palette")
    paths = write_figures(
        args.pl_dataset,
        args.out_dir,
        split=args.split,
        gt_dir=gt_dir,
        gt_palette=palette,
        count=args.count,
    )
    log.info("wrote %d figures to %s", len(paths), args.out_dir)


def cmd_evaluate_labels(args: argparse.Namespace) -> None:
    names = None
    if args.class_names:
        try:
            value = json.loads(Path(args.class_names).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{args.class_names}: not JSON ({exc})") from exc
        names = value.get("classes") if isinstance(value, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{args.class_names}: expected a JSON object with a 'classes' list of names")
    report = evaluate_label_dirs(args.pred_dir, args.gt_dir, args.num_classes, args.ignore, names)
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    print(text, end="")
