"""The medical branch end to end (paper Table 6): ATLAS-layout MRI -> pseudo-labels -> UNet -> Dice/IoU.

The real abdominal MR of ``../shared/data/medical/totalsegmentator_abdomen_mr`` (one volume, its liver
mask, and a stand-in tumour block; see ``test_datasets_atlas.make_raw``) is laid out as three ATLAS patients,
prepared by the ATLAS converter (two train patients, one test), pseudo-labeled with the cheap backends
(Felzenszwalb masks, EfficientNet-Lite0 features, k-means), and used to pre-train mmseg's UNet for a few
iterations at 64 px, which is then fine-tuned from its backbone and compared with a from-scratch baseline.
The numbers mean nothing after so few iterations; what is checked is that every stage runs on real data and
that ``metrics.json`` carries what Table 6 needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from mmengine.hooks import Hook

# Skips this module too where nibabel is missing (its importorskip).
from raw_layouts import atlas as make_raw

from alps.cli import main
from alps.cluster import ClusterConfig
from alps.datasets import prepare_dataset
from alps.features.encoders import build_encoder
from alps.pipeline import (
    assemble_pl_dataset,
    build_mask_generator,
    images_from_source,
    run_cluster,
    run_features,
    run_masks,
    run_paint,
)
from alps.train.configs import detect_dataset
from alps.train.runner import RunResult, finetune, pretrain
from alps.train.surgery import load_state_dict

# UNet-S5-D16 on one CPU thread: ~0.7 s per iteration at 64 px, batch 2 (~2.3 s at 128 px); measured.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

MODEL = "unet-s5-d16"
ITERS = 2
# No validation during training (val_interval > iters): the evaluation after the last iteration counts.
TINY: dict[str, Any] = {"crop_size": 64, "batch_size": 2, "num_workers": 0, "val_interval": 100}
PROBE = "backbone.encoder.0.0.convs.0.conv.weight"
"""The UNet's first convolution: pre-trained weights must reach it through ``init=backbone``."""


class _Record(Hook):
    """The iterations trained, and the probed weight as training starts (after ``load_from``)."""

    def __init__(self) -> None:
        self.iters: list[int] = []
        self.start: torch.Tensor | None = None

    def before_train(self, runner: Any) -> None:
        self.start = runner.model.state_dict()[PROBE].detach().clone()

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self.iters.append(runner.iter)


@pytest.fixture(scope="module")
def atlas_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ATLAS dataset prepared from three patients built from the real MR sample (skips if absent)."""
    root = tmp_path_factory.mktemp("medical")
    manifest = prepare_dataset("atlas", make_raw(root / "raw", patients=3), root / "atlas")
    return manifest.parent


@pytest.fixture(scope="module")
def pl_dir(atlas_dir: Path) -> Path:
    """ATLAS-PL: pseudo-labels of the training slices only (the test patient is never seen)."""
    work = atlas_dir.parent / "label"
    items = images_from_source(atlas_dir / "manifest.csv", split="train")
    masks, features = work / "masks.parquet", work / "features.npz"
    work.mkdir()
    run_masks(items, build_mask_generator("felzenszwalb", {"scale": 100, "min_size": 30}), masks)
    run_features(items, masks, build_encoder("efficientnet-lite0"), features)
    run_cluster([features], ClusterConfig(k=4, batch_size=256, seed=1), 0.3, work / "kmeans.npz")
    run_paint(masks, features, work / "kmeans.npz", work / "paint", 0.3)
    card = assemble_pl_dataset(items, [work / "paint"], atlas_dir.parent / "atlas-pl")
    assert card["images"] == len(items) and card["num_classes"] == 4
    return atlas_dir.parent / "atlas-pl"


@pytest.fixture(scope="module")
def pretrained(pl_dir: Path) -> RunResult:
    return pretrain(pl_dir, pl_dir.parent / "pre", MODEL, iters=ITERS, **TINY)


def _check_medical_record(record: dict[str, Any], init: str) -> None:
    """Table 6's numbers are there: Dice and IoU per class in [0, 100] (None: class absent), fg means."""
    assert record["role"] == "finetune" and record["model"] == MODEL and record["init"] == init
    assert record["evaluated"] and record["split"] == "test"
    assert record["dataset"]["kind"] == "medical"
    assert record["dataset"]["classes"] == ["background", "liver", "tumour"]
    assert record["dataset"]["foreground"] == ["liver", "tumour"]
    assert {"aAcc", "mIoU", "mAcc", "mDice", "mIoU_fg", "mDice_fg"} <= set(record["metrics"])
    for metric in ("IoU", "Dice"):
        values = record["per_class"][metric]
        assert list(values) == ["background", "liver", "tumour"]
        for value in values.values():
            assert value is None or 0.0 <= value <= 100.0
        fg = [values["liver"], values["tumour"]]
        expected = None if None in fg else round((fg[0] + fg[1]) / 2, 2)
        assert record["metrics"][f"m{metric}_fg"] == pytest.approx(expected, abs=0.0051)
    # The test patient has liver and the stand-in tumour in its labels: both are scored.
    assert record["per_class"]["Dice"]["liver"] is not None
    assert record["per_class"]["Dice"]["tumour"] is not None


def test_prepared_atlas_is_detected_as_medical(atlas_dir: Path) -> None:
    spec = detect_dataset(atlas_dir)
    assert (spec.kind, spec.eval_split, spec.metrics) == ("medical", "test", ("mIoU", "mDice"))
    assert spec.classes == ("background", "liver", "tumour")


def test_pretrain_unet_on_atlas_pl(pretrained: RunResult) -> None:
    record = pretrained.metrics
    assert record["role"] == "pretrain" and record["model"] == MODEL and record["init"] == "none"
    assert record["dataset"]["kind"] == "pl" and record["evaluated"] is False  # PL has no val split
    assert pretrained.checkpoint.name == f"iter_{ITERS}.pth"
    assert load_state_dict(pretrained.checkpoint)["decode_head.conv_seg.weight"].shape[0] == 4


def test_finetune_from_the_pretrained_backbone(atlas_dir: Path, pretrained: RunResult) -> None:
    work = atlas_dir.parent / "ft-backbone"
    hook = _Record()
    result = finetune(
        atlas_dir, work, "backbone", pretrained.checkpoint, MODEL, iters=ITERS, hooks=[hook], **TINY
    )
    record = json.loads(result.metrics_path.read_text())
    _check_medical_record(record, "backbone")
    assert hook.iters == list(range(ITERS)) and record["from_checkpoint"] == str(pretrained.checkpoint)

    # Surgery: the whole UNet encoder-decoder loaded, no head weight (the 4-cluster classifier never fits).
    report = json.loads((work / record["init_report"]).read_text())
    source = load_state_dict(pretrained.checkpoint)
    backbone_keys = sorted(k for k in source if k.startswith("backbone."))
    assert report["mode"] == "backbone" and report["loaded"] == backbone_keys
    assert not any(k.startswith(("decode_head.", "auxiliary_head.")) for k in report["loaded"])
    assert report["skipped"]["decode_head.conv_seg.weight"] == "outside the backbone sub-model"
    assert hook.start is not None and torch.equal(hook.start, source[PROBE])

    # A rerun resumes from the final checkpoint: nothing is trained again, the evaluation is the same.
    again_hook = _Record()
    again = finetune(
        atlas_dir, work, "backbone", pretrained.checkpoint, MODEL, iters=ITERS, hooks=[again_hook], **TINY
    )
    assert again_hook.iters == [] and again.resumed_from == result.checkpoint
    assert again.metrics["per_class"] == record["per_class"] and again.metrics["metrics"] == record["metrics"]


def test_baseline_from_scratch_through_the_cli(atlas_dir: Path) -> None:
    work = atlas_dir.parent / "ft-none"
    # No --dataset: the prepared ATLAS folder is detected as medical (evaluated on its test patients).
    args = [
        "finetune", str(atlas_dir), str(work), "--model", MODEL, "--iters", str(ITERS), "--crop-size", "64",
        "--workers", "0", "--val-interval", "100", "--log-interval", "1",
    ]  # fmt: skip
    assert main(args) == 0
    record = json.loads((work / "metrics.json").read_text())
    _check_medical_record(record, "none")
    assert record["init_report"] is None and record["from_checkpoint"] is None
    assert record["resumed_from"] is None
    # Run again: resumed from the finished run's checkpoint, not retrained.
    assert main(args) == 0
    again = json.loads((work / "metrics.json").read_text())
    assert again["resumed_from"] == f"iter_{ITERS}.pth" and again["per_class"] == record["per_class"]
