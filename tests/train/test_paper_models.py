"""The paper's eight methods, executed on the project's own dataset kinds.

Each model, built from mmseg's official config, pre-trains for one iteration on a pseudo-label dataset
(64 px crops) and is then fine-tuned with ``alps finetune`` (one iteration each, then evaluated) on iSAID
and Potsdam as the real converters write them (``alps prepare isaid`` / ``alps prepare potsdam`` on raw
layouts built from ../shared/data, as tests/datasets/test_isaid.py and test_datasets_potsdam.py build
them): iSAID from the pre-training's backbone at 96 px (ViT position embeddings resized 4x4 -> 6x6),
Potsdam from the whole pre-trained model at 64 px. Crops and iterations are tiny; the code paths are the
study's. The seconds per training iteration of each model are printed (``-s``) for docs/training.md.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from mmengine.hooks import Hook
from PIL import Image

from alps.cli import main
from alps.train.configs import official_batch_size
from alps.train.models import PAPER_MODELS

from conftest import SHARED_DATA

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real sample data {SHARED_DATA} is absent"),
]

K = 4
"""Pseudo-classes of the pre-training set."""
TINY = ["--iters", "1", "--workers", "0", "--device", "cpu", "--log-interval", "1", "--val-interval", "1"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """iSAID and Potsdam through `alps prepare`, and a PL dataset of iSAID's training patches."""
    from raw_layouts import isaid as make_isaid_raw
    from raw_layouts import potsdam as make_potsdam_raw

    root = tmp_path_factory.mktemp("paper_models")
    isaid_raw = make_isaid_raw(root / "isaid_raw", ids=("P0003", "P0004"))
    potsdam_raw = make_potsdam_raw(root / "potsdam_raw")
    out = {"isaid": root / "isaid", "potsdam": root / "potsdam"}
    assert main(["prepare", "isaid", str(isaid_raw), str(out["isaid"])]) == 0
    assert main(["prepare", "potsdam", str(potsdam_raw), str(out["potsdam"])]) == 0
    # The converters' layout: ann_dir/<split>/<name>.png beside img_dir/<split>/<name>.png.
    for name in ("isaid", "potsdam"):
        for split in ("train", "val"):
            images = sorted(p.stem for p in (out[name] / "img_dir" / split).glob("*.png"))
            assert images and images == sorted(p.stem for p in (out[name] / "ann_dir" / split).glob("*.png"))
    # Pseudo-labels in the PL layout: K intensity bins of each iSAID training patch (what matters here is
    # the format: K classes, 255 unlabeled, a dataset card).
    pl = root / "pl"
    for split in ("train", "val"):
        (pl / "img_dir" / split).mkdir(parents=True)
        (pl / "ann_dir" / split).mkdir(parents=True)
        for image_path in sorted((out["isaid"] / "img_dir" / split).glob("*.png"))[:2]:
            image = np.asarray(Image.open(image_path).convert("L"))
            label = np.minimum(image // (256 // K), K - 1).astype(np.uint8)
            label[:, :32] = 255
            shutil.copyfile(image_path, pl / "img_dir" / split / image_path.name)
            Image.fromarray(label).save(pl / "ann_dir" / split / image_path.name)
    (pl / "dataset_card.json").write_text(json.dumps({"num_classes": K, "split": "train"}))
    out["pl"] = pl
    return out


class _IterTimer(Hook):
    """Wall time of each training iteration."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:  # type: ignore[no-untyped-def]
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:  # type: ignore[no-untyped-def]
        self.times.append(time.perf_counter() - self._start)


def _metrics(work: Path) -> dict:
    return json.loads((work / "metrics.json").read_text())


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_paper_model_pretrains_and_finetunes_on_isaid_and_potsdam(
    model: str, datasets: dict[str, Path], tmp_path: Path
) -> None:
    from alps.train.runner import pretrain

    timer = _IterTimer()
    start = time.perf_counter()
    pre = pretrain(
        datasets["pl"],
        tmp_path / "pre",
        model,
        iters=1,
        crop_size=64,
        num_workers=0,
        device="cpu",
        hooks=[timer],
    )
    assert pre.metrics["iter"] == 1 and pre.metrics["split"] == "val" and pre.metrics["evaluated"]
    assert len(pre.metrics["dataset"]["classes"]) == K

    isaid_work = tmp_path / "isaid"
    args = ["finetune", str(datasets["isaid"]), str(isaid_work), "--model", model, "--dataset", "isaid"]
    args += ["--init", "backbone", "--from", str(pre.checkpoint), "--crop-size", "96", *TINY]
    assert main(args) == 0
    isaid = _metrics(isaid_work)
    assert isaid["iter"] == 1 and isaid["split"] == "val" and len(isaid["per_class"]["IoU"]) == 16
    assert isaid["metrics"]["aAcc"] is not None
    report = json.loads((isaid_work / "init_report.json").read_text())
    assert report["counts"]["loaded"] > 0 and all(k.startswith("backbone.") for k in report["loaded"])
    if model in ("vit-b-upernet", "segmenter-vit-b"):
        # 64 px pre-training, 96 px fine-tuning: the 4x4 grid of position embeddings becomes 6x6.
        assert "[1, 17, 768]" in report["resized"]["backbone.pos_embed"]
        assert "[1, 37, 768]" in report["resized"]["backbone.pos_embed"]
    else:
        assert report["resized"] == {}

    potsdam_work = tmp_path / "potsdam"
    args = ["finetune", str(datasets["potsdam"]), str(potsdam_work), "--model", model, "--dataset", "potsdam"]
    args += ["--init", "overall", "--from", str(pre.checkpoint), "--crop-size", "64", *TINY]
    assert main(args) == 0
    potsdam = _metrics(potsdam_work)
    assert potsdam["iter"] == 1 and potsdam["split"] == "val" and len(potsdam["per_class"]["IoU"]) == 6
    report = json.loads((potsdam_work / "init_report.json").read_text())
    # All but the class-sized weights (classifiers, Segmenter's class embeddings) fit the 6-class model.
    assert report["skipped"] and all(
        k.startswith(("decode_head.", "auxiliary_head.")) and v.startswith("shape mismatch")
        for k, v in report["skipped"].items()
    ), report["skipped"]
    print(
        f"\n{model}: {timer.times[0]:.2f} s per training iteration at 64 px (batch "
        f"{official_batch_size(model)}), pre-train + 2 fine-tunes {time.perf_counter() - start:.0f} s"
    )
    # Checkpoints of these models are hundreds of MB: free the disk now, not at the end of the session.
    shutil.rmtree(tmp_path)
