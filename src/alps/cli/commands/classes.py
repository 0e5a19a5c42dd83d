"""The pseudo-classes looked at and named: the cluster gallery and class maps."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from alps.classmap import apply_class_map_to_dataset
from alps.cli.commands.shared import source_folder
from alps.cluster import ClusterModel
from alps.gallery import gallery_from_shards
from alps.named_labels import apply_class_map_to_label_output, is_label_output
from alps.sharding import images_from_source

log = logging.getLogger("alps")


def cmd_gallery(args: argparse.Namespace) -> None:
    images = images_from_source(args.source, args.split)
    summary = gallery_from_shards(
        {item.image_id: item.path for item in images},
        args.mask_shards,
        args.feature_shards,
        args.model,
        args.out_dir,
        area_threshold=args.area_threshold,
        paint_dirs=args.paint_dirs,
        class_map_path=args.class_map,
        examples=args.examples,
        seed=args.seed,
        tile=args.tile,
        bands=args.bands,
        image_folders=[source_folder(args.source)],
    )
    log.info("gallery of %d pseudo-classes: %s", summary["k"], Path(args.out_dir) / "index.html")


def cmd_apply_class_map(args: argparse.Namespace) -> None:
    if is_label_output(args.pl_dataset):
        card = apply_class_map_to_label_output(args.pl_dataset, args.out_dir, args.class_map)
        named = card["class_map"]
        log.info(
            "%s: %d named classes %s, coverage %.3f",
            args.out_dir,
            len(named["classes"]),
            named["classes"],
            named["coverage"],
        )
        return
    k = ClusterModel.load(args.model).k if args.model is not None else None
    card = apply_class_map_to_dataset(args.pl_dataset, args.out_dir, args.class_map, k=k)
    log.info(
        "%s: %d named classes %s, coverage %.3f",
        args.out_dir,
        card["num_classes"],
        card["classes"],
        card["coverage"],
    )
