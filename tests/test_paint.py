from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alps.masks import MaskSet
from alps.paint import UNLABELED, colorize, make_palette, paint_binary, paint_labels


def test_small_mask_painted_over_large_one():
    large = np.zeros((8, 8), bool)
    large[:6, :6] = True
    small = np.zeros((8, 8), bool)
    small[2:4, 2:4] = True
    # Small first in the set: order by area, not by position, decides.
    mask_set = MaskSet.from_binary("x", np.stack([small, large]))
    label = paint_labels(mask_set, np.array([3, 5]))
    assert label[2, 2] == 3 and label[0, 0] == 5 and label[7, 7] == UNLABELED


def test_gated_masks_are_not_painted_and_binary_variant():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2] = True
    masks[1, 2:] = True
    mask_set = MaskSet.from_binary("x", masks)
    label = paint_labels(mask_set, np.array([-1, 0]))
    assert (label[:2] == UNLABELED).all() and (label[2:] == 0).all()
    binary = paint_binary(mask_set, np.array([False, True]))
    assert binary.dtype == np.uint8 and (binary[:2] == 0).all() and (binary[2:] == 1).all()


def test_bad_ids_are_rejected():
    mask_set = MaskSet.from_binary("x", np.ones((1, 2, 2), bool))
    with pytest.raises(ValueError, match="must be < 255"):
        paint_labels(mask_set, np.array([255]))
    with pytest.raises(ValueError, match="2 cluster ids for 1 masks"):
        paint_labels(mask_set, np.array([0, 1]))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 6),
    height=st.integers(1, 12),
    width=st.integers(1, 12),
)
def test_paint_properties(seed, n, height, width):
    rng = np.random.default_rng(seed)
    masks = rng.random((n, height, width)) < rng.random((n, 1, 1))
    mask_set = MaskSet.from_binary("p", masks)
    ids = rng.integers(-1, 10, size=len(mask_set))
    label = paint_labels(mask_set, ids)
    decoded = mask_set.decode()
    kept = decoded[ids >= 0] if len(mask_set) else decoded
    covered = kept.any(axis=0) if len(kept) else np.zeros((height, width), bool)
    assert label.shape == (height, width) and label.dtype == np.uint8
    # 255 exactly where no kept mask lies.
    np.testing.assert_array_equal(label == UNLABELED, ~covered)
    # Every covered pixel carries the id of the smallest kept mask covering it (ties: first mask).
    area = mask_set.area
    for y, x in zip(*np.nonzero(covered), strict=True):
        candidates = [i for i in range(len(mask_set)) if ids[i] >= 0 and decoded[i, y, x]]
        smallest = min(candidates, key=lambda i: (area[i], -i))
        assert label[y, x] == ids[smallest]
    binary = paint_binary(mask_set, ids >= 0)
    np.testing.assert_array_equal(binary, covered.astype(np.uint8))


def test_palette_is_fixed_and_distinct():
    palette = make_palette()
    np.testing.assert_array_equal(palette, make_palette())
    assert len({tuple(c) for c in palette[:64]}) == 64
    assert tuple(palette[UNLABELED]) == (0, 0, 0)
    label = np.array([[0, 255]], np.uint8)
    np.testing.assert_array_equal(colorize(label)[0, 1], [0, 0, 0])
