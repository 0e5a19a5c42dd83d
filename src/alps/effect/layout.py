"""Where the experiment keeps each artifact under its output folder (``results/effect`` by default).

Each stage's folder is named by a digest of exactly the settings its outputs depend on, so a rerun with
other training iterations reuses the pseudo-labels, and one with another split reuses the pre-trainings::

    OUT/data/<data key>/nwpu/            the labeled NWPU VHR-10 set (train/val), prepare_nwpu
    OUT/data/<data key>/finetune/        the images the fine-tunings see (a linked subset or hold-out)
    OUT/labels/<label key>/<backend>/    masks, features, k-means model, painted shards per pool shard
    OUT/pl/<label key>/<backend>/        the PL dataset
    OUT/pretrain/<pretrain key>/<backend>/seed<s>/
    OUT/finetune/<digest>/<arm>/seed<s>/ metrics.json, curve.json (checkpoints dropped)
    OUT/jobs/<digest>/<job>.json         each job's wall and CPU time
    OUT/logs/<digest>/<job>.log          each job's output (mmengine's log lines)
    OUT/report.json, report.md, effect.png
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alps.effect.settings import EffectSettings

DATA_FIELDS = ("val_fraction", "split_seed", "label_fraction", "holdout")
LABEL_FIELDS = (
    "mask_backends",
    "mask_params",
    "encoder",
    "encoder_max_side",
    "k",
    "area_threshold",
    "cluster_restarts",
    "label_seed",
    "pool_images",
    "labeling_shard",
)
PRETRAIN_FIELDS = (
    *LABEL_FIELDS,
    "model",
    "imagenet",
    "lr",
    "crop",
    "scale",
    "batch_size",
    "pretrain_iters",
    "device",
)


def _key(settings: EffectSettings, fields: tuple[str, ...]) -> str:
    values: dict[str, Any] = dataclasses.asdict(settings)
    text = json.dumps({f: values[f] for f in fields}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class EffectLayout:
    """The paths of one experiment (its settings) under ``out``."""

    out: Path
    settings: EffectSettings

    @property
    def data(self) -> Path:
        return self.out / "data" / _key(self.settings, DATA_FIELDS)

    @property
    def labeled(self) -> Path:
        """The converted labeled set (train and eval split)."""
        return self.data / "nwpu"

    @property
    def finetune_data(self) -> Path:
        """What the fine-tunings train and are evaluated on."""
        return self.data / "finetune"

    def labels(self, backend: str) -> Path:
        return self.out / "labels" / _key(self.settings, LABEL_FIELDS) / backend

    def pl(self, backend: str) -> Path:
        return self.out / "pl" / _key(self.settings, LABEL_FIELDS) / backend

    def pretrain(self, backend: str, seed: int) -> Path:
        return self.out / "pretrain" / _key(self.settings, PRETRAIN_FIELDS) / backend / f"seed{seed}"

    def finetune(self, arm: str, seed: int) -> Path:
        return self.out / "finetune" / self.settings.digest() / arm / f"seed{seed}"

    @property
    def jobs(self) -> Path:
        return self.out / "jobs" / self.settings.digest()

    @property
    def logs(self) -> Path:
        return self.out / "logs" / self.settings.digest()
