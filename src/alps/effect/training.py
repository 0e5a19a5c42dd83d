"""The experiment's training runs: pre-training on each PL dataset, fine-tuning every arm, with the
project's mmseg runner (``alps.train.runner.train_segmentation``, which ``alps pretrain`` and
``alps finetune`` call).

Both use the same crop and resize scale (``EffectSettings.crop``/``scale``), so the pre-training sees
objects at the size fine-tuning does (the pool and the labeled images are both NWPU VHR-10). A run is done
when its ``metrics.json`` exists; a killed run resumes from its last checkpoint (the runner's rule).
Fine-tunings evaluate ``curve_points`` times (the learning curve, ``curve.json``: never used to choose
anything, the number reported is the last iteration's) and drop their checkpoints once evaluated.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook

from alps.effect.layout import EffectLayout
from alps.effect.settings import EffectSettings
from alps.io.atomic import atomic_write_text
from alps.progress import Progress
from alps.train import configs
from alps.train.runner import METRICS_NAME, drop_checkpoints, train_segmentation

log = logging.getLogger(__name__)

SCRATCH = "scratch"
"""The arm without pseudo-label pre-training."""

CURVE_NAME = "curve.json"


class ProgressHook(Hook):
    """Counts training iterations with ``alps.progress`` (log lines with rate and ETA)."""

    priority = "VERY_LOW"

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.progress: Progress | None = None

    def before_train(self, runner: Any) -> None:
        self.progress = Progress(runner.max_iters, self.desc, "it", terminal=False)
        self.progress.done = runner.iter

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self.progress is not None:
            self.progress.update()

    def after_train(self, runner: Any) -> None:
        if self.progress is not None:
            self.progress.close()


class CurveHook(Hook):
    """Keeps every validation's metrics and the training loss in ``WORK_DIR/curve.json`` (resumes append)."""

    priority = "LOW"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.curve: dict[str, Any] = (
            json.loads(path.read_text()) if path.is_file() else {"val": [], "loss": []}
        )

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if outputs and "loss" in outputs and (runner.iter + 1) % 10 == 0:
            self.curve["loss"].append([runner.iter + 1, round(float(outputs["loss"]), 5)])

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        values = {k: round(float(v), 2) for k, v in (metrics or {}).items() if "." not in k}
        self.curve["val"] = [v for v in self.curve["val"] if v["iter"] != runner.iter]
        self.curve["val"].append({"iter": int(runner.iter), **values})
        atomic_write_text(self.path, json.dumps(self.curve) + "\n")


def _common(settings: EffectSettings, seed: int) -> dict[str, Any]:
    imagenet = configs.official_pretrained(settings.model) if settings.imagenet else None
    return {
        "pretrained": imagenet,
        "lr": settings.lr,
        "batch_size": settings.batch_size,
        "num_workers": 0,
        "seed": seed,
        "device": settings.device,
        "max_keep_ckpts": 1,
        "log_interval": 50,
    }


def pretrain_job(layout: EffectLayout, backend: str, seed: int) -> dict[str, Any]:
    """Pre-train on one backend's PL dataset with one seed (``alps pretrain``'s runner)."""
    settings = layout.settings
    out = layout.pretrain(backend, seed)
    if (out / METRICS_NAME).is_file():
        return {"skipped": True}
    spec = configs.dataset_spec("pl", layout.pl(backend), crop_size=settings.crop, scale=settings.scale)
    iters = settings.pretrain_iters
    result = train_segmentation(
        spec,
        out,
        settings.model,
        role="pretrain",
        max_iters=iters,
        checkpoint_interval=max(1, iters // 4),
        hooks=[ProgressHook(f"pretrain {backend} seed {seed}")],
        **_common(settings, seed),
    )
    return {"checkpoint": result.checkpoint.name, "resumed_from": result.metrics["resumed_from"]}


def finetune_job(layout: EffectLayout, arm: str, seed: int) -> dict[str, Any]:
    """Fine-tune one arm with one seed: from scratch, or from the same seed's pre-training on ``arm``."""
    settings = layout.settings
    out = layout.finetune(arm, seed)
    if (out / METRICS_NAME).is_file():
        return {"skipped": True}
    source = None
    if arm != SCRATCH:
        record = json.loads((layout.pretrain(arm, seed) / METRICS_NAME).read_text())
        source = layout.pretrain(arm, seed) / record["checkpoint"]
    spec = configs.dataset_spec("folder", layout.finetune_data, crop_size=settings.crop, scale=settings.scale)
    iters = settings.finetune_iters
    every = max(1, iters // settings.curve_points)
    result = train_segmentation(
        spec,
        out,
        settings.model,
        init="none" if source is None else settings.init,
        from_checkpoint=source,
        role="finetune",
        max_iters=iters,
        val_interval=every,
        checkpoint_interval=every,
        hooks=[ProgressHook(f"finetune {arm} seed {seed}"), CurveHook(out / CURVE_NAME)],
        save_best=False,  # its checkpoints are dropped below
        **_common(settings, seed),
    )
    drop_checkpoints(out)
    return {"mIoU": result.metrics["metrics"].get("mIoU"), "resumed_from": result.metrics["resumed_from"]}
