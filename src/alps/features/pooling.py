"""Masked mean pooling of a feature map: the pseudo feature label (PFL) of the paper's Eq. 4.

Eq. 4 upsamples the encoder's ``(C, h, w)`` feature map bilinearly to the mask's ``(H, W)`` size, multiplies
it by the binary mask and averages over the mask's pixels. Materialising the upsampled map costs
``C * H * W`` floats (256 x 4000 x 4000 x 4 bytes = 16 GB for a big tile), so it is never built here.

Bilinear upsampling is linear and separable: ``U f = A_h f A_wᵀ`` for a ``(H, h)`` matrix ``A_h`` and a
``(W, w)`` matrix ``A_w``. Hence, for a mask ``M``::

    sum_p M_p (U f)_p = sum_q f_q * (A_hᵀ M A_w)_q

so each mask reduces to an ``(h, w)`` weight grid ``A_hᵀ M A_w`` (its bilinear "coverage" of each feature
cell), and every PFL is one dot product of that grid with the feature map. All masks of a chunk take one
batched matmul for the weights and one ``(N, h*w) @ (h*w, C)`` matmul for the features.

Geometry: an encoder may see a resized and padded copy of the image. The feature map then covers a
``padded_shape`` input of which the top-left ``valid_shape`` is the (resized) image; the alignment that
SAM itself uses for its masks (``Sam.postprocess_masks``) is: upsample to ``padded_shape``, crop to
``valid_shape``, resize to the image's ``(H, W)``. The two interpolations compose into one matrix per axis.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

# Masks are converted to float32 a chunk at a time; this bounds that buffer (elements, i.e. 4x bytes).
_CHUNK_ELEMENTS = 1 << 25


def interpolation_matrix(n_in: int, n_out: int) -> NDArray[np.float64]:
    """The ``(n_out, n_in)`` matrix of 1-D linear resizing as ``F.interpolate(mode="bilinear")`` does it.

    It reproduces PyTorch's ``align_corners=False`` rule (half-pixel centres, source coordinates clamped
    at 0, the last index repeated past the end) with the scale ``n_in / n_out`` that ``F.interpolate``
    uses when it is given an output ``size``.

    Arguments:
        n_in: length of the input axis.
        n_out: length of the output axis.

    Returns:
        A float64 matrix whose rows hold at most two non-zero weights that sum to 1.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"interpolation sizes must be positive, got {n_in} -> {n_out}")
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam1 = src - i0
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    # np.add.at, not assignment: where i0 == i1 (the last input index) both weights land on one cell.
    np.add.at(matrix, (rows, i0), 1.0 - lam1)
    np.add.at(matrix, (rows, i1), lam1)
    return matrix


def axis_operator(
    n_feat: int, n_image: int, n_padded: int | None, n_valid: int | None
) -> NDArray[np.float64]:
    """The ``(n_image, n_feat)`` operator mapping one feature-map axis to one image axis.

    Arguments:
        n_feat: length of the feature-map axis.
        n_image: length of the image axis (the masks' size).
        n_padded: length of the encoder's (padded) input axis that the feature map covers, or ``None``
            to stretch the feature map straight over the image.
        n_valid: length of the image part at the start of the padded axis (``<= n_padded``).

    Returns:
        ``resize(n_valid -> n_image) @ crop(:n_valid) @ upsample(n_feat -> n_padded)``, or
        ``upsample(n_feat -> n_image)`` without padding.
    """
    if n_padded is None:
        return interpolation_matrix(n_feat, n_image)
    if n_valid is None:
        n_valid = n_padded
    if not 1 <= n_valid <= n_padded:
        raise ValueError(f"valid size {n_valid} must lie in 1..padded size {n_padded}")
    up = interpolation_matrix(n_feat, n_padded)[:n_valid]
    if n_valid == n_image:
        # Resizing n -> n with half-pixel centres is the identity; skip the (n x n) product.
        return up
    return interpolation_matrix(n_valid, n_image) @ up


def masked_mean_features(
    feature_map: torch.Tensor | NDArray[np.floating],
    masks: torch.Tensor | NDArray[np.bool_],
    valid_shape: tuple[int, int] | None = None,
    padded_shape: tuple[int, int] | None = None,
    *,
    chunk_elements: int = _CHUNK_ELEMENTS,
) -> NDArray[np.float32]:
    """Every mask's mean of the bilinearly upsampled feature map (Eq. 4), without upsampling the map.

    The result equals ``F.interpolate`` of the map to the masks' size (through ``padded_shape`` and a crop
    to ``valid_shape`` when given, as SAM's ``postprocess_masks`` does), followed by a mean over each
    mask's pixels, to float32 rounding.

    Arguments:
        feature_map: a ``(C, h, w)`` feature map (torch tensor on any device, or numpy array); the
            computation runs on its device in float32.
        masks: a boolean ``(N, H, W)`` stack at the image's size (numpy or torch).
        valid_shape: ``(h', w')``, the image's extent inside the encoder input, top-left aligned; needs
            ``padded_shape``.
        padded_shape: ``(Ph, Pw)``, the encoder input that the feature map covers (e.g. ``(1024, 1024)``
            for SAM). With neither shape given, the map is stretched straight over ``(H, W)``; with only
            ``padded_shape`` the whole padded input is image (``valid_shape = padded_shape``).
        chunk_elements: masks are processed in chunks of at most this many pixels in total (at least one
            mask per chunk), which bounds the float32 mask buffer to ``4 * chunk_elements`` bytes.

    Returns:
        An ``(N, C)`` float32 array of per-mask feature means.

    Raises:
        ValueError: bad shapes, or an empty mask (its mean is undefined; drop empty masks first, as
            ``MaskSet.from_binary`` does, rather than inventing a feature for them).
    """
    fmap = torch.as_tensor(feature_map)
    if fmap.ndim != 3:
        raise ValueError(f"feature_map must be (C, h, w), got shape {tuple(fmap.shape)}")
    device = fmap.device
    fmap = fmap.to(dtype=torch.float32)
    channels, h, w = fmap.shape
    if masks.ndim != 3:
        raise ValueError(f"masks must be an (N, H, W) stack, got shape {tuple(masks.shape)}")
    n, height, width = (int(s) for s in masks.shape)
    if n == 0:
        return np.zeros((0, channels), dtype=np.float32)
    if valid_shape is not None and padded_shape is None:
        raise ValueError("valid_shape needs padded_shape: the size of the input the feature map covers")

    pad_h, pad_w = (None, None) if padded_shape is None else padded_shape
    val_h, val_w = (None, None) if valid_shape is None else valid_shape
    a_h = torch.from_numpy(axis_operator(h, height, pad_h, val_h)).to(device, torch.float32)  # (H, h)
    a_w = torch.from_numpy(axis_operator(w, width, pad_w, val_w)).to(device, torch.float32)  # (W, w)
    a_h_t = a_h.T.contiguous()  # (h, H)
    flat_features = fmap.reshape(channels, h * w).T.contiguous()  # (h*w, C)

    per_chunk = max(1, chunk_elements // max(1, height * width))
    out = np.empty((n, channels), dtype=np.float32)
    for start in range(0, n, per_chunk):
        stop = min(n, start + per_chunk)
        chunk = torch.as_tensor(masks[start:stop]).to(device=device, dtype=torch.float32)
        counts = chunk.sum(dim=(1, 2))
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):
            raise ValueError(f"empty mask(s) at index {[start + int(i) for i in empty.tolist()]}")
        # Coverage weights A_hᵀ M A_w: (k, H, W) @ (W, w) -> (k, H, w); (h, H) @ (k, H, w) -> (k, h, w).
        weights = torch.matmul(a_h_t, torch.matmul(chunk, a_w))
        pooled = weights.reshape(stop - start, h * w) @ flat_features
        out[start:stop] = (pooled / counts[:, None]).cpu().numpy()
    return out
