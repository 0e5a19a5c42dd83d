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


def test_label_map_rles_equal_pycocotools_encode_on_real_segments():
    """Run-based RLEs are byte-identical to encoding each segment (felzenszwalb on Vaihingen IRRG)."""
    from skimage.segmentation import felzenszwalb

    from alps.masks.base import encode_masks
    from alps.masks.superpixel import label_map_rles

    image = read_image(shared_data("vaihingen", "img_dir", "area1_0_0_512_512.png"))[:200, :150]
    labels = felzenszwalb(image, scale=100, sigma=0.8, min_size=20)
    values, rles = label_map_rles(labels)
    np.testing.assert_array_equal(values, np.unique(labels))
    expected = encode_masks(labels[None] == values[:, None, None])
    assert [r["counts"] for r in rles] == [r["counts"] for r in expected]
    assert all(r["size"] == [200, 150] for r in rles)


def test_superpixel_masks_are_encoded_one_segment_at_a_time():
    """2500 segments at 1000^2: an N x H x W stack would take 2.5 GB; peak allocation stays tiny."""
    import tracemalloc

    from alps.masks.superpixel import _label_map_to_maskset

    labels = (np.arange(1000)[:, None] // 20) * 50 + np.arange(1000)[None, :] // 20
    tracemalloc.start()
    mask_set = _label_map_to_maskset(labels, "grid")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(mask_set) == 2500 and (mask_set.area == 400).all()
    assert peak < 120e6, f"peak {peak / 1e6:.0f} MB"
