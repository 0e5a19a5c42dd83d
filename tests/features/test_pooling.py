"""The separable masked mean must equal Eq. 4 computed naively (upsample the whole map, then average)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alps.features.pooling import interpolation_matrix, masked_mean_features


def naive_masked_mean(
    fmap: torch.Tensor,
    masks: np.ndarray,
    valid_shape: tuple[int, int] | None = None,
    padded_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Eq. 4 as written: F.interpolate to the mask size (through pad + crop, like SAM), mask, average."""
    size = masks.shape[1:]
    x = fmap[None].float()
    if padded_shape is None:
        up = F.interpolate(x, size, mode="bilinear", align_corners=False)
    else:
        vh, vw = valid_shape or padded_shape
        up = F.interpolate(x, padded_shape, mode="bilinear", align_corners=False)[..., :vh, :vw]
        up = F.interpolate(up, size, mode="bilinear", align_corners=False)
    m = torch.from_numpy(masks).float()
    return ((up * m[:, None]).sum(dim=(2, 3)) / m.sum(dim=(1, 2))[:, None]).numpy()


def random_masks(rng: np.random.Generator, n: int, height: int, width: int) -> np.ndarray:
    """Random blobs, a full mask, a small box, one pixel and a one-pixel line at the border."""
    masks = rng.random((n, height, width)) > rng.uniform(0.3, 0.95, size=(n, 1, 1))
    masks[0] = False
    masks[0, height - 1, width - 1] = True
    masks[1] = False
    masks[1, :, 0] = True
    masks[2] = True
    masks[3] = False
    masks[3, height // 3 : height // 3 + 3, width // 2 : width // 2 + 5] = True  # a small interior box
    return masks


@pytest.mark.parametrize(
    ("n_in", "n_out"), [(1, 7), (7, 1), (5, 17), (17, 5), (64, 1024), (1024, 803), (9, 9), (3, 1000)]
)
def test_interpolation_matrix_matches_torch(n_in: int, n_out: int) -> None:
    identity = torch.eye(n_in, dtype=torch.float64).reshape(1, n_in, n_in, 1)
    expected = F.interpolate(identity, (n_out, 1), mode="bilinear", align_corners=False)[0, :, :, 0].T
    np.testing.assert_allclose(interpolation_matrix(n_in, n_out), expected.numpy(), atol=1e-12)


@pytest.mark.parametrize(
    ("channels", "fmap_hw", "image_hw", "valid_shape", "padded_shape"),
    [
        (8, (5, 7), (31, 45), None, None),  # non-square, odd, no padding
        (4, (13, 9), (413, 287), None, None),  # taller than wide, odd
        (6, (20, 20), (9, 11), None, None),  # feature map finer than the image
        # SAM: 64x64 embedding of a 1024x1024 padded input, image resized to (594, 1024) inside it
        (16, (64, 64), (300, 517), (594, 1024), (1024, 1024)),
        (16, (64, 64), (517, 301), (1024, 596), (1024, 1024)),
        # EfficientNet at native resolution: padded to a multiple of 32, valid == image
        (5, (8, 12), (250, 377), (250, 377), (256, 384)),
        # EfficientNet with max_side: resized to (170, 255), padded to (192, 256), image (333, 500)
        (5, (6, 8), (333, 500), (170, 255), (192, 256)),
        # padded_shape alone: the whole padded input is image, resized to the masks' size
        (3, (10, 10), (33, 47), None, (320, 320)),
    ],
)
def test_matches_naive_reference(
    channels: int,
    fmap_hw: tuple[int, int],
    image_hw: tuple[int, int],
    valid_shape: tuple[int, int] | None,
    padded_shape: tuple[int, int] | None,
) -> None:
    rng = np.random.default_rng(0)
    fmap = torch.from_numpy(rng.normal(size=(channels, *fmap_hw)).astype(np.float32))
    masks = random_masks(rng, 7, *image_hw)
    got = masked_mean_features(fmap, masks, valid_shape, padded_shape)
    assert got.shape == (7, channels) and got.dtype == np.float32
    np.testing.assert_allclose(got, naive_masked_mean(fmap, masks, valid_shape, padded_shape), atol=1e-5)


def test_row_blocks_and_input_types_do_not_change_the_result() -> None:
    rng = np.random.default_rng(1)
    fmap = rng.normal(size=(4, 9, 11)).astype(np.float32)
    masks = random_masks(rng, 9, 70, 90)
    whole = masked_mean_features(fmap, masks)
    blocked = masked_mean_features(torch.from_numpy(fmap), torch.from_numpy(masks), block_elements=50)
    row_by_row = masked_mean_features(fmap, masks, block_elements=1)
    np.testing.assert_allclose(blocked, whole, atol=1e-6)
    np.testing.assert_allclose(row_by_row, whole, atol=1e-6)
    uint8 = masked_mean_features(fmap, masks.astype(np.uint8))
    np.testing.assert_allclose(uint8, whole, atol=1e-6)


def test_constant_map_pools_to_the_constant() -> None:
    # Interpolation rows sum to 1, so any mask of a constant map averages to that constant.
    fmap = torch.full((3, 16, 16), 2.5)
    masks = random_masks(np.random.default_rng(2), 5, 300, 200)
    got = masked_mean_features(fmap, masks, (300, 200), (512, 512))
    np.testing.assert_allclose(got, 2.5, rtol=1e-6)


def test_no_masks_gives_an_empty_result() -> None:
    got = masked_mean_features(torch.zeros(7, 4, 4), np.zeros((0, 20, 20), dtype=bool))
    assert got.shape == (0, 7) and got.dtype == np.float32


def test_empty_mask_is_an_error() -> None:
    masks = np.ones((3, 20, 20), dtype=bool)
    masks[1] = False
    with pytest.raises(ValueError, match=r"empty mask.*\[1\]"):
        masked_mean_features(torch.zeros(2, 4, 4), masks)


def test_bad_arguments() -> None:
    masks = np.ones((1, 8, 8), dtype=bool)
    with pytest.raises(ValueError, match="padded_shape"):
        masked_mean_features(torch.zeros(2, 4, 4), masks, valid_shape=(8, 8))
    with pytest.raises(ValueError, match=r"\(C, h, w\)"):
        masked_mean_features(torch.zeros(4, 4), masks)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        masked_mean_features(torch.zeros(2, 4, 4), masks[0])
    with pytest.raises(ValueError, match="valid size"):
        masked_mean_features(torch.zeros(2, 4, 4), masks, valid_shape=(40, 8), padded_shape=(32, 32))
