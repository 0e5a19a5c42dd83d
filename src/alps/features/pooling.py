"""Masked mean pooling of a feature map: the pseudo feature label (PFL) of the paper's Eq. 4.

Eq. 4 upsamples the encoder's ``(C, h, w)`` feature map bilinearly to the mask's ``(H, W)`` size, multiplies
it by the binary mask and averages over the mask's pixels. Materialising the upsampled map costs
``C * H * W`` floats (256 x 4000 x 4000 x 4 bytes = 16 GB for a big tile), so it is never built here.

Bilinear upsampling is linear and separable: ``U f = A_h f A_wᵀ`` for a ``(H, h)`` matrix ``A_h`` and a
``(W, w)`` matrix ``A_w``. Hence, for a mask ``M``::

    sum_p M_p (U f)_p = sum_q f_q * (A_hᵀ M A_w)_q

so each mask reduces to an ``(h, w)`` weight grid ``A_hᵀ M A_w`` (its bilinear "coverage" of each feature
cell), and every PFL is one dot product of that grid with the feature map.

Each row of ``A_h`` / ``A_w`` is non-zero only on a short contiguous band of feature cells (two for one
bilinear step, a few for two composed steps). So a mask is cropped to its bounding box, and only the
band of cells that box touches takes part: the cost per mask is ``O(box area * band)`` rather than
``O(H * W * w)``. SAM's masks are mostly small, so on a 2000 x 3000 tile this is tens of times faster
than one dense batched product over whole masks, and it never needs an ``(N, h, w)`` weight tensor.

Geometry: an encoder may see a resized and padded copy of the image. The feature map then covers a
``padded_shape`` input of which the top-left ``valid_shape`` is the (resized) image; the alignment that
SAM itself uses for its masks (``Sam.postprocess_masks``) is: upsample to ``padded_shape``, crop to
``valid_shape``, resize to the image's ``(H, W)``. The two interpolations compose into one matrix per axis.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

# A cropped mask is converted to float32 (and moved to the feature map's device) this many pixels at a
# time, which bounds the working memory whatever the image size: 64 MB.
_CROP_ELEMENTS = 1 << 24


def _linear_taps(n_in: int, n_out: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """For every output index of a 1-D bilinear resize: its two input indices and the second's weight."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"interpolation sizes must be positive, got {n_in} -> {n_out}")
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


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
    i0, i1, lam1 = _linear_taps(n_in, n_out)
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
        # Resizing n -> n with half-pixel centres is the identity; skip it.
        return up
    # The resize has two taps per row: combine rows of `up` instead of building an (n_image, n_valid)
    # matrix (80 MB for a 10000 px side).
    i0, i1, lam1 = _linear_taps(n_valid, n_image)
    return up[i0] * (1.0 - lam1)[:, None] + up[i1] * lam1[:, None]


def _bands(operator: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """First and one-past-last non-zero column of every row of an interpolation operator."""
    nonzero = operator != 0
    first = nonzero.argmax(axis=1)
    stop = operator.shape[1] - nonzero[:, ::-1].argmax(axis=1)
    return first, stop


def masked_mean_features(
    feature_map: torch.Tensor | NDArray[np.floating],
    masks: torch.Tensor | NDArray[np.bool_],
    valid_shape: tuple[int, int] | None = None,
    padded_shape: tuple[int, int] | None = None,
    *,
    block_elements: int = _CROP_ELEMENTS,
) -> NDArray[np.float32]:
    """Every mask's mean of the bilinearly upsampled feature map (Eq. 4), without upsampling the map.

    The result equals ``F.interpolate`` of the map to the masks' size (through ``padded_shape`` and a crop
    to ``valid_shape`` when given, as SAM's ``postprocess_masks`` does), followed by a mean over each
    mask's pixels, to float32 rounding.

    Masks are processed one at a time, cropped to their bounding box, in row blocks of at most
    ``block_elements`` pixels: the working memory is bounded by that block, the ``(C, h, w)`` map and the
    ``(N, C)`` result, whatever the number of masks or the image size.

    Arguments:
        feature_map: a ``(C, h, w)`` feature map (torch tensor on any device, or numpy array); the
            products run on its device in float32.
        masks: a boolean ``(N, H, W)`` stack at the image's size (numpy, or a torch tensor, which is
            read on the CPU); non-zero means inside.
        valid_shape: ``(h', w')``, the image's extent inside the encoder input, top-left aligned; needs
            ``padded_shape``.
        padded_shape: ``(Ph, Pw)``, the encoder input that the feature map covers (e.g. ``(1024, 1024)``
            for SAM). With neither shape given, the map is stretched straight over ``(H, W)``; with only
            ``padded_shape`` the whole padded input is image (``valid_shape = padded_shape``).
        block_elements: pixels of a cropped mask converted to float32 at once.

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
    # numpy, not torch, for the bounding boxes: its boolean reductions are ~10x faster on the CPU.
    stack = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if stack.ndim != 3:
        raise ValueError(f"masks must be an (N, H, W) stack, got shape {tuple(stack.shape)}")
    if stack.dtype != np.bool_:
        stack = stack != 0
    n, height, width = stack.shape
    if n == 0:
        return np.zeros((0, channels), dtype=np.float32)
    if valid_shape is not None and padded_shape is None:
        raise ValueError("valid_shape needs padded_shape: the size of the input the feature map covers")
    empty = [i for i in range(n) if not stack[i].any()]
    if empty:
        raise ValueError(f"empty mask(s) at index {empty}")

    pad_h, pad_w = (None, None) if padded_shape is None else padded_shape
    val_h, val_w = (None, None) if valid_shape is None else valid_shape
    op_h = axis_operator(h, height, pad_h, val_h)  # (H, h)
    op_w = axis_operator(w, width, pad_w, val_w)  # (W, w)
    (first_h, stop_h), (first_w, stop_w) = _bands(op_h), _bands(op_w)
    a_h_t = torch.from_numpy(op_h.T.copy()).to(device, torch.float32)  # (h, H)
    a_w = torch.from_numpy(op_w).to(device, torch.float32)  # (W, w)

    out = torch.empty((n, channels), dtype=torch.float32, device=device)
    for index in range(n):
        mask = stack[index]
        ys = np.flatnonzero(mask.any(axis=1))
        top, bottom = int(ys[0]), int(ys[-1]) + 1
        xs = np.flatnonzero(mask[top:bottom].any(axis=0))
        left, right = int(xs[0]), int(xs[-1]) + 1
        # The feature cells this box touches: a band of rows i0:i1 and columns j0:j1.
        i0, i1 = int(first_h[top:bottom].min()), int(stop_h[top:bottom].max())
        j0, j1 = int(first_w[left:right].min()), int(stop_w[left:right].max())
        a_w_box = a_w[left:right, j0:j1]
        weights = torch.zeros((i1 - i0, j1 - j0), dtype=torch.float32, device=device)
        count = 0
        step = max(1, block_elements // (right - left))
        for y in range(top, bottom, step):
            block = mask[y : min(bottom, y + step), left:right]
            count += int(np.count_nonzero(block))
            crop = torch.from_numpy(block).to(device=device, dtype=torch.float32)
            # A_hᵀ M A_w, restricted to the box and the band of cells it touches.
            weights += a_h_t[i0:i1, y : y + block.shape[0]] @ (crop @ a_w_box)
        pooled = torch.tensordot(fmap[:, i0:i1, j0:j1], weights, dims=([1, 2], [0, 1]))
        out[index] = pooled / count
    return out.cpu().numpy()
