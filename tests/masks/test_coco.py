from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from alps.io import read_image
from alps.masks.coco import CocoMaskSource

from conftest import shared_data


def _coco(tmp_path, annotations, width=20, height=10):
    path = tmp_path / "coco.json"
    path.write_text(
        json.dumps(
            {
                "images": [{"id": 7, "file_name": "dir/img.jpg", "width": width, "height": height}],
                "annotations": annotations,
                "categories": [{"id": 1, "name": "thing"}],
            }
        )
    )
    return path


def test_polygon_annotations_become_masks_without_classes(tmp_path):
    square = [[2, 2, 8, 2, 8, 6, 2, 6]]
    path = _coco(
        tmp_path,
        [
            {"id": 2, "image_id": 7, "category_id": 1, "segmentation": square, "iscrowd": 0},
            {"id": 1, "image_id": 7, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]},
        ],
    )
    source = CocoMaskSource(path)
    assert source.has_image("img") and not source.has_image("other")
    mask_set = source.generate(np.zeros((10, 20, 3), np.uint8), "img")
    assert len(mask_set) == 2 and (mask_set.height, mask_set.width) == (10, 20)
    # Annotations in id order; every score is 1 (no model confidence for oracle masks).
    assert mask_set.area[0] < mask_set.area[1]
    np.testing.assert_array_equal(mask_set.predicted_iou, [1, 1])


def test_size_mismatch_and_unknown_image(tmp_path):
    source = CocoMaskSource(_coco(tmp_path, []))
    with pytest.raises(ValueError, match="is 20x10 there but 5x5 on disk"):
        source.generate(np.zeros((5, 5, 3), np.uint8), "img")
    with pytest.raises(KeyError, match="no image with file stem 'zzz'"):
        source.generate(np.zeros((10, 20, 3), np.uint8), "zzz")
    assert len(source.generate(np.zeros((10, 20, 3), np.uint8), "img")) == 0


def test_bad_json_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="--coco-json"):
        CocoMaskSource(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        CocoMaskSource(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{}")
    with pytest.raises(ValueError, match="missing keys"):
        CocoMaskSource(tmp_path / "y.json")


def test_real_nwpu_polygons_match_the_derived_semantic_png():
    root = shared_data("nwpu_vhr10_train")
    source = CocoMaskSource(root / "instances_train.json")
    image = read_image(root / "images" / "002.jpg")
    mask_set = source.generate(image, "002")
    assert len(mask_set) > 0
    semantic = np.asarray(Image.open(root / "semantic" / "002.png"))
    union = mask_set.decode().any(axis=0)
    # The derived PNG was rasterised from the same polygons (with PIL): the object pixels agree closely.
    agreement = (union == (semantic > 0)).mean()
    assert agreement > 0.98
