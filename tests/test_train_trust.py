"""`alps pretrain/finetune` as a user runs them: crafted checkpoints, ImageNet backbones, two processes.

Trust (issue 14): a pickle payload never runs, whether an ``alps_run.json`` lies beside it (``--from``) or
``last_checkpoint`` names it (resume, inside or outside the work dir); the error is one clear line.
Backbones (issue 13): a missing or unreachable ``--pretrained`` stops the job before training, naming the
model and the location. Distributed: ``torchrun`` with 2 CPU processes (gloo) trains, validating on the
pseudo-label dataset's ``val`` split.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alps.train.surgery import RUN_MARKER

BIN = Path(sys.executable).parent
MODEL = "segformer-b0"
TINY = ["--model", MODEL, "--iters", "1", "--crop-size", "64", "--workers", "0", "--device", "cpu"]


class _Payload:
    """Pickles as a call that creates a marker file: what a malicious checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def _write_split(root: Path, split: str, n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for sub in ("img_dir", "ann_dir"):
        (root / sub / split).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        label = np.kron(rng.integers(0, k, (4, 4)), np.ones((24, 24), dtype=np.int64)).astype(np.uint8)
        image = (label[..., None] * (200 // k) + rng.integers(0, 40, (96, 96, 3))).astype(np.uint8)
        Image.fromarray(image).save(root / "img_dir" / split / f"t{i}.png")
        Image.fromarray(label).save(root / "ann_dir" / split / f"t{i}.png")


@pytest.fixture(scope="module")
def pl_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pseudo-label dataset with both splits (one k-means model labels train and val), K = 4."""
    root = tmp_path_factory.mktemp("pl")
    _write_split(root, "train", 4, 4, seed=0)
    _write_split(root, "val", 2, 4, seed=1)
    (root / "dataset_card.json").write_text(json.dumps({"num_classes": 4, "split": "train"}))
    return root


def _alps(
    *args: str, env: dict[str, str] | None = None, launcher: list[str] | None = None
) -> subprocess.CompletedProcess:
    command = [*(launcher or []), str(BIN / "alps"), *args]
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)


def _payload_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {"backbone.layers.0.0.projection.weight": torch.zeros(32, 3, 7, 7)}
    torch.save({"state_dict": weights, "meta": {"hook": _Payload(marker)}}, path)
    return path


def _clear_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("alps ") and ": error: " in last
    for needle in needles:
        assert needle in last, last


def test_finetune_from_a_payload_beside_alps_run_json_runs_nothing(pl_dataset: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    shared = tmp_path / "shared_run"
    evil = _payload_checkpoint(shared / "iter_100.pth", marker)
    (shared / RUN_MARKER).write_text(json.dumps({"written_by": "alps.train.runner"}))  # anyone can write it
    result = _alps(
        "finetune", str(pl_dataset), str(tmp_path / "w"), "--init", "backbone", "--from", str(evil), *TINY
    )
    _clear_error(result, str(evil), "not plain weights")
    assert not marker.exists()


def test_resume_never_loads_a_payload(pl_dataset: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    outside = _payload_checkpoint(tmp_path / "elsewhere" / "iter_1.pth", marker)
    work = tmp_path / "w"
    work.mkdir()
    (work / "last_checkpoint").write_text(str(outside))
    result = _alps("pretrain", str(pl_dataset), str(work), *TINY)
    _clear_error(result, str(outside), "not a checkpoint of this work dir")
    # A payload inside the work dir (a shared work dir someone wrote into) is refused too.
    inside = _payload_checkpoint(work / "iter_1.pth", marker)
    (work / "last_checkpoint").write_text(str(inside))
    result = _alps("pretrain", str(pl_dataset), str(work), *TINY)
    _clear_error(result, str(inside), "not plain weights")
    assert not marker.exists()


def test_missing_or_unreachable_backbone_stops_before_training(pl_dataset: Path, tmp_path: Path) -> None:
    missing = tmp_path / "weights" / "mit_b0.pth"
    work = tmp_path / "w1"
    result = _alps("pretrain", str(pl_dataset), str(work), *TINY, "--pretrained", str(missing))
    _clear_error(result, MODEL, str(missing), "does not exist")
    assert not list(work.glob("*.pth")) and not (work / "metrics.json").exists()
    # Port 9 (discard) on this host refuses at once: no network and no wait.
    url = "http://127.0.0.1:9/mit_b0.pth"
    work = tmp_path / "w2"
    result = _alps(
        "pretrain",
        str(pl_dataset),
        str(work),
        *TINY,
        "--pretrained",
        url,
        env={"TORCH_HOME": str(tmp_path / "th")},
    )
    _clear_error(result, MODEL, url, "cannot be fetched")
    assert not list(work.glob("*.pth")) and not list((tmp_path / "th").rglob("*.pth"))
    # A backbone file that is a pickle payload is refused before mmengine would load it.
    marker = tmp_path / "PWNED"
    evil = _payload_checkpoint(tmp_path / "evil_backbone.pth", marker)
    result = _alps("pretrain", str(pl_dataset), str(tmp_path / "w3"), *TINY, "--pretrained", str(evil))
    _clear_error(result, str(evil), "not plain weights")
    assert not marker.exists()


@pytest.mark.slow
def test_two_processes_under_torchrun_with_a_backbone_and_the_pl_val_split(
    pl_dataset: Path, tmp_path: Path
) -> None:
    """mmengine's way to run N GPUs, on 2 CPU processes (gloo): one job, one checkpoint, val-split metrics."""
    from alps.train.configs import build_config, dataset_spec
    from alps.train.mmcv_compat import import_mmseg

    import_mmseg()
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    cfg = build_config(MODEL, dataset_spec("pl", pl_dataset, crop_size=64), max_iters=2, device="cpu")
    torch.manual_seed(7)
    backbone = MODELS.build(cfg.model).backbone.state_dict()
    weights = tmp_path / "mit_b0_plain.pth"
    torch.save({"state_dict": backbone}, weights)

    work = tmp_path / "w"
    torchrun = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "--no-python"]
    args = ["pretrain", str(pl_dataset), str(work), *TINY, "--iters", "2", "--batch-size", "1"]
    result = _alps(*args, "--launcher", "pytorch", "--pretrained", str(weights), launcher=torchrun)
    assert result.returncode == 0, result.stderr[-3000:]
    log = next(work.rglob("*.log")).read_text()
    assert "Distributed training: True" in log and "GPU number: 2" in log
    assert f"load model from: {weights}" in log or str(weights) in log
    metrics = json.loads((work / "metrics.json").read_text())
    # The PL dataset's val split (labeled by the same k-means model) is what pre-training validates on.
    assert metrics["evaluated"] is True and metrics["split"] == "val" and metrics["iter"] == 2
    assert metrics["metrics"]["mIoU"] is not None
    config = (work / "train_config.py").read_text()
    assert "launcher = 'pytorch'" in config and "ann_dir/val" in config


def test_the_cli_leaves_the_process_group_it_trained_in(tmp_path: Path) -> None:
    """A training command destroys its torch.distributed group before the process exits: a live gloo group
    can abort the process in its destructor (SIGABRT) after the work is done, failing the torchrun job."""
    import torch.distributed as dist

    from alps.cli import _leave_process_group

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    assert dist.is_initialized()
    _leave_process_group()
    assert not dist.is_initialized()
    _leave_process_group()  # nothing to leave: no error


def test_no_unpickling_anywhere_in_the_package() -> None:
    """No code path of the package can unpickle: no weights_only=False, no forced override, no pickle.load."""
    src = Path(__file__).resolve().parents[1] / "src"
    banned = ("weights_only=False", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "pickle.load", "pickle.loads")
    hits = [
        f"{path.relative_to(src)}: {needle}"
        for path in src.rglob("*.py")
        for needle in banned
        if needle in path.read_text(encoding="utf-8")
    ]
    assert hits == []
