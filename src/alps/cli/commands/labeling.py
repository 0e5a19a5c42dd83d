"""The labeling stages one at a time, as the workflow runs them: masks, features, cluster, paint."""

from __future__ import annotations

import argparse
import logging

from alps.cli.commands.shared import cluster_config, encoder, items, mask_generator
from alps.pipeline import run_cluster, run_features, run_masks, run_paint, seed_everything

log = logging.getLogger("alps")


def cmd_masks(args: argparse.Namespace) -> None:
    seed_everything(args.seed)
    features = encoder(args) if args.features_out else None
    run_masks(
        items(args),
        mask_generator(args),
        args.out,
        encoder=features,
        features_out=args.features_out,
        bands=args.bands,
    )


def cmd_features(args: argparse.Namespace) -> None:
    seed_everything(args.seed)
    run_features(items(args), args.mask_shard, encoder(args), args.out, bands=args.bands)


def cmd_cluster(args: argparse.Namespace) -> None:
    model = run_cluster(args.feature_shards, cluster_config(args), args.area_threshold, args.out)
    log.info("k-means with K=%d fitted on %d vectors", model.k, model.card["vectors_per_epoch"])


def cmd_paint(args: argparse.Namespace) -> None:
    stats = run_paint(
        args.mask_shard,
        args.feature_shard,
        args.model,
        args.out_dir,
        args.area_threshold,
        binary=args.binary,
    )
    log.info("painted %d images, coverage %.3f", stats["images"], stats["coverage"])
