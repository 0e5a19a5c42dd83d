"""Sub-model initialisation on real saved checkpoints: UperNet-R18 pre-trained on K=8, fine-tuned on 3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from alps.train.configs import build_config, dataset_spec
from alps.train.mmcv_compat import import_mmseg
from alps.train.surgery import (
    RUN_MARKER,
    UntrustedCheckpointError,
    init_model,
    is_project_checkpoint,
    load_state_dict,
    select_weights,
    write_init_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _build(name: str, num_classes: int, tmp: Path, seed: int) -> nn.Module:
    import_mmseg()
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    root = tmp / f"classes{num_classes}"
    root.mkdir(exist_ok=True)
    (root / "classes.json").write_text(json.dumps({"classes": [f"c{i}" for i in range(num_classes)]}))
    cfg = build_config(name, dataset_spec("folder", root, crop_size=64), max_iters=2, device="cpu")
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """An mmengine-style checkpoint of UperNet-R18 with 8 classes, in a work dir this project marked.

    Its ``meta`` pickles a numpy scalar, as mmengine's do, so ``weights_only=True`` cannot read it.
    """
    tmp = tmp_path_factory.mktemp("surgery")
    model = _build("upernet-r18", 8, tmp, seed=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    work = tmp / "work_dirs" / "pretrain"
    work.mkdir(parents=True)
    (work / RUN_MARKER).write_text("{}")
    path = work / "iter_4.pth"
    torch.save({"meta": {"iter": np.int64(4)}, "state_dict": state}, path)
    return path, state


@pytest.fixture(scope="module")
def fresh_state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    model = _build("upernet-r18", 3, tmp_path_factory.mktemp("fresh"), seed=2)
    return {k: v.clone() for k, v in model.state_dict().items()}


CLASSIFIERS = {
    "decode_head.conv_seg.weight",
    "decode_head.conv_seg.bias",
    "auxiliary_head.conv_seg.weight",
    "auxiliary_head.conv_seg.bias",
}


def _expected(mode: str, keys: set[str]) -> set[str]:
    if mode == "none":
        return set()
    if mode == "overall":
        scope = keys
    elif mode == "backbone":
        scope = {k for k in keys if k.startswith("backbone.")}
    else:
        scope = {k for k in keys if k.startswith(("decode_head.", "auxiliary_head."))}
    return scope - CLASSIFIERS


@pytest.mark.parametrize("mode", ["none", "overall", "backbone", "head"])
def test_init_modes_load_exactly_their_sub_model(
    mode: str,
    pretrained: tuple[Path, dict[str, torch.Tensor]],
    fresh_state: dict[str, torch.Tensor],
    tmp_path: Path,
) -> None:
    path, source = pretrained
    model = _build("upernet-r18", 3, tmp_path, seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for key, value in before.items():  # same seed, same initialisation: the fixture's is this one's twin
        assert torch.equal(value, fresh_state[key])
    report_path = tmp_path / "init_report.json"
    report = init_model(model, path, mode, report_path=report_path)
    after = model.state_dict()
    expected = _expected(mode, set(after))
    assert set(report["loaded"]) == expected
    for key, value in after.items():
        if key in expected:
            assert torch.equal(value, source[key]), key
        else:
            assert torch.equal(value, before[key]), key  # kept its fresh initialisation
    # Something really changed: the pre-trained and the fresh weights differ where they were loaded.
    changed = {k for k in after if k.endswith("weight") and not torch.equal(after[k], before[k])}
    assert changed == {k for k in expected if k.endswith("weight") and not torch.equal(source[k], before[k])}
    if mode in ("overall", "head"):
        for key in CLASSIFIERS:
            assert report["skipped"][key].startswith("shape mismatch")
            assert "classifier" in report["skipped"][key]
            assert key in report["kept_init"]
        assert report["skipped"]["decode_head.conv_seg.weight"].startswith(
            "shape mismatch: [8, 512, 1, 1] in the checkpoint, [3, 512, 1, 1] in the model"
        )
    if mode == "backbone":
        assert report["skipped"]["decode_head.conv_seg.weight"] == "outside the backbone sub-model"
    written = json.loads(report_path.read_text())
    assert written["loaded"] == sorted(expected) and written["mode"] == mode
    assert set(written["loaded"]) | set(written["kept_init"]) == set(after)
    if mode != "none":  # init none does not even read the checkpoint
        assert set(written["loaded"]) | set(written["skipped"]) == set(source)
    assert written["counts"]["loaded"] == len(expected)


def test_write_init_checkpoint_holds_plain_tensors(
    pretrained: tuple[Path, dict[str, torch.Tensor]], fresh_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    path, source = pretrained
    out = tmp_path / "init_head.pth"
    report = write_init_checkpoint(path, fresh_state, "head", out, tmp_path / "report.json")
    saved = torch.load(out, weights_only=True)  # readable without unpickling anything
    assert sorted(saved["state_dict"]) == report["loaded"] == sorted(_expected("head", set(fresh_state)))
    assert all(torch.equal(v, source[k]) for k, v in saved["state_dict"].items())
    assert saved["meta"]["alps_init"] == "head"
    with pytest.raises(ValueError, match="init none"):
        write_init_checkpoint(path, fresh_state, "none", tmp_path / "x.pth")


def test_checkpoint_trust(pretrained: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    path, source = pretrained
    assert is_project_checkpoint(path)
    foreign = tmp_path / "downloaded.pth"
    foreign.write_bytes(path.read_bytes())
    assert not is_project_checkpoint(foreign)
    with pytest.raises(UntrustedCheckpointError, match="weights_only=True"):
        load_state_dict(foreign)
    assert set(load_state_dict(foreign, trusted=True)) == set(source)
    # User weights saved as plain tensors load anywhere with weights_only=True (DDP prefix stripped).
    plain = tmp_path / "backbone.pth"
    torch.save({"module.backbone.stem.0.weight": source["backbone.stem.0.weight"]}, plain)
    assert list(load_state_dict(plain)) == ["backbone.stem.0.weight"]


def test_select_weights_rejects_a_foreign_architecture(fresh_state: dict[str, torch.Tensor]) -> None:
    other = {"backbone.layers.0.0.projection.weight": torch.zeros(32, 3, 7, 7)}
    with pytest.raises(ValueError, match="no weight of the checkpoint fits"):
        select_weights(other, fresh_state, "backbone")
    with pytest.raises(ValueError, match="init mode"):
        select_weights(other, fresh_state, "neck")
    weights, report = select_weights(other, fresh_state, "none")
    assert weights == {} and report["skipped"] == {
        "backbone.layers.0.0.projection.weight": "init none loads nothing"
    }
