"""``alps label``: every labeling stage in one process, images -> pseudo-labels (and a gallery)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from alps.classmap import load_class_map
from alps.cli.commands.shared import cluster_config, encoder, mask_generator
from alps.geo.georef import manifest_georefs
from alps.geo.scene import WHOLE_IMAGE_TILE, SceneOptions, check_scene_sizes
from alps.label_folder import repair_label_output
from alps.sharding import images_from_source

log = logging.getLogger("alps")


def _check_class_map(args: argparse.Namespace) -> None:
    """Validate ``--class-map`` before any work, when K is fixed (``--k auto``: after the fit)."""
    if args.class_map is not None and args.k is not None:
        load_class_map(args.class_map, args.k)


def cmd_label(args: argparse.Namespace) -> None:
    # A publication a killed run left half done is finished first, even if the arguments fail below.
    repair_label_output(args.out_dir)
    _check_class_map(args)
    images = images_from_source(args.images)
    tiling = SceneOptions(WHOLE_IMAGE_TILE if args.backend == "coco" else args.tile_size, args.overlap)
    check_scene_sizes(images, tiling)  # from the headers, before the models are loaded
    from alps.pipeline import label  # deferred: torch, imported once the inputs are known to be sane

    georefs = manifest_georefs(args.images) if args.images.suffix.lower() == ".csv" else {}
    card = label(
        images,
        args.out_dir,
        mask_generator(args),
        encoder(args),
        cluster_config(args),
        area_threshold=args.area_threshold,
        bands=args.bands,
        binary=args.binary,
        class_map=args.class_map,
        gallery=not args.no_gallery,
        on_error=args.on_error,
        scene_options=SceneOptions(args.tile_size, args.overlap, georefs),
    )
    if card["skipped"]:
        names = ", ".join(entry["path"] for entry in card["skipped"])
        log.warning(
            "skipped %d unreadable image(s) (listed in %s): %s",
            len(card["skipped"]),
            Path(args.out_dir) / "label_card.json",
            names,
        )
    log.info(
        "labeled %d images into %s: K=%d, %d of %d masks kept, coverage %.3f",
        card["images"],
        args.out_dir,
        card["k"],
        card["masks_kept"],
        card["masks"],
        card["coverage"],
    )
