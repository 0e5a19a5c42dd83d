"""SAMRS*: a shard painted by SAM prompted with detection boxes (``alps box-labels``)."""

from __future__ import annotations

import argparse
import logging

from alps.box_labels import BoxPromptLabeler, label_box_shard, read_classes
from alps.boxes import BoxSource
from alps.pipeline import seed_everything

log = logging.getLogger("alps")


def cmd_box_labels(args: argparse.Namespace) -> None:
    seed_everything(args.seed)
    # Vocabulary and box files are checked before SAM is loaded (vit_h takes a while to load).
    classes = read_classes(args.classes)
    boxes = BoxSource(args.boxes)
    labeler = BoxPromptLabeler.from_checkpoint(
        args.sam_checkpoint, args.sam_model, device=args.device, bf16=args.bf16, batch_size=args.batch_size
    )
    stats = label_box_shard(
        args.manifest,
        boxes,
        args.out_dir,
        labeler,
        classes,
        split=args.split,
        shard_index=args.shard_index,
        shard_size=args.shard_size,
        skip_unknown=args.skip_unknown,
        min_score=args.min_score,
    )
    log.info(
        "SAMRS* labels of %d images from %d boxes, coverage %.3f",
        stats["images"],
        stats["boxes"]["prompted"],
        stats["coverage"],
    )
