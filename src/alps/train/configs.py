"""mmsegmentation configs for ALPS: the paper's eight methods, their schedules, and the datasets' pipelines.

``build_config`` returns an mmengine ``Config`` that ``mmengine.runner.Runner.from_cfg`` runs as is;
``write_config`` dumps it to a ``.py`` file that the plain mmseg tools run too
(``python tools/train.py config.py``, ``tools/dist_train.sh config.py 2``). The dumped file imports this
module through ``custom_imports``, which registers ``ALPSIoUMetric`` and, under ``mmcv-lite``, installs the
``mmcv.ops`` substitute (``alps.train.mmcv_compat``) before mmseg builds a model.

The eight methods (paper, "Implementation details") follow the official mmseg 1.2.2 configs named in each
``ModelSpec.reference``, with these changes (see docs/training.md):

* ``SyncBN`` -> ``BN`` in every head and CNN backbone, with ``sync_bn='torch'`` at the top level: mmengine's
  runner converts BN to SyncBN itself when it runs distributed (``launcher='pytorch'``), and a
  single-process run (CPU, one GPU), or a model built from the config outside the runner (surgery,
  inference), keeps plain BN instead of SyncBN layers that want a process group.
* ImageNet backbone weights (``pretrained``) are not set by default: they are downloads from
  download.openmmlab.com this project never makes. Pass a local file with ``pretrained=`` (the official
  name of each is in ``ModelSpec.imagenet``).
* ViT/Segmenter ``img_size`` and Segmenter's sliding-window test crop follow the dataset's crop size
  instead of ADE20K's 512.
* Warm-up of the AdamW methods: ``min(1500, max_iters // 10)`` iterations (1500 at 80k and above, as in
  mmseg), so that short demo schedules still warm up; none below 10 iterations (tests).

No model of the eight needs a compiled mmcv op: each builds and runs forward with ``mmcv-lite`` and the
compatibility module (pinned by tests/test_train_configs.py).

The medical branch (paper Table 6) uses mmseg's UNet (``unet-s5-d16``, FCN head, following
``unet/unet-s5-d16_fcn_4xb4-40k_hrf-256x256.py``: 40k iterations of SGD 0.01, sliding-window test with
a stride of 170/256 of the crop) in place of the paper's DoDNet, MED3D and SAM-Med2D, which mmseg does not
have. Its encoder-decoder is the ``backbone``; the FCN heads are the ``head`` sub-model. UNet needs inputs
divisible by 16 (four max-pools): crops must be multiples of 16, and test images are padded to one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alps.datasets import atlas, isaid, potsdam
from alps.train.mmcv_compat import ensure_mmcv_ops

# Before any mmseg import: under mmcv-lite, mmseg's package imports reach mmcv.ops (see mmcv_compat).
ensure_mmcv_ops()

from mmengine.config import Config  # noqa: E402
from mmseg.evaluation.metrics import IoUMetric  # noqa: E402
from mmseg.registry import METRICS  # noqa: E402

IGNORE_INDEX = 255
"""Label value that no loss or metric counts: unlabeled pseudo-label pixels, Potsdam's reduced boundary."""

SCHEDULES: dict[str, int] = {"2k": 2000, "40k": 40000, "80k": 80000, "160k": 160000, "320k": 320000}
"""Named schedules (iterations): the paper's 80k (CNNs), 160k (transformers), 320k (Table 4), mmseg's 40k
of its medical UNet configs, and a short ``2k`` for the demo."""

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]

_MIN_WARMUP = 10
"""Shortest linear warm-up (iterations) worth running; shorter schedules train without one."""

UNET_DIVISOR = 16
"""UNet-S5-D16 max-pools four times: input sides must be multiples of 16 (``UNet._check_input_divisible``)."""

_BN = {"type": "BN", "requires_grad": True}
_CE = {"type": "CrossEntropyLoss", "use_sigmoid": False, "loss_weight": 1.0}
_CE_AUX = {"type": "CrossEntropyLoss", "use_sigmoid": False, "loss_weight": 0.4}


@dataclass(frozen=True)
class ModelSpec:
    """One segmentation method.

    Attributes:
        name: the key used by ``build_config`` (``"upernet-r50"``...).
        title: the paper's name of the method.
        reference: the official mmseg 1.2.2 config the model follows.
        schedule: the paper's default schedule (a ``SCHEDULES`` key).
        optimizer: ``"sgd"``, ``"sgd-segmenter"``, ``"adamw-vit"``, ``"adamw-swin"`` or ``"adamw-segformer"``.
        imagenet: the official ImageNet initialisation (a download URL or an ``open-mmlab://`` name), or
            a note where mmseg has none.
        paper: whether it is one of the paper's eight methods (else a small demo/test variant, or the
            medical branch's stand-in).
    """

    name: str
    title: str
    reference: str
    schedule: str
    optimizer: str
    imagenet: str
    paper: bool = True


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "upernet-r50",
            "UperNet-R50",
            "upernet/upernet_r50_4xb4-80k_ade20k-512x512.py",
            "80k",
            "sgd",
            "open-mmlab://resnet50_v1c",
        ),
        ModelSpec(
            "pspnet-r50",
            "PSPNet-R50",
            "pspnet/pspnet_r50-d8_4xb4-80k_potsdam-512x512.py",
            "80k",
            "sgd",
            "open-mmlab://resnet50_v1c",
        ),
        ModelSpec(
            "fcn-hrnet-w48",
            "FCN-HRNet-W48",
            "hrnet/fcn_hr48_4xb4-80k_potsdam-512x512.py",
            "80k",
            "sgd",
            "open-mmlab://msra/hrnetv2_w48",
        ),
        ModelSpec(
            "deeplabv3plus-r50b",
            "DeepLabV3+-R50b",
            "deeplabv3plus/deeplabv3plus_r50b-d8_4xb2-80k_cityscapes-512x1024.py",
            "80k",
            "sgd",
            "torchvision://resnet50",
        ),
        ModelSpec(
            "vit-b-upernet",
            "ViT-B (UperNet)",
            "vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py",
            "160k",
            "adamw-vit",
            "pretrain/vit_base_patch16_224.pth (timm jx_vit_base_p16_224, converted)",
        ),
        ModelSpec(
            "swin-b-upernet",
            "Swin-B (UperNet)",
            "swin/swin-base-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py",
            "160k",
            "adamw-swin",
            "https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/"
            "swin_base_patch4_window7_224_20220317-e9b98025.pth",
        ),
        ModelSpec(
            "segmenter-vit-b",
            "Segmenter-ViT-B (mask)",
            "segmenter/segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py",
            "160k",
            "sgd-segmenter",
            "https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segmenter/"
            "vit_base_p16_384_20220308-96dfe169.pth",
        ),
        ModelSpec(
            "segformer-b5",
            "SegFormer-MiT-B5",
            "segformer/segformer_mit-b5_8xb2-160k_ade20k-512x512.py",
            "160k",
            "adamw-segformer",
            "https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/"
            "mit_b5_20220624-658746d9.pth",
        ),
        ModelSpec(
            "upernet-r18",
            "UperNet-R18",
            "upernet/upernet_r18_4xb4-80k_ade20k-512x512.py",
            "2k",
            "sgd",
            "open-mmlab://resnet18_v1c",
            paper=False,
        ),
        ModelSpec(
            "segformer-b0",
            "SegFormer-MiT-B0",
            "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py",
            "2k",
            "adamw-segformer",
            "https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/"
            "mit_b0_20220624-7e0fe6dd.pth",
            paper=False,
        ),
        ModelSpec(
            "unet-s5-d16",
            "UNet-S5-D16 (FCN)",
            "unet/unet-s5-d16_fcn_4xb4-40k_hrf-256x256.py",
            "40k",
            "sgd",
            "none: mmseg trains its UNet from scratch",
            paper=False,
        ),
    )
}
"""Every model ``build_config`` knows: the paper's eight, two small variants for the demo and tests, and
the medical branch's UNet (``alps.train.models.MEDICAL_MODELS``)."""

PAPER_MODELS: tuple[str, ...] = tuple(name for name, spec in MODELS.items() if spec.paper)
"""The paper's eight methods, in the order of its tables."""


# ---------------------------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset as the config builder needs it.

    Attributes:
        kind: ``"isaid"``, ``"potsdam"``, ``"pl"`` (pseudo-labels), ``"folder"`` (classes.json, e.g. the
            demo) or ``"medical"``.
        data_root: the folder holding ``img_dir/<split>`` and ``ann_dir/<split>``.
        classes: class names, indexed by label value after ``reduce_zero_label``.
        palette: one RGB colour per class.
        crop_size: training crop ``(h, w)``.
        scale: the ``RandomResize``/``Resize`` target scale ``(w, h)`` (mmseg's convention).
        dataset_type: the mmseg dataset class (``"BaseSegDataset"`` for data-built metainfo).
        reduce_zero_label: label 0 is "ignore" and every other label shifts down by one (Potsdam).
        img_suffix: image file suffix.
        seg_map_suffix: label file suffix.
        train_split: the ``img_dir``/``ann_dir`` sub-folder trained on.
        eval_split: the sub-folder evaluated on; None: no evaluation (a PL dataset without a val split).
        metrics: mmseg ``IoUMetric`` metrics (``"mIoU"``, ``"mDice"``).
    """

    kind: str
    data_root: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    crop_size: tuple[int, int]
    scale: tuple[int, int]
    dataset_type: str = "BaseSegDataset"
    reduce_zero_label: bool = False
    img_suffix: str = ".png"
    seg_map_suffix: str = ".png"
    train_split: str = "train"
    eval_split: str | None = "val"
    metrics: tuple[str, ...] = ("mIoU",)

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts."""
        return len(self.classes)


# One source of truth for class names and colours: the converters that write these datasets.
ISAID_CLASSES = isaid.CLASSES
"""mmseg's ``iSAIDDataset.METAINFO`` classes (16, label 0 = background)."""

POTSDAM_CLASSES = potsdam.CLASSES
"""mmseg's ``PotsdamDataset.METAINFO`` classes (6, after ``reduce_zero_label`` drops the boundary 0)."""

MEDICAL_CLASSES = atlas.CLASSES
"""The paper's medical task (ATLAS liver MRI, Table 6): Dice and IoU per class; label 0 is background."""

MEDICAL_DATASETS: frozenset[str] = frozenset({atlas.DATASET_NAME})
"""``dataset`` values of a ``dataset_card.json`` that ``detect_dataset`` reads as ``medical``."""

CARD_NAME = "dataset_card.json"
CLASSES_NAME = "classes.json"


def _palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """The project's fixed cluster palette (``alps.paint.make_palette``), so model outputs match ``vis/``."""
    from alps.paint import make_palette

    return tuple(tuple(int(v) for v in row) for row in make_palette(max(n, 1))[:n])  # type: ignore[misc]


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def _eval_split(data_root: Path, wanted: str | None, fallbacks: Sequence[str] = ("val",)) -> str | None:
    """``wanted``, else the first of ``fallbacks`` that has an ``ann_dir/<split>`` folder, else None."""
    if wanted is not None:
        return wanted
    for split in fallbacks:
        if (data_root / "ann_dir" / split).is_dir():
            return split
    return None


def dataset_spec(
    kind: str,
    data_root: str | os.PathLike[str],
    crop_size: int | Sequence[int] | None = None,
    scale: int | Sequence[int] | None = None,
    eval_split: str | None = None,
) -> DatasetSpec:
    """The standard setting of a dataset kind.

    * ``isaid``: mmseg's ``iSAIDDataset`` (16 classes, ``*_instance_color_RGB.png`` labels as written by
      mmseg's ``tools/dataset_converters/isaid.py``), 896 crops of images resized to 896.
    * ``potsdam``: mmseg's ``PotsdamDataset`` (6 classes, ``reduce_zero_label``), 512 crops.
    * ``pl``: a pseudo-label dataset (``alps.pipeline.assemble_pl_dataset``): K = ``num_classes`` of its
      ``dataset_card.json``, classes ``cluster_00``..., 255 ignored, 512 crops.
    * ``folder``: any mmseg-layout folder with a ``classes.json`` (``{"classes": [...], "palette": [...]}``),
      e.g. the demo (3 classes, 256 px tiles, 256 crops).
    * ``medical``: a ``folder`` whose default classes are background/liver/tumour, evaluated with IoU and
      Dice per class, on ``val`` or, where there is none, on ``test`` (the ATLAS converter,
      ``alps.datasets.atlas``, splits patients into train and test only, as the paper).

    Arguments:
        kind: one of the kinds above.
        data_root: the dataset folder.
        crop_size: training crop side (or ``(h, w)``); default per kind.
        scale: resize target (or ``(w, h)``); default: the crop size (iSAID 896, Potsdam 512, as mmseg).
        eval_split: split evaluated after training; default ``val`` where ``ann_dir/val`` exists (always
            for isaid/potsdam; for medical, else ``test`` where ``ann_dir/test`` exists), else none.

    Returns:
        The ``DatasetSpec``.

    Raises:
        ValueError: unknown kind, or a card/classes file without the needed keys.
        FileNotFoundError: the card or classes file is missing.
    """
    root = Path(data_root)
    if kind == "isaid":
        crop = _pair(crop_size or 896)
        return DatasetSpec(
            kind=kind,
            data_root=str(root),
            classes=ISAID_CLASSES,
            palette=isaid.PALETTE,
            crop_size=crop,
            scale=_pair(scale or crop[::-1]),
            dataset_type="iSAIDDataset",
            # The converter (datasets/isaid.py) writes ann_dir/<split>/<name>.png, index labels.
            seg_map_suffix=".png",
            eval_split=eval_split or "val",
        )
    if kind == "potsdam":
        crop = _pair(crop_size or 512)
        return DatasetSpec(
            kind=kind,
            data_root=str(root),
            classes=POTSDAM_CLASSES,
            palette=((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)),
            crop_size=crop,
            scale=_pair(scale or crop[::-1]),
            dataset_type="PotsdamDataset",
            reduce_zero_label=True,
            eval_split=eval_split or "val",
        )
    if kind == "pl":
        card_path = root / CARD_NAME
        card = json.loads(card_path.read_text())
        if "num_classes" not in card:
            raise ValueError(f"{card_path} has no num_classes; is {root} a PL dataset?")
        k = int(card["num_classes"])
        if k < 1 or k > IGNORE_INDEX:
            raise ValueError(f"{card_path}: num_classes {k} must be in 1..{IGNORE_INDEX}")
        crop = _pair(crop_size or 512)
        return DatasetSpec(
            kind=kind,
            data_root=str(root),
            classes=tuple(f"cluster_{i:02d}" for i in range(k)),
            palette=_palette(k),
            crop_size=crop,
            scale=_pair(scale or crop[::-1]),
            train_split=str(card.get("split", "train")),
            eval_split=_eval_split(root, eval_split),
        )
    if kind in ("folder", "medical"):
        classes_path = root / CLASSES_NAME
        if classes_path.is_file():
            info = json.loads(classes_path.read_text())
            if "classes" not in info:
                raise ValueError(f"{classes_path} has no 'classes' list")
            classes = tuple(str(c) for c in info["classes"])
            palette = (
                tuple(tuple(int(v) for v in p) for p in info["palette"])
                if "palette" in info
                else _palette(len(classes))
            )
        elif kind == "medical":
            classes, palette = MEDICAL_CLASSES, atlas.PALETTE
        else:
            raise FileNotFoundError(f"{classes_path} is missing; it names the classes of {root}")
        crop = _pair(crop_size or 256)
        return DatasetSpec(
            kind=kind,
            data_root=str(root),
            classes=classes,  # type: ignore[arg-type]
            palette=palette,  # type: ignore[arg-type]
            crop_size=crop,
            scale=_pair(scale or crop[::-1]),
            eval_split=_eval_split(root, eval_split, ("val", "test") if kind == "medical" else ("val",)),
            metrics=("mIoU", "mDice") if kind == "medical" else ("mIoU",),
        )
    raise ValueError(f"unknown dataset kind {kind!r}; choose isaid, potsdam, pl, folder or medical")


def detect_dataset(
    data_root: str | os.PathLike[str],
    crop_size: int | Sequence[int] | None = None,
    scale: int | Sequence[int] | None = None,
    eval_split: str | None = None,
) -> DatasetSpec:
    """``dataset_spec`` for a folder whose kind is read from its files.

    A ``dataset_card.json`` written by a medical converter (its ``dataset`` is in ``MEDICAL_DATASETS``:
    ``prepare_dataset("atlas", ...)``) makes it ``medical``; else a ``classes.json`` makes it a ``folder``
    (the demo, or any user dataset); else a ``dataset_card.json`` with ``num_classes`` makes it a ``pl``
    dataset. iSAID and Potsdam are not guessed (their folders carry neither file): name them with
    ``dataset_spec``.

    Returns:
        The ``DatasetSpec``.

    Raises:
        ValueError: the folder has neither file.
    """
    root = Path(data_root)
    card_path = root / CARD_NAME
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    # The ATLAS converter also writes a classes.json; its card tells it apart from a plain folder dataset.
    if isinstance(card, dict) and card.get("dataset") in MEDICAL_DATASETS:
        return dataset_spec("medical", root, crop_size, scale, eval_split)
    if (root / CLASSES_NAME).is_file():
        return dataset_spec("folder", root, crop_size, scale, eval_split)
    if isinstance(card, dict) and "num_classes" in card:
        return dataset_spec("pl", root, crop_size, scale, eval_split)
    raise ValueError(
        f"{root}: neither {CLASSES_NAME} nor a {CARD_NAME} with num_classes; pass the kind explicitly "
        "(isaid, potsdam, pl, folder, medical)"
    )


def _pipelines(ds: DatasetSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """mmseg's standard training and test pipelines (``_base_/datasets/isaid.py``, ``potsdam.py``)."""
    load_ann = {"type": "LoadAnnotations", "reduce_zero_label": ds.reduce_zero_label}
    train = [
        {"type": "LoadImageFromFile"},
        load_ann,
        {"type": "RandomResize", "scale": ds.scale, "ratio_range": (0.5, 2.0), "keep_ratio": True},
        {"type": "RandomCrop", "crop_size": ds.crop_size, "cat_max_ratio": 0.75},
        {"type": "RandomFlip", "prob": 0.5},
        {"type": "PhotoMetricDistortion"},
        {"type": "PackSegInputs"},
    ]
    test = [
        {"type": "LoadImageFromFile"},
        {"type": "Resize", "scale": ds.scale, "keep_ratio": True},
        # Annotations load after Resize: the metric compares with the original-size label.
        dict(load_ann),
        {"type": "PackSegInputs"},
    ]
    return train, test


def _dataset_cfg(ds: DatasetSpec, split: str, pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "type": ds.dataset_type,
        "data_root": ds.data_root,
        "data_prefix": {"img_path": f"img_dir/{split}", "seg_map_path": f"ann_dir/{split}"},
        "pipeline": pipeline,
    }
    if ds.dataset_type == "BaseSegDataset":
        # Metainfo built from the data (card or classes.json): no dataset class to register.
        cfg.update(
            img_suffix=ds.img_suffix,
            seg_map_suffix=ds.seg_map_suffix,
            reduce_zero_label=ds.reduce_zero_label,
            ignore_index=IGNORE_INDEX,
            metainfo={"classes": list(ds.classes), "palette": [list(p) for p in ds.palette]},
        )
    else:
        # mmseg's dataset classes have their own default suffix (iSAIDDataset: _instance_color_RGB.png),
        # which is not what our converters write.
        cfg["seg_map_suffix"] = ds.seg_map_suffix
    return cfg


# ------------------------------------------------------------------------------------------------ models


def _resnet(depth: int, kind: str = "ResNetV1c", dilated: bool = False) -> dict[str, Any]:
    return {
        "type": kind,
        "depth": depth,
        "num_stages": 4,
        "out_indices": (0, 1, 2, 3),
        # d8 models (PSPNet, DeepLabV3+) dilate the last two stages instead of striding them.
        "dilations": (1, 1, 2, 4) if dilated else (1, 1, 1, 1),
        "strides": (1, 2, 1, 1) if dilated else (1, 2, 2, 2),
        "norm_cfg": _BN,
        "norm_eval": False,
        "style": "pytorch",
        "contract_dilation": True,
    }


def _uper_head(in_channels: list[int], num_classes: int, channels: int = 512) -> dict[str, Any]:
    return {
        "type": "UPerHead",
        "in_channels": in_channels,
        "in_index": [0, 1, 2, 3],
        "pool_scales": (1, 2, 3, 6),
        "channels": channels,
        "dropout_ratio": 0.1,
        "num_classes": num_classes,
        "norm_cfg": _BN,
        "align_corners": False,
        "loss_decode": _CE,
    }


def _aux_head(in_channels: int, in_index: int, num_classes: int) -> dict[str, Any]:
    return {
        "type": "FCNHead",
        "in_channels": in_channels,
        "in_index": in_index,
        "channels": 256,
        "num_convs": 1,
        "concat_input": False,
        "dropout_ratio": 0.1,
        "num_classes": num_classes,
        "norm_cfg": _BN,
        "align_corners": False,
        "loss_decode": _CE_AUX,
    }


def _hrnet_w48() -> dict[str, Any]:
    def stage(modules: int, branches: int, block: str, blocks: int, channels: tuple[int, ...]) -> dict:
        return {
            "num_modules": modules,
            "num_branches": branches,
            "block": block,
            "num_blocks": (blocks,) * branches,
            "num_channels": channels,
        }

    return {
        "type": "HRNet",
        "norm_cfg": _BN,
        "norm_eval": False,
        "extra": {
            "stage1": stage(1, 1, "BOTTLENECK", 4, (64,)),
            "stage2": stage(1, 2, "BASIC", 4, (48, 96)),
            "stage3": stage(4, 3, "BASIC", 4, (48, 96, 192)),
            "stage4": stage(3, 4, "BASIC", 4, (48, 96, 192, 384)),
        },
    }


def _vit_b(img_size: tuple[int, int], **extra: Any) -> dict[str, Any]:
    cfg = {
        "type": "VisionTransformer",
        "img_size": img_size,
        "patch_size": 16,
        "in_channels": 3,
        "embed_dims": 768,
        "num_layers": 12,
        "num_heads": 12,
        "mlp_ratio": 4,
        "qkv_bias": True,
        "drop_rate": 0.0,
        "attn_drop_rate": 0.0,
        "with_cls_token": True,
        "interpolate_mode": "bicubic",
    }
    cfg.update(extra)
    return cfg


def _mit(embed_dims: int, num_layers: list[int]) -> dict[str, Any]:
    return {
        "type": "MixVisionTransformer",
        "in_channels": 3,
        "embed_dims": embed_dims,
        "num_stages": 4,
        "num_layers": num_layers,
        "num_heads": [1, 2, 5, 8],
        "patch_sizes": [7, 3, 3, 3],
        "sr_ratios": [8, 4, 2, 1],
        "out_indices": (0, 1, 2, 3),
        "mlp_ratio": 4,
        "qkv_bias": True,
        "drop_rate": 0.0,
        "attn_drop_rate": 0.0,
        "drop_path_rate": 0.1,
    }


def _segformer_head(in_channels: list[int], channels: int, num_classes: int) -> dict[str, Any]:
    return {
        "type": "SegformerHead",
        "in_channels": in_channels,
        "in_index": [0, 1, 2, 3],
        "channels": channels,
        "dropout_ratio": 0.1,
        "num_classes": num_classes,
        "norm_cfg": _BN,
        "align_corners": False,
        "loss_decode": _CE,
    }


def _unet_s5_d16() -> dict[str, Any]:
    """The backbone of mmseg's ``_base_/models/fcn_unet_s5-d16.py`` (5 stages, 64 channels), BN for SyncBN."""
    return {
        "type": "UNet",
        "in_channels": 3,
        "base_channels": 64,
        "num_stages": 5,
        "strides": (1, 1, 1, 1, 1),
        "enc_num_convs": (2, 2, 2, 2, 2),
        "dec_num_convs": (2, 2, 2, 2),
        "downsamples": (True, True, True, True),
        "enc_dilations": (1, 1, 1, 1, 1),
        "dec_dilations": (1, 1, 1, 1),
        "with_cp": False,
        "conv_cfg": None,
        "norm_cfg": _BN,
        "act_cfg": {"type": "ReLU"},
        "upsample_cfg": {"type": "InterpConv"},
        "norm_eval": False,
    }


def _unet_fcn_head(in_channels: int, in_index: int, num_classes: int, loss: dict[str, Any]) -> dict[str, Any]:
    """The FCN head (and auxiliary head) of ``fcn_unet_s5-d16.py``: one 3x3 conv of 64 channels."""
    return {
        "type": "FCNHead",
        "in_channels": in_channels,
        "in_index": in_index,
        "channels": 64,
        "num_convs": 1,
        "concat_input": False,
        "dropout_ratio": 0.1,
        "num_classes": num_classes,
        "norm_cfg": _BN,
        "align_corners": False,
        "loss_decode": loss,
    }


def model_cfg(name: str, num_classes: int, crop_size: tuple[int, int]) -> dict[str, Any]:
    """The ``model`` entry of a config: an ``EncoderDecoder`` with its data preprocessor.

    Arguments:
        name: a ``MODELS`` key.
        num_classes: classes of the decode (and auxiliary) head.
        crop_size: training crop ``(h, w)``: the preprocessor pads batches to it; ViT position embeddings
            and Segmenter's and UNet's sliding test windows follow it.

    Returns:
        The model dict (no ``pretrained``/``init_cfg``: see ``build_config(pretrained=...)``).

    Raises:
        KeyError: unknown model name.
        ValueError: a UNet crop that is not a multiple of 16.
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    k = num_classes
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    neck: dict[str, Any] | None = None
    aux: dict[str, Any] | None = None
    test_cfg: dict[str, Any] = {"mode": "whole"}
    if name in ("upernet-r50", "upernet-r18"):
        depth = 50 if name == "upernet-r50" else 18
        widths = [256, 512, 1024, 2048] if depth == 50 else [64, 128, 256, 512]
        backbone = _resnet(depth)
        decode = _uper_head(widths, k)
        aux = _aux_head(widths[2], 2, k)
    elif name == "pspnet-r50":
        backbone = _resnet(50, dilated=True)
        decode = {
            "type": "PSPHead",
            "in_channels": 2048,
            "in_index": 3,
            "channels": 512,
            "pool_scales": (1, 2, 3, 6),
            "dropout_ratio": 0.1,
            "num_classes": k,
            "norm_cfg": _BN,
            "align_corners": False,
            "loss_decode": _CE,
        }
        aux = _aux_head(1024, 2, k)
    elif name == "fcn-hrnet-w48":
        backbone = _hrnet_w48()
        decode = {
            "type": "FCNHead",
            "in_channels": [48, 96, 192, 384],
            "in_index": (0, 1, 2, 3),
            "channels": 48 + 96 + 192 + 384,
            "input_transform": "resize_concat",
            "kernel_size": 1,
            "num_convs": 1,
            "concat_input": False,
            "dropout_ratio": -1,
            "num_classes": k,
            "norm_cfg": _BN,
            "align_corners": False,
            "loss_decode": _CE,
        }
    elif name == "deeplabv3plus-r50b":
        # r50b: torchvision-style ResNet (stride in the 3x3 conv, 7x7 stem) instead of ResNetV1c.
        backbone = _resnet(50, kind="ResNet", dilated=True)
        decode = {
            "type": "DepthwiseSeparableASPPHead",
            "in_channels": 2048,
            "in_index": 3,
            "channels": 512,
            "dilations": (1, 12, 24, 36),
            "c1_in_channels": 256,
            "c1_channels": 48,
            "dropout_ratio": 0.1,
            "num_classes": k,
            "norm_cfg": _BN,
            "align_corners": False,
            "loss_decode": _CE,
        }
        aux = _aux_head(1024, 2, k)
    elif name == "vit-b-upernet":
        backbone = _vit_b(
            crop_size,
            out_indices=(2, 5, 8, 11),
            drop_path_rate=0.0,
            norm_cfg={"type": "LN", "eps": 1e-6},
            act_cfg={"type": "GELU"},
            norm_eval=False,
        )
        neck = {
            "type": "MultiLevelNeck",
            "in_channels": [768, 768, 768, 768],
            "out_channels": 768,
            "scales": [4, 2, 1, 0.5],
        }
        decode = _uper_head([768, 768, 768, 768], k)
        aux = _aux_head(768, 3, k)
    elif name == "swin-b-upernet":
        backbone = {
            "type": "SwinTransformer",
            "pretrain_img_size": 224,
            "embed_dims": 128,
            "patch_size": 4,
            "window_size": 7,
            "mlp_ratio": 4,
            "depths": [2, 2, 18, 2],
            "num_heads": [4, 8, 16, 32],
            "strides": (4, 2, 2, 2),
            "out_indices": (0, 1, 2, 3),
            "qkv_bias": True,
            "qk_scale": None,
            "patch_norm": True,
            "drop_rate": 0.0,
            "attn_drop_rate": 0.0,
            "drop_path_rate": 0.3,
            "use_abs_pos_embed": False,
            "act_cfg": {"type": "GELU"},
            "norm_cfg": {"type": "LN", "requires_grad": True},
        }
        decode = _uper_head([128, 256, 512, 1024], k)
        aux = _aux_head(512, 2, k)
    elif name == "segmenter-vit-b":
        # Segmenter normalises to [-1, 1] (its ViT was trained so), not with ImageNet statistics.
        mean, std = [127.5, 127.5, 127.5], [127.5, 127.5, 127.5]
        backbone = _vit_b(
            crop_size,
            drop_path_rate=0.1,
            final_norm=True,
            norm_cfg={"type": "LN", "eps": 1e-6, "requires_grad": True},
        )
        decode = {
            "type": "SegmenterMaskTransformerHead",
            "in_channels": 768,
            "channels": 768,
            "num_classes": k,
            "num_layers": 2,
            "num_heads": 12,
            "embed_dims": 768,
            "dropout_ratio": 0.0,
            "loss_decode": _CE,
        }
        # The official 512 window with a 480 stride, scaled to the crop.
        stride = tuple(max(1, round(s * 480 / 512)) for s in crop_size)
        test_cfg = {"mode": "slide", "crop_size": crop_size, "stride": stride}
    elif name in ("segformer-b5", "segformer-b0"):
        if name == "segformer-b5":
            backbone, decode = _mit(64, [3, 6, 40, 3]), _segformer_head([64, 128, 320, 512], 768, k)
        else:
            backbone, decode = _mit(32, [2, 2, 2, 2]), _segformer_head([32, 64, 160, 256], 256, k)
    elif name == "unet-s5-d16":
        if any(side % UNET_DIVISOR for side in crop_size):
            raise ValueError(
                f"unet-s5-d16 needs a crop whose sides are multiples of {UNET_DIVISOR} (four 2x poolings), "
                f"got {tuple(crop_size)}"
            )
        backbone = _unet_s5_d16()
        # The decoder's last output (64 channels, full resolution) feeds the head, the one before it
        # (128 channels, 1/2) the auxiliary head, as in fcn_unet_s5-d16.py.
        decode = _unet_fcn_head(64, 4, k, _CE)
        aux = _unet_fcn_head(128, 3, k, _CE_AUX)
        # mmseg's UNet configs slide a crop-sized window with a stride of 170/256 of it (256 -> 170,
        # 128 -> 85, 64 -> 42, as their HRF, STARE/CHASE and DRIVE configs).
        stride = tuple(max(1, side * 170 // 256) for side in crop_size)
        test_cfg = {"mode": "slide", "crop_size": crop_size, "stride": stride}
    else:  # pragma: no cover - MODELS and this function list the same names
        raise KeyError(name)
    model: dict[str, Any] = {
        "type": "EncoderDecoder",
        "data_preprocessor": {
            "type": "SegDataPreProcessor",
            "mean": mean,
            "std": std,
            "bgr_to_rgb": True,
            "pad_val": 0,
            "seg_pad_val": IGNORE_INDEX,
            "size": crop_size,
        },
        "pretrained": None,
        "backbone": backbone,
        "decode_head": decode,
        "train_cfg": {},
        "test_cfg": test_cfg,
    }
    if name == "unet-s5-d16":
        # A test image smaller than the window is decoded whole (slide_inference does not pad it), and
        # UNet refuses sides that are not multiples of 16: pad test batches to one. The prediction is
        # cropped back before the metric (``padding_size``), so the padding is never scored.
        model["data_preprocessor"]["test_cfg"] = {"size_divisor": UNET_DIVISOR}
    if neck is not None:
        model["neck"] = neck
    if aux is not None:
        model["auxiliary_head"] = aux
    return model


def _optim(spec: ModelSpec, max_iters: int, amp: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Optimizer wrapper and LR schedule of the method's official config, stretched to ``max_iters``."""
    wrapper_type = "AmpOptimWrapper" if amp else "OptimWrapper"
    if spec.optimizer in ("sgd", "sgd-segmenter"):
        lr, wd = (0.001, 0.0) if spec.optimizer == "sgd-segmenter" else (0.01, 0.0005)
        wrapper = {
            "type": wrapper_type,
            "optimizer": {"type": "SGD", "lr": lr, "momentum": 0.9, "weight_decay": wd},
            "clip_grad": None,
        }
        schedule = [
            {"type": "PolyLR", "eta_min": 1e-4, "power": 0.9, "begin": 0, "end": max_iters, "by_epoch": False}
        ]
    else:
        custom_keys = {
            "adamw-vit": {"pos_embed": {"decay_mult": 0.0}, "cls_token": {"decay_mult": 0.0}},
            "adamw-swin": {
                "absolute_pos_embed": {"decay_mult": 0.0},
                "relative_position_bias_table": {"decay_mult": 0.0},
            },
            "adamw-segformer": {"pos_block": {"decay_mult": 0.0}, "head": {"lr_mult": 10.0}},
        }[spec.optimizer]
        custom_keys = {**custom_keys, "norm": {"decay_mult": 0.0}}
        wrapper = {
            "type": wrapper_type,
            "optimizer": {"type": "AdamW", "lr": 6e-5, "betas": (0.9, 0.999), "weight_decay": 0.01},
            "paramwise_cfg": {"custom_keys": custom_keys},
        }
        warmup = min(1500, max_iters // 10)
        schedule = [
            {
                "type": "PolyLR",
                "eta_min": 0.0,
                "power": 1.0,
                "begin": warmup,
                "end": max_iters,
                "by_epoch": False,
            }
        ]
        if warmup >= _MIN_WARMUP:
            schedule.insert(
                0, {"type": "LinearLR", "start_factor": 1e-6, "by_epoch": False, "begin": 0, "end": warmup}
            )
        else:
            # LinearLR steps only inside [begin, end) and reaches its end factor (1 - 1/W) in the last
            # step: a warm-up of a few iterations would leave the LR near start_factor, so skip it.
            schedule[0]["begin"] = 0
    if amp:
        wrapper["loss_scale"] = "dynamic"
    return wrapper, schedule


# ------------------------------------------------------------------------------------------------ config


def build_config(
    model: str,
    dataset: DatasetSpec,
    *,
    schedule: str | None = None,
    max_iters: int | None = None,
    batch_size: int = 2,
    num_workers: int = 2,
    amp: bool = False,
    val_interval: int | None = None,
    checkpoint_interval: int | None = None,
    max_keep_ckpts: int = 3,
    log_interval: int = 50,
    seed: int = 0,
    deterministic: bool | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    load_from: str | os.PathLike[str] | None = None,
    pretrained: str | None = None,
    device: str = "auto",
    launcher: str = "none",
) -> Config:
    """Build the full mmengine config of one training run.

    Arguments:
        model: a ``MODELS`` key (``PAPER_MODELS`` are the paper's eight).
        dataset: the dataset (``dataset_spec`` / ``detect_dataset``).
        schedule: a ``SCHEDULES`` key; default: the method's (80k CNNs, 160k transformers, 2k demo models).
        max_iters: iterations, overriding ``schedule``.
        batch_size: images per GPU (per process); the paper used 2 GPUs.
        num_workers: data loader workers per process (0 loads in the main process).
        amp: mixed precision through mmengine's ``AmpOptimWrapper`` (CUDA only).
        val_interval: validate every this many iterations; default ``max_iters // 10`` (8000 at 80k, as
            mmseg). Ignored without an eval split.
        checkpoint_interval: save every this many iterations; default ``val_interval``. The last iteration
            is always saved.
        max_keep_ckpts: periodic checkpoints kept (older ones are deleted; -1 keeps all).
        log_interval: log every this many iterations.
        seed: the mmengine randomness seed.
        deterministic: ``torch.use_deterministic_algorithms``; default: on for CPU, off for CUDA (several
            CUDA kernels used by these models have no deterministic version).
        work_dir: where checkpoints and logs go.
        load_from: weights loaded (not resumed) before training, e.g. a surgery file
            (``alps.train.surgery.write_init_checkpoint``).
        pretrained: a local ImageNet backbone checkpoint (``ModelSpec.imagenet`` names the official one);
            loaded by mmengine's ``Pretrained`` initialiser with ``torch.load``'s default ``weights_only``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``; only decides AMP/determinism here: mmengine itself
            trains on CUDA whenever it is visible (hide it with ``CUDA_VISIBLE_DEVICES=`` for CPU runs).
        launcher: ``"none"`` (one process) or ``"pytorch"`` (``torchrun --nproc_per_node N``: distributed,
            BN becomes SyncBN through ``sync_bn='torch'``), or ``"slurm"``.

    Returns:
        The ``Config``.

    Raises:
        KeyError: unknown model or schedule.
        ValueError: inconsistent options (AMP on CPU, no iterations, ...).
    """
    spec = MODELS.get(model)
    if spec is None:
        raise KeyError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    schedule = schedule or spec.schedule
    if schedule not in SCHEDULES:
        raise KeyError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    iters = int(max_iters) if max_iters is not None else SCHEDULES[schedule]
    if iters < 1:
        raise ValueError(f"max_iters must be >= 1, got {iters}")
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if launcher not in ("none", "pytorch", "slurm", "mpi"):
        raise ValueError(f"launcher must be none, pytorch, slurm or mpi, got {launcher!r}")
    on_cuda = _resolve_device(device) == "cuda"
    if amp and not on_cuda:
        raise ValueError("amp needs CUDA (mmengine's AmpOptimWrapper); it is not available on this device")
    if deterministic is None:
        deterministic = not on_cuda
    val_every = int(val_interval) if val_interval else max(1, iters // 10)
    ckpt_every = int(checkpoint_interval) if checkpoint_interval else val_every

    train_pipeline, test_pipeline = _pipelines(dataset)
    model_dict = model_cfg(model, dataset.num_classes, dataset.crop_size)
    if pretrained is not None:
        model_dict["backbone"]["init_cfg"] = {"type": "Pretrained", "checkpoint": str(pretrained)}
    optim_wrapper, param_scheduler = _optim(spec, iters, amp)
    persistent = num_workers > 0

    cfg: dict[str, Any] = {
        "default_scope": "mmseg",
        # Registers ALPSIoUMetric and, under mmcv-lite, the mmcv.ops substitute, for plain mmseg tools too.
        "custom_imports": {"imports": ["alps.train.configs"], "allow_failed_imports": False},
        "alps": {
            "model": model,
            "dataset_kind": dataset.kind,
            "classes": list(dataset.classes),
            "schedule": schedule if max_iters is None else None,
        },
        "crop_size": dataset.crop_size,
        "model": model_dict,
        "train_dataloader": {
            "batch_size": batch_size,
            "num_workers": num_workers,
            "persistent_workers": persistent,
            "sampler": {"type": "InfiniteSampler", "shuffle": True},
            "dataset": _dataset_cfg(dataset, dataset.train_split, train_pipeline),
        },
        "optim_wrapper": optim_wrapper,
        "param_scheduler": param_scheduler,
        "train_cfg": {"type": "IterBasedTrainLoop", "max_iters": iters, "val_interval": val_every},
        "default_hooks": {
            "timer": {"type": "IterTimerHook"},
            "logger": {"type": "LoggerHook", "interval": log_interval, "log_metric_by_epoch": False},
            "param_scheduler": {"type": "ParamSchedulerHook"},
            "checkpoint": {
                "type": "CheckpointHook",
                "by_epoch": False,
                "interval": ckpt_every,
                "max_keep_ckpts": max_keep_ckpts,
                "save_last": True,
            },
            "sampler_seed": {"type": "DistSamplerSeedHook"},
            "visualization": {"type": "SegVisualizationHook"},
        },
        "env_cfg": {
            "cudnn_benchmark": on_cuda and not deterministic,
            "mp_cfg": {"mp_start_method": "fork", "opencv_num_threads": 0},
            "dist_cfg": {"backend": "nccl" if on_cuda else "gloo"},
        },
        "sync_bn": "torch",
        "randomness": {"seed": seed, "deterministic": bool(deterministic)},
        "launcher": launcher,
        "vis_backends": [{"type": "LocalVisBackend"}],
        "visualizer": {
            "type": "SegLocalVisualizer",
            "vis_backends": [{"type": "LocalVisBackend"}],
            "name": "visualizer",
        },
        "log_processor": {"by_epoch": False},
        "log_level": "INFO",
        "load_from": str(load_from) if load_from is not None else None,
        "resume": False,
        "tta_model": {"type": "SegTTAModel"},
    }
    if work_dir is not None:
        cfg["work_dir"] = str(work_dir)
    if dataset.eval_split is not None:
        eval_loader = {
            "batch_size": 1,
            "num_workers": num_workers,
            "persistent_workers": persistent,
            "sampler": {"type": "DefaultSampler", "shuffle": False},
            "dataset": _dataset_cfg(dataset, dataset.eval_split, test_pipeline),
        }
        evaluator = {"type": "ALPSIoUMetric", "iou_metrics": list(dataset.metrics)}
        cfg.update(
            val_dataloader=eval_loader,
            test_dataloader=eval_loader,
            val_evaluator=evaluator,
            test_evaluator=evaluator,
            val_cfg={"type": "ValLoop"},
            test_cfg={"type": "TestLoop"},
        )
    else:
        # A PL dataset with only a train split: train without validation.
        cfg.update(val_dataloader=None, val_evaluator=None, val_cfg=None)
        cfg["train_cfg"]["val_interval"] = iters + 1
    return Config(cfg)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device")
    return device


def config_text(cfg: Config) -> str:
    """The config as the Python text ``write_config`` dumps (mmengine's ``pretty_text``)."""
    return cfg.pretty_text


def config_hash(cfg: Config) -> str:
    """``sha256`` of the dumped config text: the identity of a run's settings in ``metrics.json``."""
    return hashlib.sha256(config_text(cfg).encode("utf-8")).hexdigest()


def write_config(cfg: Config, path: str | os.PathLike[str]) -> str:
    """Dump ``cfg`` to a ``.py`` file that plain mmseg tools run (``tools/train.py PATH``).

    Written to a temporary file and renamed, so a killed run never leaves half a config.

    Returns:
        The ``config_hash`` of the written text.
    """
    from alps.io.atomic import atomic_write_text

    text = config_text(cfg)
    atomic_write_text(Path(path), text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_paper_configs(
    out_dir: str | os.PathLike[str],
    datasets: Sequence[DatasetSpec],
    models: Sequence[str] = PAPER_MODELS,
    **options: Any,
) -> list[Path]:
    """Write one config per (model, dataset): ``<model>_<kind>.py`` (e.g. ``swin-b-upernet_isaid.py``).

    Arguments:
        out_dir: the folder to write into (created).
        datasets: the datasets (``dataset_spec("isaid", "data/iSAID")``...).
        models: the model keys.
        **options: passed to ``build_config`` (``work_dir`` defaults to ``work_dirs/<model>_<kind>``).

    Returns:
        The written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        for name in models:
            stem = f"{name}_{ds.kind}"
            opts = {"work_dir": f"work_dirs/{stem}", **options}
            path = out / f"{stem}.py"
            write_config(build_config(name, ds, **opts), path)
            paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------ metric


@METRICS.register_module(force=True)
class ALPSIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` that also returns the per-class values it otherwise only logs.

    Keys: ``aAcc``, ``mIoU``, ``mAcc`` (and ``mDice`` when asked) as mmseg computes them (percent, two
    decimals), plus ``IoU.<class>``, ``Acc.<class>`` (and ``Dice.<class>``) per class. A class absent from
    both prediction and label has NaN IoU (mmseg's rule); it is reported as ``None`` by ``metrics.json``.
    """

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Summary and per-class metrics from the per-image areas.

        Arguments:
            results: per image, mmseg's (intersect, union, pred, label) area tuples.

        Returns:
            Metric name -> value in percent.
        """
        summary = super().compute_metrics(results)
        if self.format_only:
            return summary
        areas = tuple(zip(*results, strict=True))
        per_class = self.total_area_to_metrics(
            sum(areas[0]),
            sum(areas[1]),
            sum(areas[2]),
            sum(areas[3]),
            self.metrics,
            self.nan_to_num,
            self.beta,
        )
        out: OrderedDict[str, float] = OrderedDict(summary)
        classes = self.dataset_meta["classes"]
        for metric, values in per_class.items():
            if metric == "aAcc":
                continue
            for name, value in zip(classes, np.asarray(values, dtype=np.float64), strict=True):
                out[f"{metric}.{name}"] = float(np.round(value * 100, 2))
        return dict(out)
