"""Training and using models: pre-training, fine-tuning, prediction (torch and mmseg)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from alps.cli.commands.shared import set_threads
from alps.geo.georef import manifest_georefs
from alps.geo.scene import SceneOptions
from alps.io.outputs import OutputSet
from alps.predict import PREDICT_OUTPUT_SET, predict
from alps.sharding import images_from_source
from alps.train.runner import finetune, pretrain

log = logging.getLogger("alps")


def _training_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "num_workers": args.workers,
        "amp": args.amp,
        "seed": args.seed,
        "device": args.device,
        "launcher": args.launcher,
        "log_interval": args.log_interval,
        "max_keep_ckpts": args.keep_checkpoints,
    }
    for name in ("batch_size", "val_interval", "checkpoint_interval", "pretrained", "deterministic"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return options


def cmd_pretrain(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    result = pretrain(
        args.pl_dataset,
        args.work_dir,
        args.model,
        iters=args.iters,
        schedule=args.schedule,
        crop_size=args.crop_size,
        init=args.init,
        from_checkpoint=args.from_checkpoint,
        resume=not args.no_resume,
        restart_on_config_change=args.restart_on_config_change,
        **_training_options(args),
    )
    log.info("pre-trained %s: %s (metrics %s)", args.model, result.checkpoint, result.metrics_path)


def cmd_finetune(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    result = finetune(
        args.dataset_dir,
        args.work_dir,
        args.init,
        args.from_checkpoint,
        args.model,
        dataset=args.dataset,
        iters=args.iters,
        schedule=args.schedule,
        crop_size=args.crop_size,
        resume=not args.no_resume,
        restart_on_config_change=args.restart_on_config_change,
        keep_checkpoints=not args.drop_checkpoints,
        reinit_classifier=args.reinit_classifier,
        **_training_options(args),
    )
    log.info(
        "fine-tuned %s (init %s): mIoU %s, metrics %s",
        args.model,
        args.init,
        (result.metrics.get("metrics") or {}).get("mIoU"),
        result.metrics_path,
    )


def cmd_predict(args: argparse.Namespace) -> None:
    if Path(args.out_dir).is_dir():  # a publication a killed run left half done is finished first
        OutputSet(args.out_dir, PREDICT_OUTPUT_SET, "alps predict").repair()
    set_threads(args.threads)
    georefs = manifest_georefs(args.images) if args.images.suffix.lower() == ".csv" else {}
    card = predict(
        args.model,
        images_from_source(args.images),
        args.out_dir,
        checkpoint=args.checkpoint,
        device=args.device,
        tile_size=args.tile_size,
        overlap=args.overlap,
        bands=args.bands,
        batch_size=args.batch_size,
        trust_config=args.trust_config,
        scene_options=SceneOptions(georefs=georefs),
        on_error=args.on_error,
    )
    log.info(
        "predicted %d images into %s: %d classes %s, coverage %.3f",
        card["images"],
        args.out_dir,
        len(card["classes"]),
        card["classes"],
        card["coverage"],
    )
