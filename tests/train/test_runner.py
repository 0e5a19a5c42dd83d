"""Real, tiny mmengine training: pre-train on pseudo-labels, fine-tune with each init, resume after a kill."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from PIL import Image

from alps.datasets.demo import CLASSES as DEMO_CLASSES
from alps.datasets.demo import PALETTE as DEMO_PALETTE
from alps.train.inference import read_plain_config
from alps.train.runner import RunResult, finetune, foreground_mean, pretrain
from alps.train.surgery import RUN_MARKER, load_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


MODEL = "segformer-b0"
CROP = 64
# No validation during these short runs (val_interval > iters): the final test is the evaluation.
TINY: dict[str, Any] = {"crop_size": CROP, "batch_size": 2, "num_workers": 0, "val_interval": 100}


def _write_split(root: Path, split: str, n: int, k: int, rng: np.random.Generator, unlabeled: bool) -> None:
    for sub in ("img_dir", "ann_dir"):
        (root / sub / split).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        # Blocky images whose colour tells the label, so the task is learnable, plus noise.
        label = np.kron(rng.integers(0, k, (4, 4)), np.ones((24, 24), dtype=np.int64)).astype(np.uint8)
        image = (label[..., None] * (200 // k) + rng.integers(0, 40, (96, 96, 3))).astype(np.uint8)
        if unlabeled:
            label[:, :12] = 255  # pseudo-labels leave pixels unlabeled
        Image.fromarray(image).save(root / "img_dir" / split / f"t{i}.png")
        Image.fromarray(label).save(root / "ann_dir" / split / f"t{i}.png")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A PL dataset (K = 5, 255 = unlabeled, train only) and a demo-like 3-class dataset (train/val)."""
    root = tmp_path_factory.mktemp("train_data")
    rng = np.random.default_rng(0)
    pl = root / "pl"
    _write_split(pl, "train", 4, 5, rng, unlabeled=True)
    (pl / "dataset_card.json").write_text(
        json.dumps({"num_classes": 5, "split": "train", "ignore_index": 255})
    )
    demo = root / "demo"
    _write_split(demo, "train", 4, 3, rng, unlabeled=False)
    _write_split(demo, "val", 2, 3, rng, unlabeled=False)
    (demo / "classes.json").write_text(
        json.dumps({"classes": list(DEMO_CLASSES), "palette": [list(p) for p in DEMO_PALETTE]})
    )
    medical = root / "medical"
    _write_split(medical, "train", 2, 3, rng, unlabeled=False)
    _write_split(medical, "val", 1, 3, rng, unlabeled=False)
    # A labeled task with as many classes as the PL dataset has pseudo-classes (iSAID-PL 16 -> iSAID 16).
    five = root / "five"
    _write_split(five, "train", 2, 5, rng, unlabeled=False)
    _write_split(five, "val", 1, 5, rng, unlabeled=False)
    (five / "classes.json").write_text(json.dumps({"classes": [f"class{i}" for i in range(5)]}))
    return {"pl": pl, "demo": demo, "medical": medical, "five": five, "root": root}


@pytest.fixture(scope="module")
def pretrained(data: dict[str, Path]) -> RunResult:
    return pretrain(data["pl"], data["root"] / "pre", MODEL, iters=4, checkpoint_interval=2, seed=3, **TINY)


class _Crash(Hook):
    """Stands for a kill: fails at the start of iteration ``at`` (0-based)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if runner.iter == self.at:
            raise KeyboardInterrupt("simulated kill")


class _Record(Hook):
    """Records the iterations run, and some weights as training starts (after loading)."""

    def __init__(self, keys: tuple[str, ...] = ()) -> None:
        self.iters: list[int] = []
        self.keys = keys
        self.start: dict[str, torch.Tensor] = {}

    def before_train(self, runner: Any) -> None:
        state = runner.model.state_dict()
        self.start = {k: state[k].detach().clone() for k in self.keys}

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self.iters.append(runner.iter)


def test_pretrain_writes_checkpoint_config_and_marker(pretrained: RunResult) -> None:
    work = pretrained.work_dir
    # Only the last periodic checkpoint is kept unless asked (no val split here: no best one).
    assert pretrained.checkpoint == work / "iter_4.pth" and not (work / "iter_2.pth").exists()
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_4.pth"]
    assert (work / RUN_MARKER).is_file()
    text = (work / "train_config.py").read_bytes()
    assert pretrained.config_hash == hashlib.sha256(text).hexdigest()
    record = json.loads((work / "metrics.json").read_text())
    assert record["evaluated"] is False and record["iter"] == 4 and record["seed"] == 3
    assert record["config_hash"] == pretrained.config_hash and record["checkpoint"] == "iter_4.pth"
    state = load_state_dict(pretrained.checkpoint)  # our own mmengine checkpoint: trusted by its marker
    assert state["decode_head.conv_seg.weight"].shape[0] == 5
    # Stock torch.load reads it with no allow-list: the message hub holds plain Python data.
    raw = torch.load(pretrained.checkpoint, weights_only=True)
    assert raw["meta"]["dataset_meta"]["classes"] == [f"cluster_{i:02d}" for i in range(5)]
    # config.py is the model for inference in stock mmseg types: plain data, no alps import.
    inference = read_plain_config(work / "config.py")
    assert "custom_imports" not in inference and "alps.train" not in (work / "config.py").read_text()
    assert inference["model"]["decode_head"]["num_classes"] == 5
    assert [step["type"] for step in inference["test_pipeline"]] == [
        "LoadImageFromFile",
        "Resize",
        "PackSegInputs",
    ]


def test_same_seed_same_weights(pretrained: RunResult, data: dict[str, Path]) -> None:
    again = pretrain(
        data["pl"], data["root"] / "pre_again", MODEL, iters=4, checkpoint_interval=2, seed=3, **TINY
    )
    first, second = load_state_dict(pretrained.checkpoint), load_state_dict(again.checkpoint)
    assert again.config_hash != pretrained.config_hash  # the work dir is part of the config
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("init", ["none", "overall", "backbone", "head"])
def test_finetune_each_init(init: str, pretrained: RunResult, data: dict[str, Path], tmp_path: Path) -> None:
    probe = ("backbone.layers.0.0.projection.weight", "decode_head.fusion_conv.conv.weight")
    record_hook = _Record(probe)
    result = finetune(
        data["demo"],
        tmp_path / f"ft_{init}",
        init,
        None if init == "none" else pretrained.checkpoint,
        MODEL,
        iters=2,
        hooks=[record_hook],
        **TINY,
    )
    record = json.loads(result.metrics_path.read_text())
    assert result.metrics_path == result.checkpoint.parent / "metrics.json"
    assert record["evaluated"] and record["split"] == "val" and record["init"] == init
    assert set(record["metrics"]) == {"aAcc", "mIoU", "mAcc"}
    assert set(record["per_class"]) == {"IoU", "Acc"}
    assert list(record["per_class"]["IoU"]) == list(DEMO_CLASSES)
    assert record["config_hash"] == result.config_hash and record["seed"] == 0
    assert record_hook.iters == [0, 1] and record["checkpoint"] == "iter_2.pth"
    # The last checkpoint and the best by validation mIoU are kept, each readable by stock torch.load.
    kept = sorted(p.name for p in result.work_dir.glob("*.pth") if not p.name.startswith("init_"))
    assert kept == ["best_mIoU_iter_2.pth", "iter_2.pth"]
    for name in kept:
        torch.load(result.work_dir / name, weights_only=True)
    # mmengine really started from the selected weights: compare with the pre-trained checkpoint.
    source = load_state_dict(pretrained.checkpoint)
    backbone_loaded = torch.equal(record_hook.start[probe[0]], source[probe[0]])
    head_loaded = torch.equal(record_hook.start[probe[1]], source[probe[1]])
    assert (backbone_loaded, head_loaded) == {
        "none": (False, False),
        "overall": (True, True),
        "backbone": (True, False),
        "head": (False, True),
    }[init]
    if init == "none":
        assert record["init_report"] is None
        # Running the finished run again trains nothing and evaluates the same weights (Runner.test).
        again = finetune(data["demo"], tmp_path / f"ft_{init}", init, None, MODEL, iters=2, **TINY)
        assert again.resumed_from == result.checkpoint and again.metrics["metrics"] == record["metrics"]
        assert again.metrics["per_class"] == record["per_class"]
    else:
        report = json.loads((result.work_dir / "init_report.json").read_text())
        assert "decode_head.conv_seg.weight" in report["kept_init"]
        if init != "backbone":
            skipped = report["skipped"]["decode_head.conv_seg.weight"]
            assert skipped.startswith("shape mismatch: [5, 256, 1, 1]")


@pytest.mark.parametrize("reinit", [False, True])
def test_an_equal_class_count_loads_the_classifier_unless_reinitialised(
    reinit: bool, pretrained: RunResult, data: dict[str, Path], tmp_path: Path
) -> None:
    """K = C = 5: `overall` loads pseudo-class k's classifier as class k; --reinit-classifier does not."""
    classifier = ("decode_head.conv_seg.weight", "decode_head.conv_seg.bias")
    probe = (*classifier, "decode_head.fusion_conv.conv.weight")
    hook = _Record(probe)
    result = finetune(
        data["five"], tmp_path / "ft", "overall", pretrained.checkpoint, MODEL, iters=1, hooks=[hook],
        reinit_classifier=reinit, **TINY,
    )  # fmt: skip
    source = load_state_dict(pretrained.checkpoint)
    assert torch.equal(hook.start[probe[2]], source[probe[2]])  # the rest of the head loads either way
    for key in classifier:
        assert torch.equal(hook.start[key], source[key]) is not reinit, key
    report = json.loads((result.work_dir / "init_report.json").read_text())
    if reinit:
        reason = report["skipped"]["decode_head.conv_seg.weight"]
        assert reason.startswith("classifier re-initialised (--reinit-classifier)")
        assert "decode_head.conv_seg.weight" in report["kept_init"]
        # Only the class-count-dependent weights are left out.
        assert {k for k, v in report["skipped"].items() if v.startswith("classifier")} == set(classifier)
        assert "reinit_classifier" in result.config_path.read_text()  # another run than without it
    else:
        assert "decode_head.conv_seg.weight" in report["loaded"]
        assert "reinit_classifier" not in result.config_path.read_text()


def test_resume_after_kill(data: dict[str, Path], tmp_path: Path) -> None:
    work = tmp_path / "killed"
    args: dict[str, Any] = {"iters": 4, "checkpoint_interval": 2, **TINY}
    with pytest.raises(KeyboardInterrupt, match="simulated kill"):
        pretrain(data["pl"], work, MODEL, hooks=[_Crash(at=3)], **args)
    assert (work / "iter_2.pth").is_file() and not (work / "iter_4.pth").exists()
    assert not (work / "metrics.json").exists()
    record_hook = _Record()
    result = pretrain(data["pl"], work, MODEL, hooks=[record_hook], **args)
    assert record_hook.iters == [2, 3]  # continues after the saved iteration, redoing the unsaved one
    assert result.resumed_from == work / "iter_2.pth" and result.checkpoint == work / "iter_4.pth"
    record = json.loads(result.metrics_path.read_text())
    assert record["resumed_from"] == "iter_2.pth" and record["iter"] == 4
    # The same work dir with other settings is refused rather than mixed with this run's checkpoints.
    with pytest.raises(ValueError, match="different config"):
        pretrain(data["pl"], work, MODEL, iters=6, checkpoint_interval=2, **TINY)
    # The workflow reruns a job whose settings changed: the stale run is started over, never resumed.
    rerun = pretrain(
        data["pl"], work, MODEL, iters=6, checkpoint_interval=2, restart_on_config_change=True, **TINY
    )
    assert rerun.resumed_from is None and rerun.metrics["iter"] == 6
    assert rerun.config_hash != result.config_hash


class _Files(Hook):
    """Records the checkpoint files in the work dir when training ends (before any are dropped)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def after_train(self, runner: Any) -> None:
        self.names = sorted(p.name for p in Path(runner.work_dir).glob("*.pth"))


def test_finetune_drops_only_its_checkpoints_when_asked(data: dict[str, Path], tmp_path: Path) -> None:
    work = tmp_path / "dropped"
    work.mkdir()
    (work / "notes.pth").write_text("the user's, not a checkpoint of this run")
    # Named like checkpoints, but in the folder before any alps run claimed it: the user's too.
    theirs = [work / "iter_7.pth", work / "best_model.pth"]
    for path in theirs:
        path.write_text("the user's")
    files = _Files()
    result = finetune(
        data["medical"],
        work,
        dataset="medical",
        model=MODEL,
        iters=1,
        keep_checkpoints=False,
        hooks=[files],
        **TINY,
    )
    assert result.metrics_path.is_file() and (work / "train_config.py").is_file()
    # No best checkpoint is written only to be deleted; the config (and its hash) still names it.
    assert files.names == ["best_model.pth", "iter_1.pth", "iter_7.pth", "notes.pth"]
    assert "save_best='mIoU'" in (work / "train_config.py").read_text()
    assert sorted(work.glob("iter_*.pth")) == [work / "iter_7.pth"]
    assert not (work / "last_checkpoint").exists()
    assert (work / "notes.pth").is_file() and all(path.read_text() == "the user's" for path in theirs)


def test_medical_metrics_have_dice_per_class(data: dict[str, Path], tmp_path: Path) -> None:
    result = finetune(data["medical"], tmp_path / "med", dataset="medical", model=MODEL, iters=1, **TINY)
    record = result.metrics
    assert {"mIoU", "mDice", "aAcc", "mAcc"} <= set(record["metrics"])
    assert (
        set(record["per_class"]["Dice"])
        == set(record["per_class"]["IoU"])
        == {"background", "liver", "tumour"}
    )
    # Table 6's means leave the background out.
    assert record["dataset"]["foreground"] == ["liver", "tumour"]
    dice = record["per_class"]["Dice"]
    assert record["metrics"]["mDice_fg"] == foreground_mean([dice["liver"], dice["tumour"]])
    assert "mIoU_fg" in record["metrics"]


def test_foreground_mean_is_table_6s_mean() -> None:
    assert foreground_mean([79.54, 24.03]) == 51.79  # the paper's DSC example; binary floats give 51.78
    assert foreground_mean([10.0, 0.0]) == 5.0
    assert foreground_mean([80.0, None]) is None and foreground_mean([]) is None


def test_argument_errors(pretrained: RunResult, data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a pre-trained checkpoint"):
        finetune(data["demo"], tmp_path / "a", "overall")
    with pytest.raises(ValueError, match="init none"):
        finetune(data["demo"], tmp_path / "b", "none", pretrained.checkpoint)
    with pytest.raises(ValueError, match="init must be one of"):
        finetune(data["demo"], tmp_path / "c", "neck", pretrained.checkpoint)


def test_pretrained_backbone_is_what_training_starts_from(
    pretrained: RunResult, data: dict[str, Path], tmp_path: Path
) -> None:
    """`--pretrained` (paper.yaml's ImageNet backbones) loads the file into the backbone before training.

    The backbone weights of an earlier run, scaled so that they differ from any initialisation, stand in
    for mmseg's ImageNet checkpoint (no download here); the file is plain weights, as fetch_pretrained wants.
    """
    state = load_state_dict(pretrained.checkpoint)
    backbone = {k.removeprefix("backbone."): v * 0.5 for k, v in state.items() if k.startswith("backbone.")}
    path = tmp_path / "imagenet_backbone.pth"
    torch.save({"state_dict": backbone}, path)
    keys = tuple(f"backbone.{k}" for k in sorted(backbone)[:3])
    record = _Record(keys)
    pretrain(
        data["pl"], tmp_path / "from_imagenet", MODEL, iters=1, pretrained=str(path), hooks=[record], **TINY
    )
    for key in keys:
        assert torch.equal(record.start[key], backbone[key.removeprefix("backbone.")]), key
