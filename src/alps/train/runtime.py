"""mmseg's runtime settings of a training run, kept apart from the model, the data and the schedule as
mmseg's ``_base_/default_runtime.py`` (and the hooks of its ``_base_/schedules``) keep them; and the
defaults of a run's own settings.

Importable without mmengine or torch: the ``alps`` command takes its training options' defaults from here.
"""

from __future__ import annotations

import copy
import os
from typing import Any

NUM_WORKERS = 2
"""Data loader workers per process (0 loads in the main process)."""

LOG_INTERVAL = 50
"""Log every this many iterations."""

CHECKPOINT_EVERY = 1000
"""Periodic checkpoints of a run default to every ``max(val_interval, min(max_iters, CHECKPOINT_EVERY))``
iterations: a checkpoint exists to resume a killed run, and a short run is cheaper to redo than to save
(SegFormer-B0 writes 45 MB, the paper's models up to 1 GB, each time); the last iteration is always saved."""

KEEP_CHECKPOINTS = 1
"""Periodic checkpoints kept by default: the last one (besides the best by validation mIoU, kept apart)."""

DEFAULT_RUNTIME: dict[str, Any] = {
    "default_hooks": {
        "timer": {"type": "IterTimerHook"},
        "logger": {"type": "LoggerHook", "interval": LOG_INTERVAL, "log_metric_by_epoch": False},
        "param_scheduler": {"type": "ParamSchedulerHook"},
        "checkpoint": {
            "type": "CheckpointHook",
            "by_epoch": False,
            "interval": CHECKPOINT_EVERY,
            "max_keep_ckpts": KEEP_CHECKPOINTS,
            "save_last": True,
        },
        "sampler_seed": {"type": "DistSamplerSeedHook"},
        "visualization": {"type": "SegVisualizationHook"},
    },
    "env_cfg": {
        "cudnn_benchmark": False,
        "mp_cfg": {"mp_start_method": "fork", "opencv_num_threads": 0},
        "dist_cfg": {"backend": "nccl"},
    },
    "randomness": {"seed": 0, "deterministic": False},
    "launcher": "none",
    "vis_backends": [{"type": "LocalVisBackend"}],
    "visualizer": {
        "type": "SegLocalVisualizer",
        "vis_backends": [{"type": "LocalVisBackend"}],
        "name": "visualizer",
    },
    "log_processor": {"by_epoch": False},
    "log_level": "INFO",
    "load_from": None,
    "resume": False,
    "tta_model": {"type": "SegTTAModel"},
}
"""The runtime entries of a config, in the order ``build_config`` writes them: mmseg's
``_base_/default_runtime.py`` and its iteration-based schedules' hooks (checkpoints by iteration)."""


def runtime_cfg(
    *,
    log_interval: int,
    checkpoint_interval: int,
    max_keep_ckpts: int,
    on_cuda: bool,
    deterministic: bool,
    seed: int,
    launcher: str,
    load_from: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    """``DEFAULT_RUNTIME`` with one run's settings (a new dict: the base is never changed).

    Arguments:
        log_interval: log every this many iterations.
        checkpoint_interval: save every this many iterations (the last one is always saved).
        max_keep_ckpts: periodic checkpoints kept (-1: all).
        on_cuda: the run trains on CUDA (NCCL, cuDNN benchmark unless deterministic), else gloo.
        deterministic: ``torch.use_deterministic_algorithms``.
        seed: the mmengine randomness seed.
        launcher: ``"none"``, ``"pytorch"``, ``"slurm"`` or ``"mpi"``.
        load_from: weights loaded (not resumed) before training, or None.
    """
    cfg = copy.deepcopy(DEFAULT_RUNTIME)
    hooks = cfg["default_hooks"]
    hooks["logger"]["interval"] = log_interval
    hooks["checkpoint"].update(interval=checkpoint_interval, max_keep_ckpts=max_keep_ckpts)
    cfg["env_cfg"]["cudnn_benchmark"] = on_cuda and not deterministic
    cfg["env_cfg"]["dist_cfg"]["backend"] = "nccl" if on_cuda else "gloo"
    cfg["randomness"] = {"seed": seed, "deterministic": deterministic}
    cfg["launcher"] = launcher
    cfg["load_from"] = str(load_from) if load_from is not None else None
    return cfg
