"""Parsers of the training commands: pretrain, finetune, predict."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from alps.cli.options import bands
from alps.cli.parsers import command
from alps.defaults import INIT_MODES
from alps.names import DATASET_KINDS
from alps.train.models import MODEL_NAMES
from alps.train.runtime import KEEP_CHECKPOINTS, LOG_INTERVAL, NUM_WORKERS

ON_ERROR_HELP = "an unreadable image: stop and name it (fail), or leave it out and list it in the card (skip)"


def add_training_options(p: argparse.ArgumentParser) -> None:
    """A training run's settings (``alps.train.configs.build_config``; defaults: ``alps.train.runtime``)."""
    group = p.add_argument_group("training")
    group.add_argument(
        "--model",
        default="upernet-r18",
        choices=MODEL_NAMES,
        metavar="MODEL",
        help="e.g. segformer-b0, upernet-r50 (docs/training.md)",
    )
    group.add_argument("--iters", type=int, help="iterations (overrides --schedule)")
    group.add_argument("--schedule", help="the paper's schedules: 80k, 160k, 320k (or 2k)")
    group.add_argument("--crop-size", type=int)
    group.add_argument("--batch-size", type=int, help="per GPU (default: the model's official config)")
    group.add_argument("--workers", type=int, default=NUM_WORKERS, help="data loader workers")
    group.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    group.add_argument("--val-interval", type=int)
    group.add_argument(
        "--checkpoint-interval", type=int, help="default: every max(val interval, min(iters, 1000))"
    )
    group.add_argument(
        "--keep-checkpoints",
        type=int,
        default=KEEP_CHECKPOINTS,
        help="periodic checkpoints kept (-1: all); the final one and the best by val mIoU are kept too",
    )
    group.add_argument("--log-interval", type=int, default=LOG_INTERVAL)
    group.add_argument("--seed", type=int, default=0)
    group.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        help="deterministic algorithms (default: on for the CPU, off on CUDA; docs/training.md)",
    )
    group.add_argument("--device", default="auto", help="auto, cpu or cuda")
    group.add_argument(
        "--launcher",
        default="none",
        choices=["none", "pytorch", "slurm"],
        help="multi-GPU: run under torchrun with --launcher pytorch",
    )
    group.add_argument(
        "--pretrained", help="ImageNet backbone checkpoint: URL, open-mmlab:// name or local file"
    )
    group.add_argument("--threads", type=int, help="torch CPU threads")
    group.add_argument("--no-resume", action="store_true", help="start over instead of resuming")
    group.add_argument(
        "--restart-on-config-change",
        action="store_true",
        help="a work dir holding another config is started over instead of refused (the workflow's jobs)",
    )
    group.add_argument(
        "--from",
        dest="from_checkpoint",
        type=Path,
        help="checkpoint to initialise from, or the work dir of the run that wrote it (its final checkpoint)",
    )


def add_pretrain(sub: Any) -> argparse.ArgumentParser:
    p = command(sub, "pretrain", "training", help="pre-train a segmentation model on a pseudo-label dataset")
    p.add_argument("pl_dataset", type=Path)
    p.add_argument("work_dir", type=Path)
    p.add_argument(
        "--init",
        default="none",
        choices=INIT_MODES,
        help="initialise from --from (Mixed-PL: backbone of an earlier pre-training)",
    )
    add_training_options(p)
    return p


def add_finetune(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub, "finetune", "training", help="fine-tune on a labeled dataset from a pre-trained checkpoint"
    )
    p.add_argument("dataset_dir", type=Path)
    p.add_argument("work_dir", type=Path)
    p.add_argument(
        "--init",
        default="none",
        choices=INIT_MODES,
        help="which sub-model of --from to load (the paper's overall / backbone / head)",
    )
    p.add_argument(
        "--dataset",
        choices=DATASET_KINDS,
        help="dataset kind (default: detected from the folder)",
    )
    p.add_argument(
        "--reinit-classifier",
        action="store_true",
        help="re-initialise the classifier even where the pre-training's class count equals the task's",
    )
    p.add_argument(
        "--drop-checkpoints",
        action="store_true",
        help="delete this run's checkpoints once metrics.json is written (nothing downstream reads them)",
    )
    add_training_options(p)
    return p


def add_predict(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub,
        "predict",
        "training",
        help="a trained model's labels of images of any size (GeoTIFF in their CRS)",
    )
    p.add_argument("model", type=Path, help="a work dir of alps pretrain/finetune, or an mmseg config file")
    p.add_argument("images", type=Path, help="folder of images (PNG/JPEG/TIFF/GeoTIFF), or a manifest CSV")
    p.add_argument("out_dir", type=Path)
    p.add_argument(
        "--checkpoint", type=Path, help="the weights (default: the work dir's evaluated checkpoint)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--tile-size", type=int, help="default: the side the model's test pipeline keeps")
    p.add_argument("--overlap", type=int, help="default: a quarter of the tile, at most 128 px")
    p.add_argument("--bands", type=bands, help="1-based bands used as RGB, as in training, e.g. 4,3,2")
    p.add_argument("--batch-size", type=int, default=4, help="tiles of a scene labeled together")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--trust-config", action="store_true", help="load a config that runs Python code (not plain data)"
    )
    p.add_argument("--on-error", choices=["fail", "skip"], default="fail", help=ON_ERROR_HELP)
    return p
