from __future__ import annotations

import numpy as np
import pytest

from alps.masks import MaskSet


def test_from_binary_roundtrip_and_geometry():
    masks = np.zeros((3, 6, 8), dtype=bool)
    masks[0, 1:3, 2:5] = True
    masks[2, :, :] = True  # masks[1] is empty and must be dropped
    mask_set = MaskSet.from_binary("img", masks, predicted_iou=np.array([0.9, 0.5, 0.7]))
    assert len(mask_set) == 2
    np.testing.assert_array_equal(mask_set.decode(), masks[[0, 2]])
    np.testing.assert_array_equal(mask_set.area, [6, 48])
    np.testing.assert_allclose(mask_set.bbox, [[2, 1, 3, 2], [0, 0, 8, 6]])
    np.testing.assert_allclose(mask_set.area_fraction, [6 / 48, 1.0])
    np.testing.assert_allclose(mask_set.predicted_iou, [0.9, 0.7])
    np.testing.assert_array_equal(mask_set.decode([1]), masks[[2]])


def test_empty_mask_set_properties():
    mask_set = MaskSet.from_binary("none", np.zeros((0, 4, 5), dtype=bool))
    assert len(mask_set) == 0
    assert mask_set.area.shape == (0,) and mask_set.bbox.shape == (0, 4)
    assert mask_set.decode().shape == (0, 4, 5)


def test_rle_size_must_match_image():
    other = MaskSet.from_binary("x", np.ones((1, 3, 3), dtype=bool))
    with pytest.raises(ValueError, match="does not match the image size"):
        MaskSet("y", 4, 4, other.rles, [1.0], [1.0])


def test_area_of_many_masks():
    # pycocotools' own `area` fails beyond 255 RLEs at once; MaskSet must not.
    masks = np.zeros((300, 20, 20), dtype=bool)
    for i in range(300):
        masks[i].flat[: i + 1] = True
    mask_set = MaskSet.from_binary("many", masks)
    np.testing.assert_array_equal(mask_set.area, np.arange(1, 301))
