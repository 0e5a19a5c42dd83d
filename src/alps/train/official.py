"""mmseg's official config of each model (``ModelSpec.reference``) and the study's overrides of it:
the ``model`` entry (``model_cfg``), the optimiser and LR schedule (``optim_cfg``), and
``ALLOWED_DIFFERENCES``, the list of every override with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alps.train.mmcv_compat import ensure_mmcv_ops
from alps.train.models import LITE0_MODELS, MODELS

# Before any mmseg import: under mmcv-lite, mmseg's package imports reach mmcv.ops (see mmcv_compat).
ensure_mmcv_ops()

import mmseg  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner.checkpoint import get_external_models, get_torchvision_models  # noqa: E402

from alps.train import backbones  # noqa: E402  (registers EfficientNetLite0 with mmseg's MODELS)

_MIN_WARMUP = 10
"""Shortest linear warm-up (iterations) worth running; shorter schedules train without one."""

UNET_DIVISOR = 16
"""UNet-S5-D16 max-pools four times: input sides must be multiples of 16 (``UNet._check_input_divisible``)."""


ALLOWED_DIFFERENCES: dict[str, str] = {
    "model.pretrained": "ImageNet weights come from training.pretrained_backbones (--pretrained), checked "
    "and fetched before training, and are set as backbone.init_cfg; without it the backbone starts "
    "from mmseg's random initialisation",
    "model.backbone.pretrained": "as model.pretrained",
    "model.backbone.init_cfg*": "as model.pretrained",
    "model.data_preprocessor.size": "the study's crop (datasets: iSAID 896, Potsdam and PL 512)",
    "model.data_preprocessor.test_cfg*": "UNet pads test images to a multiple of 16 (it refuses others)",
    "model.backbone.img_size": "ViT position embeddings sized for the study's crop, as mmseg's ADE20K "
    "configs size them for theirs (512)",
    "model.test_cfg.crop_size": "the sliding test window is the study's crop",
    "model.test_cfg.stride": "the sliding stride scaled with the crop (Segmenter 480/512, UNet 170/256)",
    "model.decode_head.num_classes": "the dataset's classes (K pseudo-classes, iSAID 16, Potsdam 6)",
    "model.decode_head.out_channels": "the dataset's classes",
    "model.auxiliary_head.num_classes": "the dataset's classes",
    "model.*norm_cfg.type": "SyncBN -> BN in a single-process run (one GPU, CPU): SyncBN needs a process "
    "group; multi-GPU runs (launcher pytorch on CUDA) keep the official SyncBN (torch has none on CPU)",
    "optim_wrapper.optimizer.lr": "a run's own base learning rate (lr=), only where a caller sets one: "
    "the effect experiment's schedules are 200-300x shorter than mmseg's (docs/effect.md)",
    "optim_wrapper.type": "AmpOptimWrapper with training.amp (mixed precision)",
    "optim_wrapper.loss_scale": "AmpOptimWrapper with training.amp (mixed precision)",
    "param_scheduler.*.end": "the study's schedule length (80k/160k as mmseg, 320k for Table 4, short "
    "schedules in the demo and tests); warm-up is min(1500, iters // 10)",
    "param_scheduler.*.begin": "the warm-up end, as param_scheduler.*.end",
    "param_scheduler": "no warm-up below 10 iterations (tests): a LinearLR of a few steps never warms up",
}
"""Every way a built config may differ from mmseg's official one (``ModelSpec.reference``), with the reason:
dotted keys of ``model``, ``optim_wrapper`` and ``param_scheduler`` (``*`` matches anything, list items
are numbered). The per-GPU batch (``train_dataloader.batch_size``) is the official one unless a run sets
another. ``tests/train/test_configs.py`` compares every model with its official config against this list,
which is also the deviation table of docs/training.md."""


def official_config(name: str) -> Config:
    """mmseg's own config of a model (``ModelSpec.reference``), read from the configs shipped in its wheel.

    Raises:
        KeyError: unknown model.
        FileNotFoundError: the installed mmseg has no ``.mim/configs`` (an install from a source tree).
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    path = Path(mmseg.__file__).parent / ".mim" / "configs" / MODELS[name].reference
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the model configs are read from mmsegmentation's wheel (pip install "
            "mmsegmentation==1.2.2), which ships them under mmseg/.mim/configs"
        )
    return Config.fromfile(str(path))


def official_batch_size(name: str) -> int:
    """Images per GPU of the official config (4 for the CNNs, 2 for DeepLabV3+ and most transformers...)."""
    return int(official_config(name).train_dataloader.batch_size)


def official_pretrained(name: str) -> str | None:
    """The ImageNet backbone checkpoint of the official config, as it names it (URL, ``open-mmlab://``,
    ``torchvision://`` or a local ``pretrain/...`` path), or None (UNet trains from scratch)."""
    if name in LITE0_MODELS:
        return backbones.lite0_weights()
    model = official_config(name).model
    init_cfg = model.backbone.get("init_cfg") or {}
    return model.get("pretrained") or model.backbone.get("pretrained") or init_cfg.get("checkpoint")


def checkpoint_url(location: str) -> str:
    """The download URL of an mmengine checkpoint name (``open-mmlab://``, ``torchvision://``), or the
    location itself (a URL or a local path)."""
    for prefix, table in (("open-mmlab://", get_external_models), ("torchvision://", get_torchvision_models)):
        if location.startswith(prefix):
            name = location[len(prefix) :]
            urls = table()
            if name not in urls:
                raise ValueError(f"{location}: mmengine knows no checkpoint named {name!r}")
            return str(urls[name])
    return location


def replace_sync_bn(value: Any) -> Any:
    """SyncBN -> BN everywhere in a (nested) config value."""
    if isinstance(value, dict):
        return {k: ("BN" if k == "type" and v == "SyncBN" else replace_sync_bn(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(replace_sync_bn(v) for v in value)
    return value


def _set_classes(head: Any, num_classes: int) -> None:
    for item in head if isinstance(head, list) else [head]:
        item["num_classes"] = num_classes
        if item.get("out_channels") is not None:
            item["out_channels"] = num_classes


def model_cfg(
    name: str, num_classes: int, crop_size: tuple[int, int], sync_bn: bool = False
) -> dict[str, Any]:
    """The ``model`` entry of a config: mmseg's official model with the study's overrides only.

    The overrides are listed, each with its reason, in ``ALLOWED_DIFFERENCES``: classes, crop, no
    ImageNet checkpoint (``build_config(pretrained=...)`` sets it), and BN for SyncBN in one process.

    Arguments:
        name: a ``MODELS`` key.
        num_classes: classes of the decode (and auxiliary) head.
        crop_size: training crop ``(h, w)``: the preprocessor pads batches to it; ViT position embeddings
            and Segmenter's and UNet's sliding test windows follow it.
        sync_bn: keep the official SyncBN (distributed runs); else plain BN.

    Returns:
        The model dict.

    Raises:
        KeyError: unknown model name.
        ValueError: a UNet crop that is not a multiple of 16.
    """
    if name == "unet-s5-d16" and any(side % UNET_DIVISOR for side in crop_size):
        raise ValueError(
            f"unet-s5-d16 needs a crop whose sides are multiples of {UNET_DIVISOR} (four 2x poolings), "
            f"got {tuple(crop_size)}"
        )
    official = official_config(name)
    model: dict[str, Any] = official.model.to_dict()
    crop = tuple(int(s) for s in crop_size)
    model["pretrained"] = None
    model["backbone"].pop("init_cfg", None)
    model["backbone"].pop("pretrained", None)
    model["data_preprocessor"]["size"] = crop
    if "img_size" in model["backbone"]:
        model["backbone"]["img_size"] = crop
    if name in LITE0_MODELS:
        model["backbone"] = {"type": "EfficientNetLite0"}
        model["decode_head"]["in_channels"] = list(backbones.LITE0_CHANNELS)
        # The normalisation the network was trained with (TF's inception style), not ImageNet's mean/std.
        model["data_preprocessor"]["mean"] = [backbones.LITE0_MEAN] * 3
        model["data_preprocessor"]["std"] = [backbones.LITE0_STD] * 3
    _set_classes(model["decode_head"], num_classes)
    if "auxiliary_head" in model:
        _set_classes(model["auxiliary_head"], num_classes)
    test_cfg = model.get("test_cfg") or {}
    if test_cfg.get("mode") == "slide":
        # The official window and stride, scaled to the study's crop (Segmenter 512/480, UNet 256/170).
        window, stride = test_cfg["crop_size"], test_cfg["stride"]
        test_cfg["stride"] = tuple(
            max(1, side * s // w) for side, s, w in zip(crop, stride, window, strict=True)
        )
        test_cfg["crop_size"] = crop
    if name == "unet-s5-d16":
        # A test image smaller than the window is decoded whole (slide_inference does not pad it), and
        # UNet refuses sides that are not multiples of 16: pad test batches to one. The prediction is
        # cropped back before the metric (``padding_size``), so the padding is never scored.
        model["data_preprocessor"]["test_cfg"] = {"size_divisor": UNET_DIVISOR}
    return model if sync_bn else replace_sync_bn(model)


def optim_cfg(name: str, max_iters: int, amp: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Optimizer wrapper and LR schedule of the method's official config, stretched to ``max_iters``."""
    official = official_config(name)
    wrapper: dict[str, Any] = official.optim_wrapper.to_dict()
    schedule: list[dict[str, Any]] = [dict(s) for s in official.to_dict()["param_scheduler"]]
    official_iters = int(official.train_cfg.max_iters)
    warmups = [s for s in schedule if s["type"] == "LinearLR"]
    warmup = min(int(warmups[0]["end"]), max_iters // 10) if warmups else 0
    if warmups and warmup < _MIN_WARMUP:
        # LinearLR steps only inside [begin, end) and reaches its end factor (1 - 1/W) in the last step:
        # a warm-up of a few iterations would leave the LR near start_factor, so skip it.
        schedule = [s for s in schedule if s["type"] != "LinearLR"]
        warmup = 0
    for step in schedule:
        if step["type"] == "LinearLR":
            step["end"] = warmup
        else:
            if step.get("end") == official_iters:
                step["end"] = max_iters
            if warmups:
                step["begin"] = warmup
    if amp:
        wrapper["type"] = "AmpOptimWrapper"
        wrapper["loss_scale"] = "dynamic"
    return wrapper, schedule
