"""Factories several commands share: the mask backend, the encoder, the k-means settings, the images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from alps.cluster_config import ClusterConfig
from alps.masks.base import MaskGenerator
from alps.masks.registry import build_mask_generator
from alps.sharding import ImageItem, images_from_source, select_shard


def cluster_config(args: argparse.Namespace) -> ClusterConfig:
    """The k-means settings of the clustering options."""
    return ClusterConfig(
        k=args.k,
        batch_size=args.batch_size,
        epochs=args.epochs,
        seed=args.seed,
        init_sample=args.init_sample,
        normalize=args.normalize,
        pca_dim=args.pca_dim,
        k_range=tuple(args.k_range),
    )


def mask_generator(args: argparse.Namespace) -> MaskGenerator:
    """The mask backend of the mask options."""
    return build_mask_generator(
        args.backend,
        args.mask_params,
        coco_json=args.coco_json,
        sam_checkpoint=args.sam_checkpoint,
        sam_model=args.sam_model,
        device=args.device,
        bf16=args.bf16,
    )


def encoder(args: argparse.Namespace) -> Any:
    """The feature encoder of the encoder options."""
    from alps.features.encoders import build_encoder  # deferred: torch, only once the inputs are checked

    if args.encoder == "sam":
        return build_encoder("sam")
    options: dict[str, Any] = {"device": args.device, "max_side": args.max_side}
    if args.encoder_layers:
        options["layers"] = args.encoder_layers
    return build_encoder(args.encoder, **options)


def items(args: argparse.Namespace) -> list[ImageItem]:
    """The images of a shard command: its source's (split's) images, or one shard of them."""
    images = images_from_source(args.source, getattr(args, "split", None))
    if getattr(args, "shard_index", None) is not None:
        images = select_shard(images, args.shard_index, args.shard_size)
    return images


def source_folder(source: Path) -> Path:
    """The folder an image source's files lie in: a manifest's folder (its dataset), or the folder itself."""
    return source.parent if source.suffix.lower() == ".csv" else source


def set_threads(threads: int | None) -> None:
    """torch's CPU threads, where asked for."""
    if threads:
        import torch  # deferred: torch, only for the commands that set threads

        torch.set_num_threads(threads)
