from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alps.cli import main
from alps.figures import (
    legend_panel,
    no_ground_truth_panel,
    overlay_with_legend,
    side_by_side,
    write_figures,
)
from alps.paint import UNLABELED_COLOUR, colorize, legend_entries, make_palette, overlay


def _pl_dataset(root, names=("b", "a")):
    for name in names:
        (root / "img_dir" / "train").mkdir(parents=True, exist_ok=True)
        (root / "ann_dir" / "train").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 10, 3), 100, np.uint8)).save(root / "img_dir" / "train" / f"{name}.png")
        label = np.zeros((8, 10), np.uint8)
        label[:, 5:] = 255
        Image.fromarray(label).save(root / "ann_dir" / "train" / f"{name}.png")


def test_figures_have_three_panels_and_fixed_choice(tmp_path):
    _pl_dataset(tmp_path / "pl")
    gt = tmp_path / "gt"
    gt.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.ones((8, 10), np.uint8)).save(gt / f"{name}.png")
    paths = write_figures(
        tmp_path / "pl", tmp_path / "fig", gt_dir=gt, gt_palette=[[0, 0, 0], [9, 8, 7]], count=1, legend=False
    )
    assert [p.name for p in paths] == ["a.png"]  # first by name
    figure = np.asarray(Image.open(paths[0]))
    assert figure.shape == (8, 3 * 10 + 2 * 4, 3)
    np.testing.assert_array_equal(figure[0, 14], colorize(np.zeros((1, 1), np.uint8))[0, 0])
    np.testing.assert_array_equal(figure[0, 20], [0, 0, 0])  # unlabeled is black
    np.testing.assert_array_equal(figure[0, 30], [9, 8, 7])  # ground truth in its own palette


def test_cli_figures_grey_the_panel_of_an_image_without_ground_truth(tmp_path, caplog):
    """SAMRS-like: the ground-truth folder exists but one pseudo-labeled image has no label there."""
    _pl_dataset(tmp_path / "pl")
    gt = tmp_path / "gt"
    gt.mkdir()
    Image.fromarray(np.ones((8, 10), np.uint8)).save(gt / "a.png")
    with caplog.at_level("WARNING", logger="alps.figures"):
        status = main(["figures", str(tmp_path / "pl"), str(tmp_path / "fig"), "--gt-dir", str(gt)])
    assert status == 0
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"no ground truth {gt / 'b.png'} for {tmp_path / 'pl/ann_dir/train/b.png'}: its panel is left grey"
    ]
    with_gt, without = (np.asarray(Image.open(tmp_path / "fig" / n)) for n in ("a.png", "b.png"))
    assert with_gt.shape == without.shape  # the same layout: image | pseudo-label | ground truth | legend
    np.testing.assert_array_equal(with_gt[:, :24], without[:, :24])
    gt_panel = slice(2 * (10 + 4), 2 * (10 + 4) + 10)
    np.testing.assert_array_equal(with_gt[:8, gt_panel], colorize(np.ones((8, 10), np.uint8)))
    np.testing.assert_array_equal(without[:8, gt_panel], no_ground_truth_panel(8, 10))
    assert (without[:8, gt_panel] == 200).mean() > 0.5  # grey, with a caption where it fits


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pseudo-labels"):
        write_figures(tmp_path, tmp_path / "fig")
    with pytest.raises(ValueError, match="differ in height"):
        side_by_side([np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2, 3), np.uint8)])


def test_figures_legend_panel_lists_painted_clusters_and_unlabeled(tmp_path):
    _pl_dataset(tmp_path / "pl", names=("a",))
    (paths,) = write_figures(tmp_path / "pl", tmp_path / "fig", count=1)
    figure = np.asarray(Image.open(paths))
    # image | pseudo-label | legend; the legend (2 rows: cluster 0 and unlabeled) is taller than 8 px, so
    # the panels are padded with white below.
    assert figure.shape[1] == 2 * 10 + 2 * 4 + 150
    assert figure.shape[0] == 2 * 14 + 4
    assert (figure[8:, :10] == 255).all()
    legend = figure[:, 28:]
    swatch_colours = {tuple(legend[2 + row * 14 + 6, 10]) for row in range(2)}
    assert swatch_colours == {tuple(int(c) for c in make_palette()[0]), UNLABELED_COLOUR}


def test_legend_entries_shares_and_unlabeled():
    label = np.array([[0, 0, 3, 255]], np.uint8)
    entries = legend_entries(np.bincount(label.ravel(), minlength=256), k=4)
    assert [name for name, _, _ in entries] == ["cluster 0", "cluster 3", "unlabeled"]
    assert [share for _, _, share in entries] == [0.5, 0.25, 0.25]
    assert entries[-1][1] == UNLABELED_COLOUR
    assert entries[1][1] == tuple(int(c) for c in make_palette()[3])


def test_legend_panel_folds_rows_that_do_not_fit():
    entries = [(f"cluster {i}", (i, i, i), 0.01 * (i + 1)) for i in range(40)] + [
        ("unlabeled", (0, 0, 0), 0.1)
    ]
    panel = legend_panel(entries, height=60)  # room for 4 rows
    assert panel.shape[0] == 60
    # The two largest clusters, "38 more", and unlabeled.
    assert tuple(panel[2 + 0 * 14 + 6, 10]) == (38, 38, 38)
    assert tuple(panel[2 + 1 * 14 + 6, 10]) == (39, 39, 39)
    assert tuple(panel[2 + 3 * 14 + 6, 10]) == (0, 0, 0)


def test_overlay_marks_unlabeled_explicitly():
    image = np.full((4, 6, 3), 200, np.uint8)
    label = np.zeros((4, 6), np.uint8)
    label[:, 3:] = 255
    blended = overlay(image, label, alpha=0.5)
    np.testing.assert_array_equal(blended[0, 4], [100, 100, 100])  # darkened towards UNLABELED_COLOUR
    expected = np.round(0.5 * 200 + 0.5 * make_palette()[0].astype(np.float32)).astype(np.uint8)
    np.testing.assert_array_equal(blended[0, 0], expected)
    composed = overlay_with_legend(image, label, np.bincount(label.ravel(), minlength=256), k=2)
    assert composed.shape[1] == 6 + 4 + 150
    np.testing.assert_array_equal(composed[:4, :6], blended)
    with pytest.raises(ValueError, match="differ in size"):
        overlay(image, label[:2])
