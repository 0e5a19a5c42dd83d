from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alps.figures import side_by_side, write_figures
from alps.paint import colorize


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
        tmp_path / "pl", tmp_path / "fig", gt_dir=gt, gt_palette=[[0, 0, 0], [9, 8, 7]], count=1
    )
    assert [p.name for p in paths] == ["a.png"]  # first by name
    figure = np.asarray(Image.open(paths[0]))
    assert figure.shape == (8, 3 * 10 + 2 * 4, 3)
    np.testing.assert_array_equal(figure[0, 14], colorize(np.zeros((1, 1), np.uint8))[0, 0])
    np.testing.assert_array_equal(figure[0, 20], [0, 0, 0])  # unlabeled is black
    np.testing.assert_array_equal(figure[0, 30], [9, 8, 7])  # ground truth in its own palette


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pseudo-labels"):
        write_figures(tmp_path, tmp_path / "fig")
    with pytest.raises(ValueError, match="differ in height"):
        side_by_side([np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2, 3), np.uint8)])
