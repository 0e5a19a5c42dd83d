"""Where the experiment keeps each artifact under its output folder (``results/effect`` by default).

Each stage's folder is named by a digest of exactly the settings its outputs depend on (a backend's keys
only by its own ``mask_params``), so a rerun with another K reuses the masks and features, one with other
training iterations the pseudo-labels, one with another split the pre-trainings, and one with more seeds
every seed already done (``EffectSettings.digest`` leaves the seeds out)::

    OUT/data/<data key>/nwpu/            the labeled NWPU VHR-10 set (train/val), prepare_nwpu
    OUT/data/<data key>/finetune/        the images the fine-tunings see (a linked subset or hold-out)
    OUT/masks/<mask key>/<backend>/shard_NNN/   masks.parquet, features.npz of one pool shard
    OUT/labeling/<PL key>/<backend>/            kmeans.npz, paint/shard_NNN/, dataset/ (the PL dataset)
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

WRITER = "alps effect"
"""The writer the experiment's folders and report files record (``alps.io.outputs``): a rerun replaces
only what an earlier run of the experiment wrote."""

DATA_FIELDS = ("val_fraction", "split_seed", "label_fraction", "holdout")
MASK_FIELDS = ("encoder", "encoder_max_side", "pool_images", "labeling_shard")
"""What a backend's masks and features depend on (besides the backend and its ``mask_params``)."""
PL_FIELDS = (*MASK_FIELDS, "k", "area_threshold", "label_seed")
PRETRAIN_FIELDS = (
    *PL_FIELDS,
    *("model", "imagenet", "lr", "crop", "scale", "batch_size", "pretrain_iters", "device"),
)


def _key(settings: EffectSettings, fields: tuple[str, ...], backend: str | None = None) -> str:
    values: dict[str, Any] = dataclasses.asdict(settings)
    chosen = {f: values[f] for f in fields}
    if backend is not None:
        chosen["mask_params"] = settings.mask_params.get(backend)
    text = json.dumps(chosen, sort_keys=True, default=list)
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

    def masks(self, backend: str, shard: int) -> Path:
        """One pool shard's ``masks.parquet`` and ``features.npz``."""
        return self.out / "masks" / _key(self.settings, MASK_FIELDS, backend) / backend / f"shard_{shard:03d}"

    def labeling(self, backend: str) -> Path:
        """One backend's ``kmeans.npz`` and painted shards (``paint/shard_NNN``)."""
        return self.out / "labeling" / _key(self.settings, PL_FIELDS, backend) / backend

    def pl(self, backend: str) -> Path:
        """One backend's PL dataset."""
        return self.labeling(backend) / "dataset"

    def pretrain(self, backend: str, seed: int) -> Path:
        return self.out / "pretrain" / _key(self.settings, PRETRAIN_FIELDS, backend) / backend / f"seed{seed}"

    def finetune(self, arm: str, seed: int) -> Path:
        return self.out / "finetune" / self.settings.digest() / arm / f"seed{seed}"

    @property
    def jobs(self) -> Path:
        return self.out / "jobs" / self.settings.digest()

    @property
    def logs(self) -> Path:
        return self.out / "logs" / self.settings.digest()
