"""The ``sam`` mask backend: Segment Anything's automatic mask generator (AMG), keeping the image embedding.

AMG prompts SAM with a regular grid of points and keeps the confident, stable, non-duplicate masks. The
image encoder runs once per crop that AMG processes (once per image with the default ``crop_n_layers=0``)
and the full-image embedding is handed on in ``MaskSet.embedding``, so the feature stage never runs the
encoder again. (The official ALPS script re-encodes every image for its features, and feeds the encoder
BGR pixels that second time; this backend keeps the RGB embedding the masks were predicted from.)

Aligning the embedding with the image: SAM resizes the longest image side to 1024 pixels and pads the
bottom and right edges to a 1024x1024 square, so only the top-left cells of the 64x64 embedding grid cover
the image; ``embedding_valid_shape`` and ``embedding_valid_grid`` give their extent.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray
from segment_anything import SamAutomaticMaskGenerator, SamPredictor
from segment_anything.build_sam import _build_sam
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from alps.io.images import check_rgb_image
from alps.masks.base import MaskSet
from alps.masks.fast_amg import ExactFastAMG

SAM_INPUT_SIZE = 1024
"""Side of the square SAM's image encoder sees: the longest image side is resized to it, the rest padded."""
SAM_PATCH_SIZE = 16
"""Pixels per embedding cell along each side (1024 / 16 = 64 cells)."""
SAM_EMBEDDING_SHAPE = (256, SAM_INPUT_SIZE // SAM_PATCH_SIZE, SAM_INPUT_SIZE // SAM_PATCH_SIZE)
"""Shape of one image embedding: (channels, rows, columns)."""

CHECKPOINT_URL = "https://github.com/facebookresearch/segment-anything#model-checkpoints"


class _VitArchitecture(NamedTuple):
    """The image-encoder hyper-parameters that distinguish SAM's model types."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]


# vit_h/l/b copy segment_anything/build_sam.py. vit_tiny exists only so tests can run the real load and AMG
# code paths on CPU in seconds: it has no released weights (tests/tiny_sam.py writes random ones). Image size
# and patch size are those of the real models, so its embedding is (256, 64, 64) too.
SAM_ARCHITECTURES: dict[str, _VitArchitecture] = {
    "vit_h": _VitArchitecture(1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": _VitArchitecture(1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": _VitArchitecture(768, 12, 12, (2, 5, 8, 11)),
    "vit_tiny": _VitArchitecture(64, 2, 2, (1,)),
}


def build_sam(model_type: str) -> Sam:
    """Build an untrained SAM of the given architecture with segment_anything's own builder.

    Arguments:
        model_type: one of ``SAM_ARCHITECTURES`` (``vit_h``, ``vit_l``, ``vit_b``, or the test-only
            ``vit_tiny``).

    Returns:
        The model in eval mode, on the CPU, with random weights.

    Raises:
        ValueError: unknown ``model_type``.
    """
    if model_type not in SAM_ARCHITECTURES:
        raise ValueError(
            f"unknown SAM model_type {model_type!r}; valid model types: {', '.join(SAM_ARCHITECTURES)}"
        )
    arch = SAM_ARCHITECTURES[model_type]
    return _build_sam(
        encoder_embed_dim=arch.embed_dim,
        encoder_depth=arch.depth,
        encoder_num_heads=arch.num_heads,
        encoder_global_attn_indexes=list(arch.global_attn_indexes),
        checkpoint=None,
    )


def load_sam(checkpoint: str | os.PathLike[str], model_type: str, device: str = "cpu") -> Sam:
    """Build SAM of ``model_type`` and load an official (plain state dict) checkpoint into it.

    Arguments:
        checkpoint: path of the ``.pth`` weights, e.g. ``sam_vit_h_4b8939.pth``.
        model_type: ``vit_h``, ``vit_l`` or ``vit_b`` (``vit_tiny`` for tests only).
        device: where the model runs, ``cpu`` or ``cuda`` (``cuda:N``).

    Returns:
        The loaded model in eval mode on ``device``.

    Raises:
        FileNotFoundError: the checkpoint file does not exist.
        ValueError: unknown ``model_type``, a file that is not a plain state dict, or weights whose keys or
            shapes do not fit ``model_type``.
        RuntimeError: ``device`` is CUDA but no CUDA device is available.
    """
    path = Path(checkpoint)
    if model_type not in SAM_ARCHITECTURES:
        raise ValueError(
            f"unknown SAM model_type {model_type!r}; valid model types: {', '.join(SAM_ARCHITECTURES)}"
        )
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise FileNotFoundError(
            f"SAM checkpoint {path} {what}; download the official checkpoints from {CHECKPOINT_URL}"
        )
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available; use device='cpu'")
    try:
        # weights_only: the official checkpoints are plain tensors, so refuse to unpickle arbitrary code.
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises anything from KeyError to UnpicklingError on a foreign file
        # torch's own message is long and, for pickles, suggests switching weights_only off: wrong for
        # received files.
        if isinstance(exc, pickle.UnpicklingError):
            reason = "objects other than tensors, or not a PyTorch file at all"
        else:
            reason = (str(exc).strip().splitlines() or [""])[0][:120]
        raise ValueError(
            f"{path} is not a SAM checkpoint: it cannot be read as a plain state dict of tensors "
            f"({type(exc).__name__}{': ' + reason if reason else ''}); files holding code or other objects "
            f"are refused. Pass the official SAM weights (e.g. sam_vit_h_4b8939.pth, {CHECKPOINT_URL}) "
            "with the matching --sam-model"
        ) from exc
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"{path} is not a SAM checkpoint: it holds a {type(state_dict).__name__}, not a state dict of "
            f"tensors. Pass the official SAM weights ({CHECKPOINT_URL})"
        )
    sam = build_sam(model_type)
    try:
        sam.load_state_dict(state_dict)
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:  # values that are not tensors too
        if not any(key in state_dict for key in sam.state_dict()):
            raise ValueError(
                f"{path} is not a SAM checkpoint: it holds none of SAM's weights (keys such as "
                f"{list(state_dict)[:3]}). Pass the official SAM weights ({CHECKPOINT_URL})"
            ) from exc
        guess = _guess_model_type(state_dict)
        hint = (
            f"it holds {guess} weights, pass model_type {guess}"
            if guess is not None and guess != model_type
            else "did you pass vit_b weights with model_type vit_h?"
        )
        raise ValueError(
            f"checkpoint {path} does not match model_type {model_type}; {hint} "
            f"({_describe_mismatch(sam.state_dict(), state_dict)})"
        ) from exc
    return sam.to(device).eval()


def _guess_model_type(state_dict: Mapping[str, Any]) -> str | None:
    """The architecture whose encoder width and depth fit a state dict, if any.

    Arguments:
        state_dict: a SAM checkpoint's tensors.

    Returns:
        A key of ``SAM_ARCHITECTURES``, or None when the checkpoint is not a SAM of a known size.
    """
    pos_embed = state_dict.get("image_encoder.pos_embed")
    if not isinstance(pos_embed, torch.Tensor):
        return None
    blocks = {key.split(".")[2] for key in state_dict if key.startswith("image_encoder.blocks.")}
    for name, arch in SAM_ARCHITECTURES.items():
        if pos_embed.shape[-1] == arch.embed_dim and len(blocks) == arch.depth:
            return name
    return None


def _describe_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    """One line summing up how a state dict differs from the model's (load_state_dict lists every key).

    Arguments:
        expected: the model's own ``state_dict()``.
        found: the checkpoint's state dict.

    Returns:
        Counts of missing, unexpected and wrongly shaped tensors, with one example of each.
    """
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    reshaped = [
        f"{key}: checkpoint {list(getattr(found[key], 'shape', []))} vs model {list(expected[key].shape)}"
        for key in expected
        if key in found and getattr(found[key], "shape", None) != expected[key].shape
    ]
    parts = [
        f"{len(items)} {label}" + (f" (e.g. {items[0]})" if items else "")
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", reshaped),
        )
    ]
    return ", ".join(parts)


def embedding_valid_shape(height: int, width: int) -> tuple[int, int]:
    """Size of the image inside SAM's 1024x1024 encoder input: resized, before the bottom/right padding.

    Arguments:
        height: original image height in pixels.
        width: original image width in pixels.

    Returns:
        ``(h', w')`` in input pixels; the longer one is 1024.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    return ResizeLongestSide.get_preprocess_shape(height, width, SAM_INPUT_SIZE)


def embedding_valid_grid(height: int, width: int) -> tuple[int, int]:
    """Rows and columns of the 64x64 embedding grid that cover image pixels (the top-left block).

    Arguments:
        height: original image height in pixels.
        width: original image width in pixels.

    Returns:
        ``(ceil(h' / 16), ceil(w' / 16))`` with ``(h', w')`` from ``embedding_valid_shape``.
    """
    valid_h, valid_w = embedding_valid_shape(height, width)
    return math.ceil(valid_h / SAM_PATCH_SIZE), math.ceil(valid_w / SAM_PATCH_SIZE)


@dataclass(frozen=True)
class SamConfig:
    """Parameters of ``SamAutomaticMaskGenerator``; the defaults are segment_anything's.

    Arguments:
        points_per_side: the point grid has ``points_per_side ** 2`` prompts.
        points_per_batch: prompts decoded at once; higher is faster and needs more memory (every prompt
            gives three 1024x1024 float mask logits).
        pred_iou_thresh: keep masks whose predicted IoU is above this (0 disables the filter).
        stability_score_thresh: keep masks whose stability score is at least this (0 disables it).
        stability_score_offset: logit shift used to compute the stability score.
        box_nms_thresh: box IoU above which duplicate masks of one crop are suppressed.
        crop_n_layers: if > 0, AMG also runs on ``2**i`` overlapping crops per layer ``i`` (each crop costs
            one more encoder pass).
        crop_nms_thresh: box IoU above which duplicates across crops are suppressed.
        crop_overlap_ratio: overlap of first-layer crops, as a fraction of the image side.
        crop_n_points_downscale_factor: points per side in crop layer ``n`` are divided by this ``** n``.
        min_mask_region_area: if > 0, holes and islands smaller than this many pixels are removed.
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0

    def __post_init__(self) -> None:
        # segment_anything only asserts, and a bad value otherwise fails deep inside a batch loop.
        for name in ("points_per_side", "points_per_batch", "crop_n_points_downscale_factor"):
            if getattr(self, name) < 1:
                raise ValueError(f"SamConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("crop_n_layers", "min_mask_region_area"):
            if getattr(self, name) < 0:
                raise ValueError(f"SamConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("box_nms_thresh", "crop_nms_thresh", "crop_overlap_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SamConfig.{name} must lie in [0, 1], got {getattr(self, name)}")


class EmbeddingKeepingPredictor(SamPredictor):
    """A ``SamPredictor`` that remembers the last embedding it computed, optionally under bf16 autocast.

    AMG calls ``reset_image`` at the end of every crop, dropping ``features``; ``last_features`` survives
    it so the generator can hand the full-image embedding on.
    """

    def __init__(self, sam_model: Sam, bf16: bool) -> None:
        super().__init__(sam_model)
        self.bf16 = bf16
        self.last_features: torch.Tensor | None = None

    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]) -> None:
        """Encode the image (see ``SamPredictor.set_torch_image``), keeping a reference to the embedding.

        Arguments:
            transformed_image: ``1x3xHxW`` input already resized by ``ResizeLongestSide``.
            original_image_size: ``(H, W)`` of the image before resizing.
        """
        # Only the encoder runs in bf16 (it is nearly all of the compute). The decoder then sees float32
        # features and yields float32 scores: AMG converts its results to numpy, which has no bfloat16.
        with self._autocast():
            super().set_torch_image(transformed_image, original_image_size)
        self.features = self.features.float()
        self.last_features = self.features

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


class _EmbeddingKeepingAMG(SamAutomaticMaskGenerator):
    """``SamAutomaticMaskGenerator`` that keeps the embedding of the full-image crop."""

    predictor: EmbeddingKeepingPredictor

    def __init__(self, model: Sam, config: SamConfig, bf16: bool) -> None:
        super().__init__(model, output_mode="coco_rle", **asdict(config))
        self.predictor = EmbeddingKeepingPredictor(model, bf16)
        self.full_image_embedding: torch.Tensor | None = None

    def _process_crop(
        self,
        image: np.ndarray,
        crop_box: list[int],
        crop_layer_idx: int,
        orig_size: tuple[int, ...],
    ) -> Any:
        data = super()._process_crop(image, crop_box, crop_layer_idx, orig_size)
        height, width = orig_size[:2]
        # Exactly one crop is the whole image (layer 0); the other crops' embeddings are of sub-images.
        if list(crop_box) == [0, 0, width, height]:
            self.full_image_embedding = self.predictor.last_features
        self.predictor.last_features = None
        return data


class _FastEmbeddingKeepingAMG(_EmbeddingKeepingAMG, ExactFastAMG):
    """``_EmbeddingKeepingAMG`` on the exact fast path of ``alps.masks.fast_amg`` (same masks, less work)."""


def usable_bf16(requested: bool, device: torch.device) -> bool:
    """Whether bf16 autocast of SAM's encoder is used: only on CUDA (a warning says so elsewhere).

    Arguments:
        requested: the caller asked for bf16.
        device: where the model runs.

    Returns:
        ``requested`` on CUDA, else False.
    """
    if requested and device.type != "cuda":
        warnings.warn(
            f"bf16 autocast is only used on CUDA; running SAM in float32 on {device}",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return requested


class SamMaskGenerator:
    """The ``sam`` mask backend: SAM's automatic mask generator, returning the embedding with the masks.

    Arguments:
        model: a loaded SAM (see ``load_sam``); it runs on the device it is on.
        config: AMG parameters; ``SamConfig()`` gives segment_anything's defaults.
        bf16: run the image encoder under bfloat16 autocast. CUDA only: on CPU it is ignored with a
            warning (CPU bf16 autocast is slow on most CPUs and changes results for no gain).
        exact_fast_path: run AMG on the exact fast path (``alps.masks.fast_amg.ExactFastAMG``): masks and
            scores bit for bit those of stock ``SamAutomaticMaskGenerator``, computed with less work.
            False runs stock AMG's own code (for comparisons).
    """

    name = "sam"

    def __init__(
        self,
        model: Sam,
        config: SamConfig | None = None,
        *,
        bf16: bool = False,
        exact_fast_path: bool = True,
    ) -> None:
        self.model = model.eval()
        self.config = config if config is not None else SamConfig()
        self.bf16 = usable_bf16(bf16, self.device)
        self.exact_fast_path = exact_fast_path
        amg_class = _FastEmbeddingKeepingAMG if exact_fast_path else _EmbeddingKeepingAMG
        self._amg = amg_class(self.model, self.config, self.bf16)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike[str],
        model_type: str,
        config: SamConfig | None = None,
        device: str = "cpu",
        bf16: bool = False,
        exact_fast_path: bool = True,
    ) -> SamMaskGenerator:
        """Load SAM with ``load_sam`` and wrap it.

        Arguments:
            checkpoint: path of the official ``.pth`` weights.
            model_type: ``vit_h``, ``vit_l`` or ``vit_b``.
            config: AMG parameters (default: segment_anything's defaults).
            device: ``cpu`` or ``cuda``.
            bf16: bfloat16 autocast for the image encoder (CUDA only).
            exact_fast_path: AMG's exact fast path (see the class); False runs stock AMG.

        Returns:
            The mask generator.
        """
        return cls(
            load_sam(checkpoint, model_type, device), config, bf16=bf16, exact_fast_path=exact_fast_path
        )

    @property
    def device(self) -> torch.device:
        """The device the model's weights are on."""
        return self.model.device

    def generate(self, image: NDArray[np.uint8], image_id: str) -> MaskSet:
        """Run AMG on one image and return its masks together with the full-image embedding.

        Arguments:
            image: ``(H, W, 3)`` uint8 RGB array.
            image_id: the image's id, copied to the mask set.

        Returns:
            AMG's masks in AMG's order (empty masks dropped) as COCO RLE of size ``[H, W]``, their
            predicted IoU and stability score, and ``embedding``: the float32 ``(256, 64, 64)`` encoder
            output for the whole image (see ``embedding_valid_grid`` for the cells that cover it).
        """
        image = check_rgb_image(image, f"image {image_id}")
        height, width = image.shape[:2]
        with torch.inference_mode(), self._forget_embedding():
            records = self._amg.generate(image)
            features = self._amg.full_image_embedding
            if features is None:  # cannot happen: AMG always processes the full-image crop first
                raise RuntimeError(f"image {image_id}: SAM produced no full-image embedding")
            embedding = features[0].detach().to(device="cpu", dtype=torch.float32).numpy()
        rles, ious, stabilities = [], [], []
        for record in records:
            # An all-background prediction can survive AMG when both thresholds are 0; it has no pixels to
            # pool a feature from.
            if record["area"] == 0:
                continue
            segmentation = record["segmentation"]
            counts = segmentation["counts"]
            # AMG decodes counts to str for json; pycocotools' own encode returns bytes, as MaskSet expects.
            rles.append(
                {
                    "size": [int(segmentation["size"][0]), int(segmentation["size"][1])],
                    "counts": counts.encode("utf-8") if isinstance(counts, str) else bytes(counts),
                }
            )
            ious.append(record["predicted_iou"])
            stabilities.append(record["stability_score"])
        return MaskSet(
            image_id=image_id,
            height=height,
            width=width,
            rles=rles,
            predicted_iou=np.asarray(ious, dtype=np.float32),
            stability_score=np.asarray(stabilities, dtype=np.float32),
            embedding=np.ascontiguousarray(embedding, dtype=np.float32),
        )

    @contextlib.contextmanager
    def _forget_embedding(self) -> Iterator[None]:
        """Drop the kept embedding after each image, so a failed image cannot leak the previous one."""
        self._amg.full_image_embedding = None
        try:
            yield
        finally:
            self._amg.full_image_embedding = None
            self._amg.predictor.last_features = None
