"""mmsegmentation configs for ALPS: the paper's eight methods, their schedules, and the datasets' pipelines.

``build_config`` returns an mmengine ``Config`` that ``mmengine.runner.Runner.from_cfg`` runs as is;
``write_config`` dumps it to a ``.py`` file that the plain mmseg tools run too
(``python tools/train.py train_config.py``, ``tools/dist_train.sh train_config.py 2``). The dumped file
imports this module through ``custom_imports``, which registers ``ALPSIoUMetric`` and, under ``mmcv-lite``,
installs the ``mmcv.ops`` substitute (``alps.train.mmcv_compat``) before mmseg builds a model.

``inference_config`` is the same model as a config of stock mmseg types only (no ``custom_imports``, a
top-level ``test_pipeline``, BN for SyncBN): what ``mmseg.apis.init_model`` + ``inference_model`` and
``alps predict`` take, with or without the ``alps`` package installed.

Every model (the paper's eight, the demo's two small ones, the medical UNet) is built from mmseg 1.2.2's
own config file named in ``ModelSpec.reference``, read from the configs shipped in its wheel
(``official_config``): its model, optimizer, LR schedule and per-GPU batch. Only what the study sets is
overridden; ``ALLOWED_DIFFERENCES`` lists every override with its reason (a test checks each model against
it, key by key), in short:

* classes, crop (ViT position embeddings and sliding test windows follow it) and schedule length;
* ``SyncBN`` -> ``BN`` in single-process runs (``launcher='none'``: CPU, one GPU), which have no process
  group; multi-GPU runs (``launcher='pytorch'``, under torchrun) keep the official SyncBN;
* ImageNet backbone weights are set from ``pretrained=`` (a local file, ``alps.train.runner`` fetches the
  official URL first; ``official_pretrained`` names it), never downloaded by mmengine during training;
* warm-up of the AdamW methods: ``min(1500, max_iters // 10)`` iterations (1500 at 15k and above, as
  mmseg), none below 10 iterations (tests).

No model of the eight needs a compiled mmcv op: each builds and runs forward with ``mmcv-lite`` and the
compatibility module (pinned by tests/train/test_configs.py).

The medical branch (paper Table 6) uses mmseg's UNet (``unet-s5-d16``, FCN head,
``unet/unet-s5-d16_fcn_4xb4-40k_hrf-256x256.py``) in place of the paper's DoDNet, MED3D and SAM-Med2D,
which mmseg does not have. Its encoder-decoder is the ``backbone``; the FCN heads are the ``head``
sub-model. UNet needs inputs divisible by 16 (four max-pools): crops must be multiples of 16, and test
images are padded to one.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config

from alps.io.atomic import atomic_write_text
from alps.train.config_format import memoise_format_code
from alps.train.datasets import (
    IGNORE_INDEX,
    ISAID_CLASSES,
    MEDICAL_CLASSES,
    MEDICAL_DATASETS,
    POTSDAM_CLASSES,
    DatasetSpec,
    dataset_spec,
    detect_dataset,
)
from alps.train.metric import ALPSIoUMetric
from alps.train.models import MODELS, SCHEDULES, ModelSpec
from alps.train.official import (
    ALLOWED_DIFFERENCES,
    UNET_DIVISOR,
    checkpoint_url,
    model_cfg,
    official_batch_size,
    official_config,
    official_pretrained,
    optim_cfg,
    replace_sync_bn,
)
from alps.train.pipelines import dataset_cfg, pipelines
from alps.train.runtime import CHECKPOINT_EVERY, KEEP_CHECKPOINTS, LOG_INTERVAL, NUM_WORKERS, runtime_cfg

PAPER_MODELS: tuple[str, ...] = tuple(name for name, spec in MODELS.items() if spec.paper)
"""The paper's eight methods, in the order of its tables."""


# ------------------------------------------------------------------------------------------------ config


def build_config(
    model: str,
    dataset: DatasetSpec,
    *,
    schedule: str | None = None,
    max_iters: int | None = None,
    batch_size: int | None = None,
    num_workers: int = NUM_WORKERS,
    amp: bool = False,
    val_interval: int | None = None,
    checkpoint_interval: int | None = None,
    max_keep_ckpts: int = KEEP_CHECKPOINTS,
    log_interval: int = LOG_INTERVAL,
    seed: int = 0,
    deterministic: bool | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    load_from: str | os.PathLike[str] | None = None,
    pretrained: str | None = None,
    device: str = "auto",
    launcher: str = "none",
    lr: float | None = None,
) -> Config:
    """Build the full mmengine config of one training run.

    Arguments:
        model: a ``MODELS`` key (``PAPER_MODELS`` are the paper's eight).
        dataset: the dataset (``dataset_spec`` / ``detect_dataset``).
        schedule: a ``SCHEDULES`` key; default: the method's (80k CNNs, 160k transformers, 2k demo models).
        max_iters: iterations, overriding ``schedule``.
        batch_size: images per GPU (per process); default: the official config's (``official_batch_size``).
        num_workers: data loader workers per process (0 loads in the main process).
        amp: mixed precision through mmengine's ``AmpOptimWrapper`` (CUDA only).
        val_interval: validate every this many iterations; default ``max_iters // 10`` (8000 at 80k, as
            mmseg). Ignored without an eval split.
        checkpoint_interval: save every this many iterations; default ``CHECKPOINT_EVERY``'s rule. The
            last iteration is always saved.
        max_keep_ckpts: periodic checkpoints kept (older ones are deleted; -1 keeps all). With an eval
            split, the best checkpoint by validation mIoU (``best_mIoU_iter_<n>.pth``) is kept too.
        log_interval: log every this many iterations.
        seed: the mmengine randomness seed.
        deterministic: ``torch.use_deterministic_algorithms``; default: on for CPU, off for CUDA (several
            CUDA kernels used by these models have no deterministic version).
        work_dir: where checkpoints and logs go.
        load_from: weights loaded (not resumed) before training, e.g. a surgery file
            (``alps.train.surgery.write_init_checkpoint``).
        pretrained: a local ImageNet backbone checkpoint (``official_pretrained`` names the official one;
            ``alps.train.runner.fetch_pretrained`` downloads and checks it); loaded by the backbone's
            ``Pretrained`` initialiser with ``torch.load``'s default ``weights_only=True``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``; only decides AMP/determinism here: mmengine itself
            trains on CUDA whenever it is visible (hide it with ``CUDA_VISIBLE_DEVICES=`` for CPU runs).
        launcher: ``"none"`` (one process) or ``"pytorch"`` (``torchrun --nproc_per_node N``: distributed,
            the official SyncBN is kept), or ``"slurm"``. ``"none"`` turns SyncBN into BN.
        lr: the optimizer's base learning rate instead of the official one (per-parameter multipliers
            kept); None keeps the official config's.

    Returns:
        The ``Config``.

    Raises:
        KeyError: unknown model or schedule.
        ValueError: inconsistent options (AMP on CPU, no iterations, ...).
    """
    spec = MODELS.get(model)
    if spec is None:
        raise KeyError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    schedule = schedule or spec.schedule
    if schedule not in SCHEDULES:
        raise KeyError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    iters = int(max_iters) if max_iters is not None else SCHEDULES[schedule]
    if iters < 1:
        raise ValueError(f"max_iters must be >= 1, got {iters}")
    if batch_size is None:
        batch_size = official_batch_size(model)
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if launcher not in ("none", "pytorch", "slurm", "mpi"):
        raise ValueError(f"launcher must be none, pytorch, slurm or mpi, got {launcher!r}")
    on_cuda = _resolve_device(device) == "cuda"
    if amp and not on_cuda:
        raise ValueError("amp needs CUDA (mmengine's AmpOptimWrapper); it is not available on this device")
    if deterministic is None:
        deterministic = not on_cuda
    val_every = int(val_interval) if val_interval else max(1, iters // 10)
    ckpt_every = (
        int(checkpoint_interval) if checkpoint_interval else max(val_every, min(iters, CHECKPOINT_EVERY))
    )

    train_pipeline, test_pipeline = pipelines(dataset)
    model_dict = model_cfg(
        model,
        dataset.num_classes,
        dataset.crop_size,
        # torch's SyncBatchNorm runs on GPUs only: a distributed CPU run (gloo; tests) keeps BN.
        sync_bn=launcher != "none" and on_cuda,
    )
    if pretrained is not None:
        model_dict["backbone"]["init_cfg"] = {"type": "Pretrained", "checkpoint": str(pretrained)}
    optim_wrapper, param_scheduler = optim_cfg(model, iters, amp)
    if lr is not None:
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        # The base rate only: the official per-parameter multipliers (e.g. SegFormer's head x10) stay.
        optim_wrapper["optimizer"]["lr"] = float(lr)
    persistent = num_workers > 0

    cfg: dict[str, Any] = {
        "default_scope": "mmseg",
        # Registers ALPSIoUMetric and, under mmcv-lite, the mmcv.ops substitute, for plain mmseg tools too.
        # alps.train.checkpoints: PlainHistoryHook, so that checkpoints load with weights_only=True.
        "custom_imports": {
            "imports": ["alps.train.configs", "alps.train.checkpoints"],
            "allow_failed_imports": False,
        },
        "custom_hooks": [{"type": "PlainHistoryHook"}],
        "alps": {
            "model": model,
            "dataset_kind": dataset.kind,
            "classes": list(dataset.classes),
            "palette": [list(colour) for colour in dataset.palette],
            "schedule": schedule if max_iters is None else None,
        },
        "crop_size": dataset.crop_size,
        "model": model_dict,
        # At the top level, as in mmseg's own configs: mmseg.apis.inference_model reads it there.
        "test_pipeline": test_pipeline,
        "train_dataloader": {
            "batch_size": batch_size,
            "num_workers": num_workers,
            "persistent_workers": persistent,
            "sampler": {"type": "InfiniteSampler", "shuffle": True},
            "dataset": dataset_cfg(dataset, dataset.train_split, train_pipeline),
        },
        "optim_wrapper": optim_wrapper,
        "param_scheduler": param_scheduler,
        "train_cfg": {"type": "IterBasedTrainLoop", "max_iters": iters, "val_interval": val_every},
        **runtime_cfg(
            log_interval=log_interval,
            checkpoint_interval=ckpt_every,
            max_keep_ckpts=max_keep_ckpts,
            on_cuda=on_cuda,
            deterministic=bool(deterministic),
            seed=seed,
            launcher=launcher,
            load_from=load_from,
        ),
    }
    if launcher != "none" and not on_cuda:
        # mmengine's default wrapper pins DDP to GPU LOCAL_RANK; CPU processes (gloo) take no device ids.
        cfg["model_wrapper_cfg"] = {
            "type": "MMDistributedDataParallel",
            "broadcast_buffers": False,
            "find_unused_parameters": False,
            "device_ids": None,
        }
    if work_dir is not None:
        cfg["work_dir"] = str(work_dir)
    if dataset.eval_split is not None:
        eval_loader = {
            "batch_size": 1,
            "num_workers": num_workers,
            "persistent_workers": persistent,
            "sampler": {"type": "DefaultSampler", "shuffle": False},
            "dataset": dataset_cfg(dataset, dataset.eval_split, test_pipeline),
        }
        evaluator = {"type": "ALPSIoUMetric", "iou_metrics": list(dataset.metrics)}
        cfg.update(
            val_dataloader=eval_loader,
            test_dataloader=eval_loader,
            val_evaluator=evaluator,
            test_evaluator=evaluator,
            val_cfg={"type": "ValLoop"},
            test_cfg={"type": "TestLoop"},
        )
        # The best validation mIoU's checkpoint, kept apart from the periodic ones (best_mIoU_iter_<n>.pth).
        cfg["default_hooks"]["checkpoint"].update(save_best="mIoU", rule="greater")
    else:
        # A PL dataset with only a train split: train without validation.
        cfg.update(val_dataloader=None, val_evaluator=None, val_cfg=None)
        cfg["train_cfg"]["val_interval"] = iters + 1
    return Config(cfg)


def inference_config(cfg: Config) -> Config:
    """The model of a training config as stock mmsegmentation runs it for inference (no ``alps`` needed).

    Stock types only: the model (BN for SyncBN, which a single process cannot run; the same weights), its
    ``test_cfg``, and the top-level ``test_pipeline`` that ``mmseg.apis.inference_model`` reads (without
    ``LoadAnnotations``); the classes and palette as ``metainfo`` (checkpoints carry them too, as
    ``meta.dataset_meta``). No ``custom_imports``, no hooks, no metric: ``mmseg.apis.init_model(path,
    checkpoint)`` reads it where ``alps`` is not installed (with full mmcv; mmcv-lite needs the ``mmcv.ops``
    stand-in of ``alps.train.mmcv_compat``, imported before mmseg).

    Arguments:
        cfg: a config of ``build_config``.

    Returns:
        The inference config.
    """
    model = replace_sync_bn(copy.deepcopy(cfg.model.to_dict()))
    model.pop("pretrained", None)
    model["backbone"].pop("init_cfg", None)
    model.pop("train_cfg", None)
    pipeline = [dict(step) for step in cfg.test_pipeline if step["type"] != "LoadAnnotations"]
    metainfo = {"classes": list(cfg.alps.classes), "palette": [list(c) for c in cfg.alps.palette]}
    return Config(
        {
            "default_scope": "mmseg",
            "crop_size": cfg.crop_size,
            "model": model,
            "test_pipeline": pipeline,
            "metainfo": metainfo,
            "alps": {**cfg.alps.to_dict(), "train_config": "train_config.py"},
        }
    )


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device")
    return device


def config_text(cfg: Config) -> str:
    """The config as the Python text ``write_config`` dumps (mmengine's ``pretty_text``)."""
    memoise_format_code()  # later reads of the same text (mmengine's own, in a run) are not formatted again
    return cfg.pretty_text


def text_hash(text: str) -> str:
    """``sha256`` of a config text: the identity of a run's settings in ``metrics.json``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_hash(cfg: Config) -> str:
    """``text_hash`` of the dumped config text."""
    return text_hash(config_text(cfg))


def write_config(cfg: Config, path: str | os.PathLike[str]) -> str:
    """Dump ``cfg`` to a ``.py`` file that plain mmseg tools run (``tools/train.py PATH``).

    Written to a temporary file and renamed, so a killed run never leaves half a config.

    Returns:
        The ``config_hash`` of the written text.
    """
    text = config_text(cfg)
    atomic_write_text(Path(path), text)
    return text_hash(text)


def write_paper_configs(
    out_dir: str | os.PathLike[str],
    datasets: Sequence[DatasetSpec],
    models: Sequence[str] = PAPER_MODELS,
    **options: Any,
) -> list[Path]:
    """Write one config per (model, dataset): ``<model>_<kind>.py`` (e.g. ``swin-b-upernet_isaid.py``).

    Arguments:
        out_dir: the folder to write into (created).
        datasets: the datasets (``dataset_spec("isaid", "data/iSAID")``...).
        models: the model keys.
        **options: passed to ``build_config`` (``work_dir`` defaults to ``work_dirs/<model>_<kind>``).

    Returns:
        The written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        for name in models:
            stem = f"{name}_{ds.kind}"
            opts = {"work_dir": f"work_dirs/{stem}", **options}
            path = out / f"{stem}.py"
            write_config(build_config(name, ds, **opts), path)
            paths.append(path)
    return paths


__all__ = [
    "ALLOWED_DIFFERENCES",
    "CHECKPOINT_EVERY",
    "IGNORE_INDEX",
    "ISAID_CLASSES",
    "KEEP_CHECKPOINTS",
    "MEDICAL_CLASSES",
    "MEDICAL_DATASETS",
    "MODELS",
    "PAPER_MODELS",
    "POTSDAM_CLASSES",
    "SCHEDULES",
    "UNET_DIVISOR",
    "ALPSIoUMetric",
    "DatasetSpec",
    "ModelSpec",
    "build_config",
    "checkpoint_url",
    "config_hash",
    "config_text",
    "dataset_spec",
    "detect_dataset",
    "inference_config",
    "model_cfg",
    "official_batch_size",
    "official_config",
    "official_pretrained",
    "text_hash",
    "write_config",
    "write_paper_configs",
]
