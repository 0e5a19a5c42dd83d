"""GIS outputs: label rasters as polygons, tile labels as scene mosaics (``alps.geo``)."""

from __future__ import annotations

import argparse
import logging

from alps.geo.mosaic import mosaic_dataset
from alps.geo.vectorize import read_class_names, vectorize

log = logging.getLogger("alps")


def cmd_vectorize(args: argparse.Namespace) -> None:
    classes = read_class_names(args.classes) if args.classes else None
    summary = vectorize(
        args.labels,
        args.out,
        fmt=args.format,
        simplify=args.simplify,
        min_area=args.min_area,
        classes=classes,
        layer=args.layer,
    )
    log.info(
        "wrote %d polygons (%s, CRS %s) to %s",
        summary["polygons"],
        summary["driver"],
        summary["crs"],
        args.out,
    )


def cmd_mosaic(args: argparse.Namespace) -> None:
    card = mosaic_dataset(args.manifest, args.labels_dir, args.out_dir, split=args.split)
    log.info("mosaicked %d scenes into %s", len(card["scenes"]), args.out_dir)
