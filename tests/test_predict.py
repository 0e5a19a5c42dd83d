"""``alps predict``: a model's labels of scenes of any size, tiled and mosaicked as ``alps label`` does.

The model is SegFormer-B0 with seeded random weights, written as a config + checkpoint pair the way a work
dir holds them (``configs.inference_config``): training is tested elsewhere (tests/test_journey.py runs a
trained one); here what matters is that ``alps predict`` gives each pixel the class mmseg's
``inference_model`` gives it in its nearest tile, keeps no-data unlabeled, and writes rasters GIS tools read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

from alps.cli import main
from alps.geo.scene import SceneOptions, crop_to_cell, mosaic_cells, open_scene
from alps.train.configs import DatasetSpec, build_config, config_text, inference_config
from alps.train.inference import PlainConfigError, load_segmentor, read_plain_config

from conftest import shared_data
from gdal_c import gdal_label_info
from test_geo import SPACENET, crop_geotiff

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ["soil", "tree", "roof"]
PALETTE = [[10, 20, 30], [40, 160, 60], [200, 80, 90]]
TILES = ["--tile-size", "64", "--overlap", "16", "--batch-size", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(config.py, model.pth)`` of a 3-class SegFormer-B0 at 64 px, seeded random weights."""
    from mmseg.apis import init_model

    root = tmp_path_factory.mktemp("model")
    palette = tuple(tuple(c) for c in PALETTE)
    spec = DatasetSpec("folder", str(root), tuple(CLASSES), palette, (64, 64), (64, 64))  # type: ignore[arg-type]
    config = inference_config(build_config("segformer-b0", spec, max_iters=1, num_workers=0, device="cpu"))
    (root / "config.py").write_text(config_text(config))
    torch.manual_seed(0)
    network = init_model(config, None, device="cpu")
    meta = {"dataset_meta": {"classes": CLASSES, "palette": PALETTE}}
    torch.save({"state_dict": network.state_dict(), "meta": meta}, root / "model.pth")
    return root / "config.py", root / "model.pth"


def test_predict_mosaics_mmseg_tile_labels_by_nearest_centre_in_the_scene_crs(model, tmp_path):
    config, checkpoint = model
    scene_path = crop_geotiff(
        shared_data(*SPACENET), tmp_path / "in" / "site.tif", 100, 100, 160, nodata_rows=24
    )
    Image.open(shared_data("potsdam", "img_dir", "2_10_0_0_512_512.png")).crop((0, 0, 96, 80)).save(
        tmp_path / "in" / "plain.png"
    )
    out = tmp_path / "out"
    assert (
        main(
            ["predict", str(config), str(tmp_path / "in"), str(out), "--checkpoint", str(checkpoint), *TILES]
        )
        == 0
    )

    # Brute force: each window through mmseg's inference_model, each pixel from its nearest tile centre.
    segmentor = load_segmentor(config, checkpoint, device="cpu")
    scene = open_scene("site", scene_path, None, SceneOptions(64, 16))
    expected = np.full((160, 160), 255, np.uint8)
    for window, cell in mosaic_cells(scene.windows, 160, 160).items():
        tile, valid = scene.read_tile_with_valid(window, None)
        label = segmentor.predict([tile])[0]
        if valid is not None:
            label[~valid] = 255
        x, y, w, h = cell
        expected[y : y + h, x : x + w] = crop_to_cell(label, window, cell)
    with rasterio.open(out / "labels" / "site.tif") as src, rasterio.open(scene_path) as source:
        predicted = src.read(1)
        assert src.crs == source.crs and src.transform == source.transform and src.nodata == 255
        assert src.colormap(1)[0][:3] == tuple(PALETTE[0])
    np.testing.assert_array_equal(predicted, expected)
    assert (predicted[-24:] == 255).all() and set(np.unique(predicted[:-24])) <= {0, 1, 2}
    assert gdal_label_info(out / "labels" / "site.tif")["categories"] == CLASSES

    # A plain PNG: a PNG label of its size, its classes named in the sidecar and classes.json.
    plain = np.asarray(Image.open(out / "labels" / "plain.png"))
    assert plain.shape == (80, 96) and set(np.unique(plain)) <= {0, 1, 2}
    assert json.loads((out / "classes.json").read_text()) == {"classes": CLASSES, "palette": PALETTE}
    assert {p.name for p in (out / "vis").iterdir()} == {
        "plain.png",
        "plain.overlay.png",
        "site.png",
        "site.overlay.png",
    }
    card = json.loads((out / "predict_card.json").read_text())
    assert card["tiling"] == {"tile_size": 64, "overlap": 16, "mosaic": "nearest tile centre"}
    assert card["label_files"] == ["plain.png", "site.tif"] and card["classes"] == CLASSES
    assert sum(card["class_pixels"]) == int((predicted != 255).sum() + (plain != 255).sum())

    # The output folder is the command's own: a file it did not write stops a rerun, named.
    (out / "labels" / "notes.txt").write_text("mine")
    args = ["predict", str(config), str(tmp_path / "in"), str(out), "--checkpoint", str(checkpoint), *TILES]
    assert main(args) == 2


def test_configs_that_would_run_code_are_refused_unless_trusted(model, tmp_path, capsys):
    config, checkpoint = model
    assert read_plain_config(config)["model"]["decode_head"]["num_classes"] == 3
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n" + config.read_text())
    inherit = tmp_path / "inherit.py"
    inherit.write_text("_base_ = ['other.py']\n")
    for path in (evil, inherit):
        with pytest.raises(PlainConfigError):
            read_plain_config(path)
    images = tmp_path / "in"
    images.mkdir()
    Image.new("RGB", (64, 64)).save(images / "a.png")
    argv = ["predict", str(evil), str(images), str(tmp_path / "out"), "--checkpoint", str(checkpoint), *TILES]
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert "--trust-config" in line and "\n" not in line and not (tmp_path / "ran").exists()
    assert main([*argv, "--trust-config"]) == 0 and (tmp_path / "ran").exists()


def test_a_work_dir_without_an_inference_config_is_named(tmp_path, capsys):
    (tmp_path / "work").mkdir()
    images = tmp_path / "in"
    images.mkdir()
    Image.new("RGB", (64, 64)).save(images / "a.png")
    assert main(["predict", str(tmp_path / "work"), str(images), str(tmp_path / "out")]) == 2
    assert "has no config.py" in capsys.readouterr().err
