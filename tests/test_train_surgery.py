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

    Its ``meta`` pickles a numpy scalar, as mmengine's do: the numpy data types are all that
    ``weights_only=True`` is allowed to rebuild beyond tensors.
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


class _Payload:
    """Pickles as a call that creates a marker file: what a malicious checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_checkpoint_trust(pretrained: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    path, source = pretrained
    # mmengine-style meta with numpy scalars loads with weights_only=True, wherever the file lies.
    foreign = tmp_path / "downloaded.pth"
    foreign.write_bytes(path.read_bytes())
    assert set(load_state_dict(foreign)) == set(source)
    # User weights saved as plain tensors load anywhere with weights_only=True (DDP prefix stripped).
    plain = tmp_path / "backbone.pth"
    torch.save({"module.backbone.stem.0.weight": source["backbone.stem.0.weight"]}, plain)
    assert list(load_state_dict(plain)) == ["backbone.stem.0.weight"]
    # A pickle payload is refused, even beside an alps_run.json that anyone could write.
    marker = tmp_path / "PWNED"
    evil = path.parent / "evil.pth"
    torch.save({"state_dict": dict(source), "meta": {"x": _Payload(marker)}}, evil)
    assert (path.parent / RUN_MARKER).is_file()
    with pytest.raises(UntrustedCheckpointError, match="not plain weights"):
        load_state_dict(evil)
    assert not marker.exists()
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UntrustedCheckpointError, match="not a torch checkpoint"):
        load_state_dict(garbage)


def test_pos_embed_resized_between_crops(tmp_path: Path) -> None:
    """ViT-B pre-trained at 64 px, fine-tuned at 96 px: pos_embed is resized as mmseg's ViT does it."""
    from mmseg.models.backbones.vit import VisionTransformer

    source = {"backbone.pos_embed": torch.randn(1, 1 + 4 * 4, 8), "backbone.cls_token": torch.zeros(1, 1, 8)}
    target = {"backbone.pos_embed": torch.zeros(1, 1 + 6 * 6, 8), "backbone.cls_token": torch.zeros(1, 1, 8)}
    weights, report = select_weights(source, target, "backbone")
    expected = VisionTransformer.resize_pos_embed(source["backbone.pos_embed"], (6, 6), (4, 4), "bicubic")
    assert torch.equal(weights["backbone.pos_embed"], expected)
    assert torch.equal(weights["backbone.pos_embed"][:, 0], source["backbone.pos_embed"][:, 0])  # class token
    assert "resized" in report["resized"]["backbone.pos_embed"] and report["counts"]["resized"] == 1
    assert "backbone.pos_embed" in report["loaded"] and "backbone.pos_embed" not in report["kept_init"]
    # A non-square grid is taken from the model's crop (img_size // patch_size).
    wide = {"backbone.pos_embed": torch.zeros(1, 1 + 4 * 8, 8)}
    weights, report = select_weights(source, wide, "overall", {"backbone.pos_embed": (4, 8)})
    assert weights["backbone.pos_embed"].shape == (1, 33, 8)
    # Different embedding widths are not resized: skipped with the reason.
    other_width = {"backbone.pos_embed": torch.zeros(1, 37, 16), "backbone.cls_token": torch.zeros(1, 1, 8)}
    _, report = select_weights(source, other_width, "overall")
    assert "shape mismatch" in report["skipped"]["backbone.pos_embed"]


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


def test_reinit_keeps_a_classifier_that_fits_at_its_initialisation(
    fresh_state: dict[str, torch.Tensor],
) -> None:
    """K == C: the classifier fits and `overall`/`head` load it, unless named in `reinit`."""
    for mode in ("overall", "head"):
        loaded, _ = select_weights(fresh_state, fresh_state, mode)
        assert set(loaded) >= CLASSIFIERS
        loaded, report = select_weights(fresh_state, fresh_state, mode, reinit=CLASSIFIERS)
        assert not CLASSIFIERS & set(loaded) and set(report["kept_init"]) >= CLASSIFIERS
        assert {report["skipped"][k] for k in CLASSIFIERS} == {
            "classifier re-initialised (--reinit-classifier): pseudo-class k is not class k"
        }
        assert "decode_head.bottleneck.conv.weight" in loaded  # the rest of the head still loads
