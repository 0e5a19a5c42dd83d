"""The GPU-hours a planned study costs, from its runs and measured seconds per training iteration.

Every pre-training and fine-tuning of the plan (``alps.study``, one per seed) costs its iterations times
the measured seconds per iteration of its model, times the GPUs it holds (``training.gpus_per_job``: each
GPU runs the official per-GPU batch, so a 2-GPU job takes the one-GPU time per iteration on each GPU; the
cost of the gradient all-reduce is not counted). The speeds (``H200_SECONDS_PER_ITER``) were measured at
512 px crops (docs/performance.md); jobs at another crop (iSAID and iSAID-PL at 896 px, ATLAS at 256 px)
are also given scaled by their pixels, ``(crop / 512)^2``, an estimate: that scaling was not measured.
Importable without mmengine or torch (``scripts/study-cost.py`` prints the report).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alps.study import DATASET_KINDS, Study
from alps.train.scales import DEFAULT_CROPS, SOURCE_KINDS, pl_crop

H200_SECONDS_PER_ITER: dict[str, float] = {
    "upernet-r50": 0.061,
    "pspnet-r50": 0.080,
    "fcn-hrnet-w48": 0.095,
    "deeplabv3plus-r50b": 0.045,
    "vit-b-upernet": 0.090,
    "swin-b-upernet": 0.121,
    "segmenter-vit-b": 0.039,
    "segformer-b5": 0.264,
}
"""Seconds per training iteration of the paper's eight models on one NVIDIA H200: fp32, each model's
official per-GPU batch, 512 px, median of iterations 11-25 (docs/performance.md, 2026-11-26). The medical
UNet was not measured."""

MEASURED_CROP = 512
"""The crop side the speeds were measured at."""


@dataclass(frozen=True)
class RunCost:
    """One training job: what it is, its iterations and crop, and its GPU-hours (None: no speed known)."""

    role: str  # pretrain or finetune
    key: str
    model: str
    iterations: int
    crop: int
    gpus: int
    gpu_hours: float | None
    gpu_hours_scaled: float | None  # the same, scaled by the crop's pixels against MEASURED_CROP


@dataclass(frozen=True)
class StudyCost:
    """The study's training jobs and their sums."""

    runs: list[RunCost]

    def total(self, scaled: bool = False, role: str | None = None) -> float:
        """GPU-hours of the jobs with a known speed (``scaled``: by their crop's pixels)."""
        values = [r.gpu_hours_scaled if scaled else r.gpu_hours for r in self.runs if role in (None, r.role)]
        return sum(v for v in values if v is not None)

    def unmeasured(self) -> list[RunCost]:
        """Jobs whose model has no measured speed (left out of the totals)."""
        return [r for r in self.runs if r.gpu_hours is None]


def _crop(config: Mapping[str, Any], dataset: str, pretraining: bool) -> int:
    """The crop side a job on ``dataset`` trains at: ``training.crop_size``, else the kind's default."""
    training = config.get("training") or {}
    if training.get("crop_size"):
        return int(training["crop_size"])
    converter = config["datasets"][dataset]["converter"]
    if pretraining:  # the pseudo-labels of `dataset`, at its scale (alps.train.scales)
        return pl_crop(SOURCE_KINDS.get(converter))
    return DEFAULT_CROPS[DATASET_KINDS.get(converter, "folder")]


def study_cost(
    study: Study, config: Mapping[str, Any], seconds_per_iter: Mapping[str, float] = H200_SECONDS_PER_ITER
) -> StudyCost:
    """Every training job of ``study`` with its GPU-hours.

    Arguments:
        study: the plan (``alps.study.plan_study``), every seed's runs included.
        config: the configuration it was planned from (crops, ``gpus_per_job``).
        seconds_per_iter: model -> measured seconds per iteration at ``MEASURED_CROP``.

    Returns:
        The ``StudyCost``, pre-trainings first, in the plan's order.
    """
    gpus = int((config.get("training") or {}).get("gpus_per_job", 1))
    jobs: list[tuple[str, str, str, int, int]] = []
    for run in study.pretrain_runs:
        dataset = study.pseudo_labels[study.pretrainings[run.pretraining].pseudo_labels].dataset
        jobs.append(("pretrain", run.key, run.model, study.iters(run.schedule), _crop(config, dataset, True)))
    for ft in study.finetune_runs:
        iterations = study.iters(study.base_schedules[ft.model])
        jobs.append(("finetune", ft.key, ft.model, iterations, _crop(config, ft.dataset, False)))
    runs = []
    for role, key, model, iterations, crop in jobs:
        speed = seconds_per_iter.get(model)
        hours = None if speed is None else iterations * speed * gpus / 3600
        scaled = None if hours is None else hours * (crop / MEASURED_CROP) ** 2
        runs.append(RunCost(role, key, model, iterations, crop, gpus, hours, scaled))
    return StudyCost(runs)


def cost_lines(cost: StudyCost, seeds: int) -> list[str]:
    """A short report: jobs, GPU-hours at the measured speeds and scaled by crop, per seed, unmeasured."""
    finetunes = [r for r in cost.runs if r.role == "finetune"]
    lines = [
        f"training jobs: {len(cost.runs)} ({len(cost.runs) - len(finetunes)} pre-trainings, "
        f"{len(finetunes)} fine-tunings), {seeds} seed(s)",
        f"GPU-hours at the measured 512 px speeds: {cost.total():,.0f} "
        f"(pre-training {cost.total(role='pretrain'):,.0f}, fine-tuning {cost.total(role='finetune'):,.0f})",
        f"GPU-hours scaled by each job's crop (896 px iSAID and iSAID-PL x3.06, an estimate): "
        f"{cost.total(scaled=True):,.0f} (pre-training {cost.total(scaled=True, role='pretrain'):,.0f}, "
        f"fine-tuning {cost.total(scaled=True, role='finetune'):,.0f})",
        f"per seed: {cost.total() / seeds:,.0f} at 512 px speeds, "
        f"{cost.total(scaled=True) / seeds:,.0f} scaled",
    ]
    missing = cost.unmeasured()
    if missing:
        models = sorted({r.model for r in missing})
        lines.append(f"not counted (no measured speed): {len(missing)} jobs of {', '.join(models)}")
    return lines
