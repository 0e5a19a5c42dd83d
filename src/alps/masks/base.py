"""The mask-set contract shared by every mask backend (SAM, superpixels, COCO) and every later stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from pycocotools import mask as mask_utils


@dataclass
class MaskSet:
    """All unlabeled instance masks (UiMs) of one image, stored as COCO RLE.

    Attributes:
        image_id: the image's id (its file stem, or the manifest's id).
        height: image height in pixels (the original size, not SAM's 1024 resize).
        width: image width in pixels.
        rles: one COCO RLE per mask (``{"size": [h, w], "counts": bytes}``).
        predicted_iou: SAM's predicted IoU per mask (1.0 for backends that have no such score).
        stability_score: SAM's stability score per mask (1.0 for backends without one).
        embedding: the encoder feature map that produced the masks (SAM's ``(256, 64, 64)`` image
            embedding), kept in memory so that features reuse it; never written to a mask shard.
    """

    image_id: str
    height: int
    width: int
    rles: list[dict[str, Any]]
    predicted_iou: NDArray[np.float32]
    stability_score: NDArray[np.float32]
    embedding: NDArray[np.float32] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.rles)
        self.predicted_iou = np.asarray(self.predicted_iou, dtype=np.float32).reshape(n)
        self.stability_score = np.asarray(self.stability_score, dtype=np.float32).reshape(n)
        for rle in self.rles:
            if list(rle["size"]) != [self.height, self.width]:
                raise ValueError(
                    f"image {self.image_id}: RLE of size {rle['size']} does not match the image size "
                    f"{[self.height, self.width]}"
                )

    def __len__(self) -> int:
        return len(self.rles)

    @property
    def area(self) -> NDArray[np.int64]:
        """Pixel count of every mask."""
        return rle_area(self.rles)

    @property
    def bbox(self) -> NDArray[np.float32]:
        """Every mask's box as ``(x, y, w, h)``, COCO convention."""
        if not self.rles:
            return np.zeros((0, 4), dtype=np.float32)
        return np.asarray(mask_utils.toBbox(self.rles), dtype=np.float32).reshape(-1, 4)

    @property
    def area_fraction(self) -> NDArray[np.float64]:
        """Each mask's share of the image's pixels: the instance proportion of the paper's Eq. 2."""
        return self.area / float(self.height * self.width)

    def decode(self, indices: NDArray[np.integer] | list[int] | None = None) -> NDArray[np.bool_]:
        """Decode masks to a boolean ``(N, H, W)`` array (all masks, or those at ``indices``)."""
        chosen = self.rles if indices is None else [self.rles[int(i)] for i in indices]
        if not chosen:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return np.moveaxis(mask_utils.decode(chosen), -1, 0).astype(bool)

    @classmethod
    def from_binary(
        cls,
        image_id: str,
        masks: NDArray[np.bool_],
        predicted_iou: NDArray[np.floating] | None = None,
        stability_score: NDArray[np.floating] | None = None,
        embedding: NDArray[np.float32] | None = None,
    ) -> MaskSet:
        """Build a mask set from a boolean ``(N, H, W)`` stack; empty masks are dropped."""
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3:
            raise ValueError(f"image {image_id}: expected an (N, H, W) mask stack, got shape {masks.shape}")
        n, height, width = masks.shape
        iou = np.ones(n, np.float32) if predicted_iou is None else np.asarray(predicted_iou, np.float32)
        stab = np.ones(n, np.float32) if stability_score is None else np.asarray(stability_score, np.float32)
        keep = masks.reshape(n, height * width).any(axis=1)
        masks, iou, stab = masks[keep], iou[keep], stab[keep]
        rles = encode_masks(masks) if len(masks) else []
        return cls(image_id, height, width, rles, iou, stab, embedding)


# pycocotools 2.0.11's `area` overflows on more than 255 RLEs at once (an uint8 count inside its Cython
# code: "Python integer 256 out of bounds for uint8"), so areas are computed in chunks below that.
_AREA_CHUNK = 255


def rle_area(rles: list[dict[str, Any]]) -> NDArray[np.int64]:
    """Pixel count of every COCO RLE in ``rles``."""
    areas = [mask_utils.area(rles[i : i + _AREA_CHUNK]) for i in range(0, len(rles), _AREA_CHUNK)]
    return np.concatenate(areas).astype(np.int64) if areas else np.zeros(0, dtype=np.int64)


def encode_masks(masks: NDArray[np.bool_]) -> list[dict[str, Any]]:
    """COCO-RLE-encode a boolean ``(N, H, W)`` stack."""
    fortran = np.asfortranarray(np.moveaxis(masks.astype(np.uint8), 0, -1))
    return list(mask_utils.encode(fortran))


@runtime_checkable
class MaskGenerator(Protocol):
    """A mask backend: turns one RGB image into its unlabeled instance masks."""

    name: str

    def generate(self, image: NDArray[np.uint8], image_id: str) -> MaskSet:
        """Return every mask of ``image`` (an ``(H, W, 3)`` uint8 RGB array); no filtering by area."""
        ...
