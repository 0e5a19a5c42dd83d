from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from alps.evaluate import accumulate_confusion, evaluate_label_dirs, scores_from_confusion


def test_perfect_permuted_clusters_score_one():
    gt = np.array([[0, 0, 1, 1], [2, 2, 1, 1]])
    pred = np.array([[5, 5, 0, 0], [3, 3, 0, 0]])
    confusion = accumulate_confusion(pred, gt, num_clusters=6, num_classes=3)
    for method in ("hungarian", "majority"):
        scores = scores_from_confusion(confusion, method)
        assert scores["miou"] == 1.0 and scores["coverage"] == 1.0
    assert scores_from_confusion(confusion, "hungarian")["mapping"]["5"] == "0"


def test_unlabeled_pixels_count_as_misses_and_ignore_values_are_skipped():
    gt = np.array([[1, 1, 1, 1, 0, 0]])
    pred = np.array([[0, 0, 255, 255, 1, 1]])
    confusion = accumulate_confusion(pred, gt, num_clusters=2, num_classes=2, ignore_values=(0,))
    scores = scores_from_confusion(confusion, "hungarian")
    assert scores["pixels"] == 4 and scores["coverage"] == 0.5
    assert scores["per_class_iou"]["1"] == 0.5
    assert scores["per_class_iou"]["0"] is None  # no ground truth, no prediction mapped to it
    assert scores["accuracy_covered"] == 1.0


def test_hungarian_is_one_to_one_majority_many_to_one():
    gt = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 1, 1, 2, 2])
    confusion = accumulate_confusion(pred, gt, 3, 2)
    hungarian = scores_from_confusion(confusion, "hungarian")
    majority = scores_from_confusion(confusion, "majority")
    assert list(hungarian["mapping"].values()).count(None) == 1
    assert majority["miou"] == 1.0 and hungarian["miou"] < 1.0


def test_label_dirs(tmp_path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    Image.fromarray(np.array([[1, 1], [0, 255]], np.uint8)).save(tmp_path / "pred" / "a.png")
    Image.fromarray(np.array([[2, 2], [1, 1]], np.uint8)).save(tmp_path / "gt" / "a.png")
    report = evaluate_label_dirs(tmp_path / "pred", tmp_path / "gt", ignore_values=(0, 255))
    assert report["num_classes"] == 3 and report["num_clusters"] == 2 and report["images"] == 1
    assert report["hungarian"]["per_class_iou"] == {"1": 0.5, "2": 1.0}  # ignored 0 is not a class
    json.dumps(report)  # JSON-ready
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "pred" / "b.png")
    with pytest.raises(FileNotFoundError, match="ground truth .*b.png missing"):
        evaluate_label_dirs(tmp_path / "pred", tmp_path / "gt")


def test_out_of_range_values_are_reported():
    with pytest.raises(ValueError, match="class ids outside 0..1"):
        accumulate_confusion(np.zeros(3, int), np.array([0, 1, 2]), 1, 2)
    with pytest.raises(ValueError, match="shape"):
        accumulate_confusion(np.zeros(3, int), np.zeros(4, int), 1, 2)


def test_geotiff_labels_are_scored_and_an_empty_folder_is_an_error(tmp_path):
    """GeoTIFF pseudo-labels written by the project's own writer (alps.geo.georef.label_geotiff) against PNG
    ground truth of the same stem; a folder with no label file stops with a clear error."""
    from affine import Affine

    from alps.cli import main
    from alps.geo.georef import Georef, label_geotiff

    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    pred = np.array([[1, 1], [0, 255]], np.uint8)
    georef = Georef(crs="EPSG:32616", transform=Affine(0.5, 0, 1000, 0, -0.5, 2000))
    with label_geotiff(tmp_path / "pred" / "a.tif", 2, 2, georef, nodata=255) as dst:
        dst.write(pred, 1)
    Image.fromarray(np.array([[2, 2], [1, 1]], np.uint8)).save(tmp_path / "gt" / "a.png")
    out = tmp_path / "quality.json"
    assert (
        main(
            [
                "evaluate-labels",
                str(tmp_path / "pred"),
                str(tmp_path / "gt"),
                "--ignore",
                "0",
                "255",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["images"] == 1 and report["hungarian"]["per_class_iou"] == {"1": 0.5, "2": 1.0}

    (tmp_path / "none").mkdir()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "none" / "a.jpg")
    with pytest.raises(FileNotFoundError, match=r"no pseudo-label in .*none: expected .*\.png, \.tif"):
        evaluate_label_dirs(tmp_path / "none", tmp_path / "gt")
