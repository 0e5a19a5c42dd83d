"""Weight-free CPU mask backends: Felzenszwalb graph segments and SLIC superpixels (scikit-image).

They give the demo, and users without a GPU or a SAM checkpoint, a complete pipeline. Each segment of the
partition becomes one mask; the filtering gate downstream drops the large background segments, exactly as
it drops SAM's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from skimage.segmentation import felzenszwalb, slic

from alps.masks.base import MaskSet


def _label_map_to_maskset(labels: NDArray[np.integer], image_id: str) -> MaskSet:
    """One mask per label value, in increasing label order."""
    values = np.unique(labels)
    masks = labels[None, :, :] == values[:, None, None]
    return MaskSet.from_binary(image_id, masks)


@dataclass
class FelzenszwalbMaskGenerator:
    """Felzenszwalb-Huttenlocher graph segmentation; ``scale`` sets the preferred segment size.

    Arguments:
        scale: higher means larger segments.
        sigma: Gaussian pre-smoothing width.
        min_size: segments smaller than this many pixels are merged into a neighbour.
    """

    scale: float = 200.0
    sigma: float = 0.8
    min_size: int = 50
    name: str = "felzenszwalb"

    def generate(self, image: NDArray[np.uint8], image_id: str) -> MaskSet:
        """Segment ``image`` (``(H, W, 3)`` uint8) into non-overlapping masks covering it."""
        labels = felzenszwalb(image, scale=self.scale, sigma=self.sigma, min_size=self.min_size)
        return _label_map_to_maskset(labels, image_id)


@dataclass
class SlicMaskGenerator:
    """SLIC superpixels: compact segments of roughly equal size.

    Arguments:
        n_segments: approximate number of superpixels per image.
        compactness: balance of colour proximity (low) against spatial proximity (high).
        sigma: Gaussian pre-smoothing width.
    """

    n_segments: int = 100
    compactness: float = 10.0
    sigma: float = 1.0
    name: str = "slic"

    def generate(self, image: NDArray[np.uint8], image_id: str) -> MaskSet:
        """Segment ``image`` (``(H, W, 3)`` uint8) into non-overlapping superpixels covering it."""
        labels = slic(
            image,
            n_segments=self.n_segments,
            compactness=self.compactness,
            sigma=self.sigma,
            start_label=0,
            channel_axis=-1,
        )
        return _label_map_to_maskset(labels, image_id)
