from __future__ import annotations

import numpy as np

from alps.io import read_image
from alps.masks import MaskGenerator
from alps.masks.superpixel import FelzenszwalbMaskGenerator, SlicMaskGenerator

from conftest import shared_data


def _check_partition(mask_set, shape):
    masks = mask_set.decode()
    assert masks.shape[1:] == shape
    # A partition: every pixel lies in exactly one mask.
    np.testing.assert_array_equal(masks.sum(axis=0), np.ones(shape))


def test_felzenszwalb_finds_the_rectangles(blocky_image):
    generator = FelzenszwalbMaskGenerator(scale=100, sigma=0.0, min_size=20)
    assert isinstance(generator, MaskGenerator)
    mask_set = generator.generate(blocky_image, "blocks")
    _check_partition(mask_set, blocky_image.shape[:2])
    assert sorted(mask_set.area.tolist()) == sorted([30 * 40, 40 * 60, 10 * 20, 96 * 128 - 1200 - 2400 - 200])


def test_slic_partition_and_determinism(blocky_image):
    generator = SlicMaskGenerator(n_segments=20)
    first = generator.generate(blocky_image, "b")
    second = generator.generate(blocky_image, "b")
    _check_partition(first, blocky_image.shape[:2])
    assert len(first) > 4
    assert [r["counts"] for r in first.rles] == [r["counts"] for r in second.rles]


def test_felzenszwalb_on_real_potsdam_tile():
    image = read_image(shared_data("potsdam", "img_dir", "2_10_0_0_512_512.png"))
    mask_set = FelzenszwalbMaskGenerator().generate(image, "potsdam")
    _check_partition(mask_set, image.shape[:2])
    assert 10 < len(mask_set) < 5000
