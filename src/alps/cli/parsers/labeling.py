"""Parsers of the labeling commands: masks, features, cluster, paint, label, box-labels, gallery,
apply-class-map."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from alps.cli.options import (
    add_cluster_options,
    add_encoder_options,
    add_mask_options,
    add_source,
    bands,
    fraction,
)
from alps.cli.parsers import command
from alps.defaults import SHARD_SIZE
from alps.names import SAM_MODELS

ON_ERROR_HELP = "an unreadable image: stop and name it (fail), or leave it out and list it in the card (skip)"


def add_masks(sub: Any) -> argparse.ArgumentParser:
    p = command(sub, "masks", "labeling", help="generate the masks of (a shard of) images into a mask shard")
    add_source(p)
    p.add_argument("out", type=Path, help="mask shard (.parquet) to write")
    add_mask_options(p)
    add_encoder_options(p, None)
    p.add_argument(
        "--features-out",
        type=Path,
        help="also write the feature shard in the same pass (required for --encoder sam)",
    )
    return p


def add_features(sub: Any) -> argparse.ArgumentParser:
    p = command(sub, "features", "labeling", help="compute the PFL of every mask of a mask shard")
    add_source(p)
    p.add_argument("mask_shard", type=Path)
    p.add_argument("out", type=Path, help="feature shard (.npz) to write")
    add_encoder_options(p, "efficientnet-lite0")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bands", type=bands)
    return p


def add_cluster(sub: Any) -> argparse.ArgumentParser:
    p = command(sub, "cluster", "labeling", help="fit online k-means on feature shards")
    p.add_argument("feature_shards", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True, help="model file (kmeans.npz) to write")
    add_cluster_options(p)
    return p


def add_paint(sub: Any) -> argparse.ArgumentParser:
    p = command(sub, "paint", "labeling", help="assign clusters and paint the pseudo-labels of one shard")
    p.add_argument("mask_shard", type=Path)
    p.add_argument("feature_shard", type=Path)
    p.add_argument("model", type=Path, help="k-means model (kmeans.npz) from `alps cluster`")
    p.add_argument("out_dir", type=Path)
    p.add_argument(
        "--area-threshold",
        type=fraction,
        help="optional check: must equal the threshold the model was fitted with (which is always used)",
    )
    p.add_argument("--binary", action="store_true", help="also paint the binary-mask variant (binary/)")
    return p


def add_box_labels(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub,
        "box-labels",
        "boxes",
        help="SAMRS*: paint one shard with SAM prompted by detection boxes (docs/samrs_star.md)",
    )
    p.add_argument("manifest", type=Path, help="the prepared dataset's manifest.csv")
    p.add_argument(
        "boxes", type=Path, help="folder of DOTA box files (<image>.txt), or mmrotate's Task1_<class>.txt"
    )
    p.add_argument("out_dir", type=Path, help="painted shard folder (labels/, vis/, paint_stats.json)")
    p.add_argument("--split", default="train", help="manifest split to label")
    p.add_argument("--shard-index", type=int, help="0-based shard of the sorted images (default: all)")
    p.add_argument("--shard-size", type=int, default=SHARD_SIZE, help="images per shard")
    p.add_argument(
        "--classes",
        required=True,
        help="class vocabulary, label id = position: 'plane,ship,...' or a classes.json",
    )
    p.add_argument("--skip-unknown", action="store_true", help="leave out boxes of classes not in --classes")
    p.add_argument("--min-score", type=float, help="leave out detections scored below this")
    p.add_argument("--sam-checkpoint", type=Path, required=True, help="SAM weights")
    p.add_argument("--sam-model", default="vit_h", choices=SAM_MODELS)
    p.add_argument("--device", default="cpu", help="torch device for SAM")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast of SAM's encoder (CUDA)")
    p.add_argument("--batch-size", type=int, default=64, help="box prompts decoded at once")
    p.add_argument("--seed", type=int, default=0)
    return p


def add_label(sub: Any) -> argparse.ArgumentParser:
    p = command(sub, "label", "label", help="all labeling stages in one process: images -> pseudo-labels")
    p.add_argument("images", type=Path, help="folder of images (PNG/JPEG/TIFF/GeoTIFF)")
    p.add_argument("out_dir", type=Path)
    add_mask_options(p)
    add_encoder_options(p, "efficientnet-lite0")
    add_cluster_options(p)
    p.add_argument("--binary", action="store_true", help="also paint the binary-mask variant")
    p.add_argument("--on-error", choices=["fail", "skip"], default="fail", help=ON_ERROR_HELP)
    p.add_argument(
        "--tile-size", type=int, default=1024, help="scenes larger than this are labeled tile by tile"
    )
    p.add_argument("--overlap", type=int, default=128, help="overlap of neighbouring tiles in pixels")
    p.add_argument(
        "--class-map",
        type=Path,
        help="YAML naming the clusters (docs/classes.md): labels hold the named classes",
    )
    p.add_argument("--no-gallery", action="store_true", help="do not write gallery/")
    return p


def add_gallery(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub, "gallery", "classes", help="example masks of every pseudo-class, as static HTML + one sheet each"
    )
    p.add_argument("source", type=Path, help="the folder of images or manifest CSV that was labeled")
    p.add_argument("out_dir", type=Path, help="the gallery folder (index.html, cluster_NNN.png)")
    p.add_argument("--split", help="manifest split that was labeled")
    p.add_argument("--mask-shards", type=Path, nargs="+", required=True, help="mask shards (.parquet)")
    p.add_argument(
        "--feature-shards",
        type=Path,
        nargs="+",
        required=True,
        help="their feature shards, in the same order",
    )
    p.add_argument("--model", type=Path, required=True, help="the cluster model")
    p.add_argument("--area-threshold", type=fraction, help="filtering gate (default: the model's)")
    p.add_argument("--paint-dirs", type=Path, nargs="+", help="painted shards: pixel shares from their stats")
    p.add_argument("--class-map", type=Path, help="show the names a class map gives the clusters")
    p.add_argument("--examples", type=int, default=12, help="example masks per pseudo-class")
    p.add_argument("--tile", type=int, default=128, help="example size in pixels")
    p.add_argument("--seed", type=int, default=0, help="chooses the examples")
    p.add_argument("--bands", type=bands, help="1-based bands used as RGB, e.g. 4,3,2")
    return p


def add_apply_class_map(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub,
        "apply-class-map",
        "classes",
        help="a NEW labeling or pseudo-label dataset whose labels are a class map's named classes",
    )
    p.add_argument(
        "pl_dataset",
        type=Path,
        metavar="SOURCE",
        help="an `alps label` output or a pseudo-label dataset (alps pl-dataset); left unchanged",
    )
    p.add_argument("out_dir", type=Path, help="the new folder")
    p.add_argument("--class-map", type=Path, required=True, help="YAML: cluster id -> name (docs/classes.md)")
    p.add_argument("--model", type=Path, help="the cluster model: every id 0..K-1 must be mapped")
    return p
