"""The ``alps`` command: one sub-command per stage, plus ``label`` (all labeling stages in one process).

Every Snakemake rule calls one of these; each sub-command is a thin layer over a library function.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alps import __version__, limits
from alps.config import AREA_THRESHOLD, INIT_MODES

log = logging.getLogger("alps")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object such as '{\"scale\": 200}'")
    return value


def _bands(text: str) -> list[int]:
    try:
        bands = [int(b) for b in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bands must be comma-separated band numbers, got {text!r}") from exc
    if len(bands) not in (1, 3) or min(bands) < 1:
        raise argparse.ArgumentTypeError("give 1 or 3 band numbers, counted from 1 (e.g. 4,3,2)")
    return bands


def _k(text: str) -> int | None:
    if text.lower() in ("auto", "none"):
        return None
    value = int(text)
    if not 2 <= value <= 255:
        raise argparse.ArgumentTypeError(f"k must be between 2 and 255 (255 marks unlabeled), got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"the area threshold is a fraction in (0, 1], got {value}")
    return value


def _add_mask_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("masks")
    group.add_argument(
        "--masks",
        "--backend",
        dest="backend",
        default="felzenszwalb",
        choices=["sam", "felzenszwalb", "slic", "coco"],
        help="mask backend",
    )
    group.add_argument(
        "--mask-params",
        type=_json_object,
        default={},
        help="backend parameters as JSON (AMG parameters for sam)",
    )
    group.add_argument("--coco-json", type=Path, help="COCO instances file (coco backend)")
    group.add_argument("--sam-checkpoint", type=Path, help="SAM weights (sam backend)")
    group.add_argument("--sam-model", default="vit_h", choices=["vit_h", "vit_l", "vit_b", "vit_tiny"])
    group.add_argument("--bf16", action="store_true", help="bfloat16 autocast of SAM's encoder (CUDA)")
    group.add_argument("--device", default="cpu", help="torch device for SAM and the encoder")
    group.add_argument("--bands", type=_bands, help="1-based bands used as RGB, e.g. 4,3,2")


def _layers(text: str) -> tuple[str, ...]:
    return tuple(layer.strip() for layer in text.split(",") if layer.strip())


def _add_encoder_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    group = parser.add_argument_group("features")
    group.add_argument(
        "--encoder",
        default=default,
        choices=["efficientnet-lite0", "sam"],
        help="feature encoder for the PFL",
    )
    group.add_argument(
        "--encoder-layers",
        type=_layers,
        help="efficientnet-lite0 stages pooled and concatenated, e.g. stage5,stage7 (the default)",
    )
    group.add_argument(
        "--max-side", type=int, help="efficientnet-lite0: shrink larger images to this longest side first"
    )


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("clustering")
    group.add_argument(
        "--k", type=_k, default=16, help="number of pseudo-classes, or 'auto' to pick it by BIC (--k-range)"
    )
    group.add_argument(
        "--k-range",
        type=int,
        nargs=2,
        default=(2, 64),
        metavar=("MIN", "MAX"),
        help="candidate K values for --k auto (inclusive; default: 2 64)",
    )
    group.add_argument(
        "--area-threshold",
        type=_fraction,
        default=AREA_THRESHOLD,
        help="filtering gate: drop masks covering more than this fraction of the image",
    )
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--batch-size", type=int, default=4096)
    group.add_argument("--epochs", type=int, default=1, help="Lloyd passes over all vectors")
    group.add_argument("--init-sample", type=int, default=20000)
    group.add_argument("--normalize", choices=["none", "l2"], default="none")
    group.add_argument("--pca-dim", type=int, help="cluster on this many principal components (default: all)")


def _cluster_config(args: argparse.Namespace) -> Any:
    from alps.cluster import ClusterConfig

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


def _generator(args: argparse.Namespace) -> Any:
    from alps.pipeline import build_mask_generator

    return build_mask_generator(
        args.backend,
        args.mask_params,
        coco_json=args.coco_json,
        sam_checkpoint=args.sam_checkpoint,
        sam_model=args.sam_model,
        device=args.device,
        bf16=args.bf16,
    )


def _encoder(args: argparse.Namespace) -> Any:
    from alps.features.encoders import build_encoder

    if args.encoder == "sam":
        return build_encoder("sam")
    options: dict[str, Any] = {"device": args.device, "max_side": args.max_side}
    if args.encoder_layers:
        options["layers"] = args.encoder_layers
    return build_encoder(args.encoder, **options)


def _items(args: argparse.Namespace) -> Any:
    from alps.pipeline import images_from_source, select_shard

    items = images_from_source(args.source, getattr(args, "split", None))
    if getattr(args, "shard_index", None) is not None:
        items = select_shard(items, args.shard_index, args.shard_size)
    return items


def _source_folder(source: Path) -> Path:
    """The folder an image source's files lie in: a manifest's folder (its dataset), or the folder itself."""
    return source.parent if source.suffix.lower() == ".csv" else source


def cmd_prepare(args: argparse.Namespace) -> None:
    from alps.datasets import prepare_dataset

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


def _add_prepare_parser(sub: Any) -> None:
    p = sub.add_parser(
        "prepare", help="build a dataset (images + labels + manifest, mmseg layout) from its raw archives"
    )
    p.add_argument("dataset", choices=["demo", "isaid", "potsdam", "samrs", "atlas", "folder"])
    p.add_argument(
        "paths",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="RAW_DIR OUT_DIR: the raw archives' folder (read-only) and the output folder (demo: OUT_DIR)",
    )
    p.add_argument(
        "--options",
        type=_json_object,
        default={},
        help="converter options as JSON, e.g. '{\"patch_size\": 896}' (docs/datasets.md)",
    )
    p.set_defaults(func=cmd_prepare)


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", type=Path, help="a folder of images or a manifest CSV")
    p.add_argument("--split", help="manifest split to use (train/val/test)")
    p.add_argument("--shard-index", type=int, help="0-based shard of the sorted images")
    p.add_argument("--shard-size", type=int, default=64, help="images per shard")
    p.add_argument("--seed", type=int, default=0)


def cmd_masks(args: argparse.Namespace) -> None:
    from alps.pipeline import run_masks, seed_everything

    seed_everything(args.seed)
    encoder = _encoder(args) if args.features_out else None
    run_masks(
        _items(args),
        _generator(args),
        args.out,
        encoder=encoder,
        features_out=args.features_out,
        bands=args.bands,
    )


def _add_masks_parser(sub: Any) -> None:
    p = sub.add_parser("masks", help="generate the masks of (a shard of) images into a mask shard")
    _add_source(p)
    p.add_argument("out", type=Path, help="mask shard (.parquet) to write")
    _add_mask_options(p)
    _add_encoder_options(p, None)
    p.add_argument(
        "--features-out",
        type=Path,
        help="also write the feature shard in the same pass (required for --encoder sam)",
    )
    p.set_defaults(func=cmd_masks)


def cmd_features(args: argparse.Namespace) -> None:
    from alps.pipeline import run_features, seed_everything

    seed_everything(args.seed)
    run_features(_items(args), args.mask_shard, _encoder(args), args.out, bands=args.bands)


def _add_features_parser(sub: Any) -> None:
    p = sub.add_parser("features", help="compute the PFL of every mask of a mask shard")
    _add_source(p)
    p.add_argument("mask_shard", type=Path)
    p.add_argument("out", type=Path, help="feature shard (.npz) to write")
    _add_encoder_options(p, "efficientnet-lite0")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bands", type=_bands)
    p.set_defaults(func=cmd_features)


def cmd_cluster(args: argparse.Namespace) -> None:
    from alps.pipeline import run_cluster

    model = run_cluster(args.feature_shards, _cluster_config(args), args.area_threshold, args.out)
    log.info("k-means with K=%d fitted on %d vectors", model.k, model.card["vectors_per_epoch"])


def _add_cluster_parser(sub: Any) -> None:
    p = sub.add_parser("cluster", help="fit online k-means on feature shards")
    p.add_argument("feature_shards", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True, help="model file (kmeans.npz) to write")
    _add_cluster_options(p)
    p.set_defaults(func=cmd_cluster)


def cmd_paint(args: argparse.Namespace) -> None:
    from alps.pipeline import run_paint

    stats = run_paint(
        args.mask_shard,
        args.feature_shard,
        args.model,
        args.out_dir,
        args.area_threshold,
        binary=args.binary,
    )
    log.info("painted %d images, coverage %.3f", stats["images"], stats["coverage"])


def _add_paint_parser(sub: Any) -> None:
    p = sub.add_parser("paint", help="assign clusters and paint the pseudo-labels of one shard")
    p.add_argument("mask_shard", type=Path)
    p.add_argument("feature_shard", type=Path)
    p.add_argument("model", type=Path, help="k-means model (kmeans.npz) from `alps cluster`")
    p.add_argument("out_dir", type=Path)
    p.add_argument(
        "--area-threshold",
        type=_fraction,
        help="optional check: must equal the threshold the model was fitted with (which is always used)",
    )
    p.add_argument("--binary", action="store_true", help="also paint the binary-mask variant (binary/)")
    p.set_defaults(func=cmd_paint)


def cmd_pl_dataset(args: argparse.Namespace) -> None:
    from alps.geo.georef import manifest_georefs
    from alps.named_labels import is_label_output
    from alps.pipeline import images_from_source
    from alps.pl_dataset import assemble_pl_dataset, source_dataset_name

    if is_label_output(args.source):
        from alps.label_dataset import label_output_dataset

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
    items = {split: images_from_source(args.source, args.split)}
    paint_dirs = {split: args.paint_dirs}
    if args.val_paint_dirs:
        # The paper's PL datasets: val labeled with the model fitted on train (alps.pl_dataset).
        items["val"] = images_from_source(args.source, "val")
        paint_dirs["val"] = args.val_paint_dirs
    # Tiles of a georeferenced scene keep their CRS and transform in the PL dataset (.aux.xml sidecars).
    georefs = manifest_georefs(args.source) if args.source.suffix.lower() == ".csv" else None
    card = assemble_pl_dataset(
        items,
        paint_dirs,
        args.out_dir,
        binary=args.binary,
        num_classes=args.num_classes,
        bands=args.bands,
        georefs=georefs,
        inputs=[_source_folder(args.source)],
        source_dataset=source_dataset_name(args.source),  # its pre-training takes that dataset's scale
    )
    log.info(
        "pseudo-labeled dataset %s: %d images, coverage %.3f", args.out_dir, card["images"], card["coverage"]
    )


def _add_pl_dataset_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pl-dataset",
        help="an mmseg-layout pseudo-label dataset: of an `alps label` output, or of painted shards",
    )
    p.add_argument(
        "source",
        type=Path,
        help="an `alps label` (or `alps apply-class-map`) output, or the folder of images or manifest CSV "
        "that painted shards labeled",
    )
    p.add_argument("out_dir", type=Path)
    p.add_argument("--paint-dirs", type=Path, nargs="+", help="painted shards (a source of images)")
    p.add_argument(
        "--tile-size", type=int, default=512, help="an `alps label` output: tile side of the dataset"
    )
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="an `alps label` output: share of tiles in val"
    )
    p.add_argument("--seed", type=int, default=0, help="an `alps label` output: keys the train/val split")
    p.add_argument("--split", default="train", help="split of the source to take the images from")
    p.add_argument("--binary", action="store_true", help="use the binary-mask variant as labels")
    p.add_argument(
        "--val-paint-dirs", type=Path, nargs="+", help="painted shards of the source's val split, if labeled"
    )
    p.add_argument("--bands", type=_bands, help="1-based bands the images were labeled with, e.g. 4,3,2")
    p.add_argument(
        "--num-classes",
        type=int,
        help="declare N label ids in the card (the paper's SAMRS-PL: 64 with k=46); default: the shards' k",
    )
    p.set_defaults(func=cmd_pl_dataset)


def cmd_box_labels(args: argparse.Namespace) -> None:
    from alps.box_labels import BoxPromptLabeler, label_box_shard, read_classes
    from alps.boxes import BoxSource
    from alps.pipeline import seed_everything

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


def _add_box_labels_parser(sub: Any) -> None:
    p = sub.add_parser(
        "box-labels",
        help="SAMRS*: paint one shard with SAM prompted by detection boxes (docs/samrs_star.md)",
    )
    p.add_argument("manifest", type=Path, help="the prepared dataset's manifest.csv")
    p.add_argument(
        "boxes", type=Path, help="folder of DOTA box files (<image>.txt), or mmrotate's Task1_<class>.txt"
    )
    p.add_argument("out_dir", type=Path, help="painted shard folder (labels/, vis/, paint_stats.json)")
    p.add_argument("--split", default="train", help="manifest split to label")
    p.add_argument("--shard-index", type=int, help="0-based shard of the sorted images (default: all)")
    p.add_argument("--shard-size", type=int, default=64, help="images per shard")
    p.add_argument(
        "--classes",
        required=True,
        help="class vocabulary, label id = position: 'plane,ship,...' or a classes.json",
    )
    p.add_argument("--skip-unknown", action="store_true", help="leave out boxes of classes not in --classes")
    p.add_argument("--min-score", type=float, help="leave out detections scored below this")
    p.add_argument("--sam-checkpoint", type=Path, required=True, help="SAM weights")
    p.add_argument("--sam-model", default="vit_h", choices=["vit_h", "vit_l", "vit_b", "vit_tiny"])
    p.add_argument("--device", default="cpu", help="torch device for SAM")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast of SAM's encoder (CUDA)")
    p.add_argument("--batch-size", type=int, default=64, help="box prompts decoded at once")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_box_labels)


def cmd_figures(args: argparse.Namespace) -> None:
    from alps.figures import write_figures

    palette = None
    gt_dir = args.gt_dir
    if gt_dir is not None and not gt_dir.is_dir():
        # The workflow always passes the dataset's label folder; an unlabeled dataset has none.
        log.info("no ground truth at %s: figures show image and pseudo-label only", gt_dir)
        gt_dir = None
    if gt_dir is not None and args.gt_classes and Path(args.gt_classes).is_file():
        from alps.io.cards import read_json_object

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


def _add_figures_parser(sub: Any) -> None:
    p = sub.add_parser("figures", help="image | pseudo-label | ground truth figures (paper Fig. 3-5)")
    p.add_argument("pl_dataset", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--split", default="train")
    p.add_argument("--gt-dir", type=Path, help="ground-truth index labels with the same file names")
    p.add_argument("--gt-classes", help="classes.json whose 'palette' colours the ground truth")
    p.add_argument("--count", type=int, default=6)
    p.set_defaults(func=cmd_figures)


def _add_training(p: argparse.ArgumentParser) -> None:
    # No choices= from alps.train.configs here: importing mmengine would slow down every `alps` call.
    # The config builder rejects unknown names with the list of valid ones.
    group = p.add_argument_group("training")
    group.add_argument(
        "--model", default="upernet-r18", help="e.g. segformer-b0, upernet-r50 (docs/training.md)"
    )
    group.add_argument("--iters", type=int, help="iterations (overrides --schedule)")
    group.add_argument("--schedule", help="the paper's schedules: 80k, 160k, 320k (or 2k)")
    group.add_argument("--crop-size", type=int)
    group.add_argument("--batch-size", type=int, help="per GPU (default: the model's official config)")
    group.add_argument("--workers", type=int, default=2, help="data loader workers")
    group.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    group.add_argument("--val-interval", type=int)
    group.add_argument(
        "--checkpoint-interval", type=int, help="default: every max(val interval, min(iters, 1000))"
    )
    group.add_argument(
        "--keep-checkpoints",
        type=int,
        default=1,
        help="periodic checkpoints kept (-1: all); the final one and the best by val mIoU are kept too",
    )
    group.add_argument("--log-interval", type=int, default=50)
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


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def cmd_pretrain(args: argparse.Namespace) -> None:
    from alps.train.runner import pretrain

    _set_threads(args.threads)
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


def _add_pretrain_parser(sub: Any) -> None:
    p = sub.add_parser("pretrain", help="pre-train a segmentation model on a pseudo-label dataset")
    p.add_argument("pl_dataset", type=Path)
    p.add_argument("work_dir", type=Path)
    p.add_argument(
        "--init",
        default="none",
        choices=INIT_MODES,
        help="initialise from --from (Mixed-PL: backbone of an earlier pre-training)",
    )
    _add_training(p)
    p.set_defaults(func=cmd_pretrain)


def cmd_finetune(args: argparse.Namespace) -> None:
    from alps.train.runner import finetune

    _set_threads(args.threads)
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


def _add_finetune_parser(sub: Any) -> None:
    p = sub.add_parser("finetune", help="fine-tune on a labeled dataset from a pre-trained checkpoint")
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
        choices=["isaid", "potsdam", "pl", "folder", "medical"],
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
    _add_training(p)
    p.set_defaults(func=cmd_finetune)


def cmd_evaluate_labels(args: argparse.Namespace) -> None:
    from alps.evaluate import evaluate_label_dirs
    from alps.io.atomic import atomic_write_text

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


def _add_evaluate_labels_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate-labels", help="score pseudo-labels against ground truth (Hungarian, majority)"
    )
    p.add_argument("pred_dir", type=Path)
    p.add_argument("gt_dir", type=Path)
    p.add_argument("--num-classes", type=int)
    p.add_argument("--ignore", type=int, nargs="*", default=[255], help="ground-truth values not scored")
    p.add_argument("--class-names", help="JSON file with a 'classes' list (a dataset's classes.json)")
    p.add_argument("--out", type=Path, help="write the report here (it is always printed)")
    p.set_defaults(func=cmd_evaluate_labels)


def cmd_label(args: argparse.Namespace) -> None:
    from alps.geo.scene import WHOLE_IMAGE_TILE, SceneOptions, check_scene_sizes
    from alps.label_folder import repair_label_output
    from alps.sharding import images_from_source

    # A publication a killed run left half done is finished first, even if the arguments fail below.
    repair_label_output(args.out_dir)
    _check_class_map(args)
    items = images_from_source(args.images)
    tiling = SceneOptions(WHOLE_IMAGE_TILE if args.backend == "coco" else args.tile_size, args.overlap)
    check_scene_sizes(items, tiling)  # from the headers, before the models are loaded
    from alps.pipeline import label  # torch: imported once the inputs are known to be sane

    georefs = {}
    if args.images.suffix.lower() == ".csv":
        from alps.geo.georef import manifest_georefs

        georefs = manifest_georefs(args.images)
    card = label(
        items,
        args.out_dir,
        _generator(args),
        _encoder(args),
        _cluster_config(args),
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


def _add_label_parser(sub: Any) -> None:
    p = sub.add_parser("label", help="all labeling stages in one process: images -> pseudo-labels")
    p.add_argument("images", type=Path, help="folder of images (PNG/JPEG/TIFF/GeoTIFF)")
    p.add_argument("out_dir", type=Path)
    _add_mask_options(p)
    _add_encoder_options(p, "efficientnet-lite0")
    _add_cluster_options(p)
    p.add_argument("--binary", action="store_true", help="also paint the binary-mask variant")
    p.add_argument(
        "--on-error",
        choices=["fail", "skip"],
        default="fail",
        help="an unreadable image: stop and name it (fail), or leave it out and list it in the card (skip)",
    )
    p.add_argument(
        "--tile-size", type=int, default=1024, help="scenes larger than this are labeled tile by tile"
    )
    p.add_argument("--overlap", type=int, default=128, help="overlap of neighbouring tiles in pixels")
    p.set_defaults(func=cmd_label)


def cmd_tables(args: argparse.Namespace) -> None:
    from alps.tables import DEFAULT_PUBLISHED_DIR, rows_from_json, study_rows, write_tables

    published = args.published if args.published is not None else DEFAULT_PUBLISHED_DIR
    if published is None:
        log.warning("no published tables (results/paper/ not found, no --published): no paper values shown")
    if args.config is not None:
        from alps.io.yamlfile import load_yaml

        # The rows of the workflow's study: every run the config plans, at the path the workflow gives it.
        config = load_yaml(args.config)
        if not isinstance(config, dict):
            raise ValueError(f"{args.config}: a workflow configuration is a mapping of keys")
        if args.results_dir is not None:
            config["results_dir"] = str(args.results_dir)
        rows = study_rows(config, published)
    else:
        # Relative metrics paths in ROWS.json are relative to the current directory, like every path argument.
        rows = rows_from_json(Path(args.rows).read_text(encoding="utf-8"))
    paths = write_tables(rows, args.out, published)
    log.info("wrote %d files for %d rows to %s", len(paths), len(rows), args.out)


def _add_tables_parser(sub: Any) -> None:
    p = sub.add_parser("tables", help="the paper's tables from fine-tuning runs, beside the published values")
    # Rows come from a JSON list or are planned from a workflow configuration (alps.study).
    rows_source = p.add_mutually_exclusive_group(required=True)
    rows_source.add_argument(
        "--rows", type=Path, help="JSON list of rows: table, keys, metrics_path, dataset_kind, note"
    )
    rows_source.add_argument(
        "--config", type=Path, help="a workflow configuration: the rows of its tables (config/paper.yaml)"
    )
    p.add_argument("--results-dir", type=Path, help="with --config: read the runs under this results_dir")
    p.add_argument("--out", type=Path, required=True, help="folder for table<id>.csv/.md/.tex and the index")
    p.add_argument(
        "--published", type=Path, help="published tables folder (default: results/paper of the repository)"
    )
    p.set_defaults(func=cmd_tables)


def cmd_placeholders(args: argparse.Namespace) -> None:
    from alps.io.yamlfile import load_yaml
    from alps.placeholders import write_placeholders

    config = load_yaml(args.config)
    if not isinstance(config, dict):
        raise ValueError(f"{args.config}: a workflow configuration is a mapping of keys")
    created = write_placeholders(config, args.root)
    log.info("wrote %d placeholder inputs of %s under %s", len(created), args.config, args.root)


def _add_placeholders_parser(sub: Any) -> None:
    p = sub.add_parser(
        "placeholders", help="empty stand-in inputs for a dry run of a study config (make paper-dryrun)"
    )
    p.add_argument("config", type=Path, help="the workflow configuration, e.g. config/paper.yaml")
    p.add_argument("root", type=Path, help="a scratch folder: the dry run's working directory")
    p.set_defaults(func=cmd_placeholders)


# -- issue #17: the cluster gallery and class maps (alps.gallery, alps.classmap) --------------------------
def _check_class_map(args: argparse.Namespace) -> None:
    """Validate ``alps label --class-map`` before any work, when K is fixed (``--k auto``: after the fit)."""
    if args.class_map is not None and args.k is not None:
        from alps.classmap import load_class_map

        load_class_map(args.class_map, args.k)


def cmd_gallery(args: argparse.Namespace) -> None:
    from alps.gallery import gallery_from_shards
    from alps.sharding import images_from_source

    items = images_from_source(args.source, args.split)
    summary = gallery_from_shards(
        {item.image_id: item.path for item in items},
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
        image_folders=[_source_folder(args.source)],
    )
    log.info("gallery of %d pseudo-classes: %s", summary["k"], Path(args.out_dir) / "index.html")


def cmd_apply_class_map(args: argparse.Namespace) -> None:
    from alps.classmap import apply_class_map_to_dataset
    from alps.named_labels import apply_class_map_to_label_output, is_label_output

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
    k = None
    if args.model is not None:
        from alps.cluster import ClusterModel

        k = ClusterModel.load(args.model).k
    card = apply_class_map_to_dataset(args.pl_dataset, args.out_dir, args.class_map, k=k)
    log.info(
        "%s: %d named classes %s, coverage %.3f",
        args.out_dir,
        card["num_classes"],
        card["classes"],
        card["coverage"],
    )


def _add_class_commands(sub: Any) -> None:
    label_parser = sub.choices["label"]
    label_parser.add_argument(
        "--class-map",
        type=Path,
        help="YAML naming the clusters (docs/classes.md): labels hold the named classes",
    )
    label_parser.add_argument("--no-gallery", action="store_true", help="do not write gallery/")

    p = sub.add_parser("gallery", help="example masks of every pseudo-class, as static HTML + one sheet each")
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
    p.add_argument("--area-threshold", type=_fraction, help="filtering gate (default: the model's)")
    p.add_argument("--paint-dirs", type=Path, nargs="+", help="painted shards: pixel shares from their stats")
    p.add_argument("--class-map", type=Path, help="show the names a class map gives the clusters")
    p.add_argument("--examples", type=int, default=12, help="example masks per pseudo-class")
    p.add_argument("--tile", type=int, default=128, help="example size in pixels")
    p.add_argument("--seed", type=int, default=0, help="chooses the examples")
    p.add_argument("--bands", type=_bands, help="1-based bands used as RGB, e.g. 4,3,2")
    p.set_defaults(func=cmd_gallery)

    p = sub.add_parser(
        "apply-class-map",
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
    p.set_defaults(func=cmd_apply_class_map)


def cmd_vectorize(args: argparse.Namespace) -> None:
    from alps.geo.vectorize import read_class_names, vectorize

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
    from alps.geo.mosaic import mosaic_dataset

    card = mosaic_dataset(args.manifest, args.labels_dir, args.out_dir, split=args.split)
    log.info("mosaicked %d scenes into %s", len(card["scenes"]), args.out_dir)


def _add_geo_commands(sub: Any) -> None:
    """``alps vectorize`` and ``alps mosaic`` (alps.geo)."""
    p = sub.add_parser("vectorize", help="label raster -> polygons (GeoPackage or GeoJSON) in its CRS")
    p.add_argument("labels", type=Path, help="a label GeoTIFF/PNG of alps label or alps mosaic")
    p.add_argument("out", type=Path, help="the vector file (.gpkg, or .geojson)")
    p.add_argument("--format", choices=["gpkg", "geojson"], help="default: from OUT's suffix, else gpkg")
    p.add_argument("--simplify", type=float, default=0.0, help="simplification tolerance in CRS units")
    p.add_argument("--min-area", type=float, default=0.0, help="drop polygons smaller (CRS units^2)")
    p.add_argument(
        "--classes",
        type=Path,
        help="JSON with a 'classes' list naming the label ids (default: the label_card.json beside labels/)",
    )
    p.add_argument("--layer", default="labels", help="layer name")
    p.set_defaults(func=cmd_vectorize)

    p = sub.add_parser(
        "mosaic", help="one label raster per scene from a prepare-folder dataset's tile labels"
    )
    p.add_argument("manifest", type=Path, help="the dataset's manifest.csv (alps prepare folder)")
    p.add_argument(
        "labels_dir", type=Path, help="tile labels <image_id>.png (a PL dataset's ann_dir/<split>)"
    )
    p.add_argument("out_dir", type=Path)
    p.add_argument("--split", help="only the tiles of this split")
    p.set_defaults(func=cmd_mosaic)


def cmd_predict(args: argparse.Namespace) -> None:
    from alps.geo.scene import SceneOptions
    from alps.io.outputs import OutputSet
    from alps.predict import PREDICT_OUTPUT_SET, predict
    from alps.sharding import images_from_source

    if Path(args.out_dir).is_dir():  # a publication a killed run left half done is finished first
        OutputSet(args.out_dir, PREDICT_OUTPUT_SET, "alps predict").repair()
    _set_threads(args.threads)
    georefs = {}
    if args.images.suffix.lower() == ".csv":
        from alps.geo.georef import manifest_georefs

        georefs = manifest_georefs(args.images)
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


def _add_predict_parser(sub: Any) -> None:
    p = sub.add_parser(
        "predict", help="a trained model's labels of images of any size (GeoTIFF in their CRS)"
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
    p.add_argument("--bands", type=_bands, help="1-based bands used as RGB, as in training, e.g. 4,3,2")
    p.add_argument("--batch-size", type=int, default=4, help="tiles of a scene labeled together")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--trust-config", action="store_true", help="load a config that runs Python code (not plain data)"
    )
    p.add_argument(
        "--on-error",
        choices=["fail", "skip"],
        default="fail",
        help="an unreadable image: stop and name it (fail), or leave it out and list it in the card (skip)",
    )
    p.set_defaults(func=cmd_predict)


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except ``None`` (no default) and where the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or "default" in text:
            return text
        return super()._get_help_string(action) or text


def _add_limit_options(sub: Any) -> None:
    """Every sub-command takes the input size limits (``alps.limits``), so a workflow can pass them to any."""
    for parser in sub.choices.values():
        group = parser.add_argument_group("input limits")
        group.add_argument(
            "--max-pixels",
            type=_positive,
            help=f"largest image, label or scene read, in pixels (default: from {limits.PIXELS_ENV}, "
            "else what fits this machine's memory)",
        )
        group.add_argument(
            "--max-tiles",
            type=_positive,
            help=f"most tiles of one scene in `alps label` (default: {limits.TILES_ENV}, else "
            f"{limits.DEFAULT_MAX_TILES})",
        )


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _show_defaults(sub: Any) -> None:
    """Every sub-command's --help shows each option's default (options without help text get one)."""
    for parser in sub.choices.values():
        parser.formatter_class = _DefaultsFormatter
        for action in parser._actions:
            if action.help is None and action.option_strings and action.default is not None:
                action.help = "default: %(default)s"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``alps`` command."""
    parser = argparse.ArgumentParser(prog="alps", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"alps {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_prepare_parser(sub)
    _add_masks_parser(sub)
    _add_features_parser(sub)
    _add_cluster_parser(sub)
    _add_paint_parser(sub)
    _add_pretrain_parser(sub)
    _add_finetune_parser(sub)
    _add_figures_parser(sub)
    _add_pl_dataset_parser(sub)
    _add_box_labels_parser(sub)
    _add_evaluate_labels_parser(sub)
    _add_placeholders_parser(sub)
    _add_label_parser(sub)
    _add_tables_parser(sub)
    _add_class_commands(sub)
    _add_geo_commands(sub)
    _add_predict_parser(sub)
    _add_limit_options(sub)
    _show_defaults(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``alps`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if os.environ.get("SLURM_JOB_ID"):
        # Logs tell which cluster job wrote them (the Slurm integration test reads this line).
        log.info("running as Slurm job %s on %s", os.environ["SLURM_JOB_ID"], socket.gethostname())
    try:
        limits.configure(args.max_pixels, args.max_tiles)
        args.func(args)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        # Expected failures (bad input, missing files) get one clear line, not a traceback.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"alps {args.command}: error: {_one_line(message)}", file=sys.stderr)
        if args.verbose:
            raise
        return 2
    except KeyboardInterrupt:
        # Outputs are published whole or not at all (alps.io.outputs): nothing half-written is left.
        print(
            f"alps {args.command}: interrupted; nothing half-written was published (a rerun finishes or "
            "discards what was begun)",
            file=sys.stderr,
        )
        if args.verbose:
            raise
        return 130
    except MemoryError:
        print(
            f"alps {args.command}: error: out of memory; lower --max-pixels (or {limits.PIXELS_ENV}) so that "
            "oversized inputs are refused up front, or run on a machine with more memory",
            file=sys.stderr,
        )
        if args.verbose:
            raise
        return 1
    except Exception as exc:
        # A failure nobody foresaw is still one line (and a traceback with -v): it is a bug to report.
        print(
            f"alps {args.command}: error: unexpected {type(exc).__name__}: {_one_line(exc)} (a bug: rerun "
            "with -v for the traceback and report it)",
            file=sys.stderr,
        )
        if args.verbose:
            raise
        return 1
    finally:
        _leave_process_group()
    return 0


def _one_line(message: object) -> str:
    """A message on one line, at most 2000 characters (an input's value may be long)."""
    text = " ".join(str(message).split())
    return text if len(text) <= 2000 else text[:1997] + "..."


def _leave_process_group() -> None:
    """Destroy the torch.distributed process group a training command joined (torchrun runs).

    A process that exits with its gloo/NCCL group alive can be aborted in the group's destructor
    ("terminate called without an active exception", SIGABRT) after its work is done, failing the job.
    Checked through ``sys.modules`` so that commands that never import torch do not import it here.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
