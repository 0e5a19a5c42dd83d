"""NWPU VHR-10 converter: COCO polygons rasterised as the shipped semantic labels, a fixed seeded split."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alps.datasets._layout import DatasetSourceError
from alps.datasets.nwpu import CLASSES, prepare_nwpu, rasterize, stratified_split
from alps.io.manifest import read_manifest

from conftest import shared_data


def _raw_subset(tmp_path: Path, n: int) -> Path:
    """The first ``n`` labeled NWPU images (linked) with their COCO annotations, as a raw folder."""
    source = shared_data("nwpu_vhr10_train")
    data = json.loads((source / "instances_train.json").read_text())
    images = sorted(data["images"], key=lambda i: i["file_name"])[:n]
    ids = {i["id"] for i in images}
    data["images"] = images
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "instances_train.json").write_text(json.dumps(data))
    for image in images:
        os.symlink(source / "images" / image["file_name"], raw / "images" / image["file_name"])
    return raw


def test_labels_match_the_shipped_semantic_rasters(tmp_path: Path) -> None:
    raw = _raw_subset(tmp_path, 8)
    manifest = prepare_nwpu(raw, tmp_path / "nwpu")
    rows = read_manifest(manifest)
    assert len(rows) == 8 and set(rows["split"]) <= {"train", "val"}
    semantic = shared_data("nwpu_vhr10_train", "semantic")
    for row in rows.itertuples():
        ours = np.asarray(Image.open(tmp_path / "nwpu" / row.label_path))
        shipped = np.asarray(Image.open(semantic / f"{row.image_id}.png"))
        # Two rasterisers of the same polygons (pycocotools here, PIL there) differ on boundary pixels only.
        assert ours.shape == shipped.shape and (ours == shipped).mean() > 0.99
        assert np.asarray(Image.open(tmp_path / "nwpu" / row.image_path)).shape == (*ours.shape, 3)
    classes = json.loads((tmp_path / "nwpu" / "classes.json").read_text())["classes"]
    assert classes == list(CLASSES) and classes[0] == "background"


def test_the_split_is_fixed_by_its_seed_and_keeps_rare_classes_on_both_sides() -> None:
    present = {f"a{i}": {1} for i in range(30)} | {f"t{i}": {1, 3} for i in range(3)} | {"v0": {10}}
    first, again = stratified_split(present, 1 / 3, 0), stratified_split(present, 1 / 3, 0)
    assert first == again
    assert stratified_split(present, 1 / 3, 1) != first
    tanks = [first[f"t{i}"] for i in range(3)]
    assert tanks.count("val") == 1 and tanks.count("train") == 2
    assert first["v0"] == "train"  # a class in one image cannot be on both sides: it is trained on
    assert sum(v == "val" for v in first.values()) == 10 + 1


def test_larger_instances_are_painted_first_so_small_ones_stay_visible() -> None:
    big = {"id": 2, "category_id": 7, "segmentation": [[0, 0, 20, 0, 20, 20, 0, 20]]}
    small = {"id": 1, "category_id": 10, "segmentation": [[5, 5, 9, 5, 9, 9, 5, 9]]}
    label = rasterize([small, big], 24, 24)
    assert label[7, 7] == 10 and label[15, 15] == 7 and label[22, 22] == 0


def test_a_category_outside_the_ten_classes_is_refused() -> None:
    with pytest.raises(DatasetSourceError, match="category_id 11"):
        rasterize([{"id": 1, "category_id": 11, "segmentation": [[0, 0, 4, 0, 4, 4]]}], 8, 8)


def test_a_folder_without_an_annotation_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetSourceError, match=r"instances_\*\.json"):
        prepare_nwpu(tmp_path, tmp_path / "out")
