"""Folder converter (a user's own images, GeoTIFF tiling and georeferencing) and the converter registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alps.datasets import CONVERTERS, DatasetSourceError, converter_options, prepare_dataset
from alps.datasets.folder import prepare_folder
from alps.io.images import read_image
from alps.io.manifest import read_manifest
from alps.tiling import tile_windows

from conftest import shared_data

GEOTIFF = ("spacenet_building", "sample_geotiff.tif")  # 900 x 900, 1 band uint16, EPSG:32616, 0.5 m
ORIGIN = (733601.0, 3725139.0)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copyfile(shared_data(*GEOTIFF), folder / "sample_geotiff.tif")
    shutil.copyfile(shared_data("deepglobe_thumb", "6399_sat.jpg"), folder / "deepglobe_6399.jpg")
    return folder


def test_tile_windows_hand_computed() -> None:
    # 900 px, tiles of 512 every 384 px: starts 0, 384, and 768 shifted back to 388.
    assert [w[0] for w in tile_windows(512, 900, 512, 128)] == [0, 384, 388]
    assert tile_windows(300, 200, 512, 128) == [(0, 0, 200, 300)]  # fits: kept whole
    # One side longer than a tile: tiled along it only, no padding.
    assert tile_windows(300, 1000, 512, 0) == [(0, 0, 512, 300), (488, 0, 512, 300)]
    with pytest.raises(ValueError, match="overlap"):
        tile_windows(10, 10, 512, 512)


def test_geotiff_tiles_and_transforms(raw: Path, tmp_path: Path) -> None:
    manifest = read_manifest(prepare_folder(raw, tmp_path / "out", tile_size=512, overlap=128, split="val"))
    assert set(manifest["split"]) == {"val"}
    tiles = manifest[manifest["source"] == "sample_geotiff.tif"].set_index("image_id")
    assert len(tiles) == 9
    assert "sample_geotiff_384_896_388_900" in tiles.index
    row = tiles.loc["sample_geotiff_384_896_388_900"]
    assert (row.window_x, row.window_y, row.window_w, row.window_h) == (388, 384, 512, 512)
    assert row.crs == "EPSG:32616"
    a, b, c, d, e, f = (float(v) for v in row["transform"].split(","))
    assert (a, b, d, e) == (0.5, 0.0, 0.0, -0.5)
    assert (c, f) == (ORIGIN[0] + 388 * 0.5, ORIGIN[1] - 384 * 0.5)
    # Pixels: the whole image stretched once (2-98 %, one band repeated), then cut.
    whole = read_image(raw / "sample_geotiff.tif")
    tile = np.asarray(Image.open(tmp_path / "out" / row.image_path))
    np.testing.assert_array_equal(tile, whole[384:896, 388:900])
    assert tile.dtype == np.uint8 and tile.shape == (512, 512, 3)
    # A small plain JPEG is kept whole, without georeferencing or label.
    jpeg = manifest.set_index("image_id").loc["deepglobe_6399"]
    assert (jpeg.crs, jpeg["transform"], jpeg.label_path) == ("", "", "")
    with Image.open(raw / "deepglobe_6399.jpg") as im:
        assert (jpeg.width, jpeg.height) == im.size
    card = json.loads((tmp_path / "out" / "dataset_card.json").read_text())
    assert card["dataset"] == "alps-folder" and card["tiles"]["count"] == 10
    geo = next(s for s in card["source"]["images"] if s["file"] == "sample_geotiff.tif")
    assert geo["dtype"] == "uint16" and geo["bands"] == 1 and geo["stretched"] is True


def test_band_selection_and_bad_band(raw: Path, tmp_path: Path) -> None:
    (raw / "deepglobe_6399.jpg").unlink()
    manifest = read_manifest(prepare_folder(raw, tmp_path / "out", bands=[1], percentiles=(0.0, 100.0)))
    assert manifest["image_id"].tolist() == ["sample_geotiff"]  # 900 px fits the default 1024 tile
    with pytest.raises(DatasetSourceError, match=r"sample_geotiff\.tif: band\(s\) \[2\] do not exist"):
        prepare_folder(raw, tmp_path / "out2", bands=[1, 2, 1])


def test_unreadable_image_raise_or_skip(raw: Path, tmp_path: Path) -> None:
    (raw / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DatasetSourceError, match=r"broken\.png: cannot decode image"):
        prepare_folder(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    manifest = read_manifest(prepare_folder(raw, tmp_path / "out", on_error="skip"))
    assert "broken" not in set(manifest["image_id"])
    skipped = json.loads((tmp_path / "out" / "skipped.json").read_text())["skipped"]
    assert [Path(s["item"]).name for s in skipped] == ["broken.png"]


def test_duplicate_stems_and_empty_folder(raw: Path, tmp_path: Path) -> None:
    shutil.copyfile(raw / "deepglobe_6399.jpg", raw / "deepglobe_6399.png")
    with pytest.raises(DatasetSourceError, match="image ids .* must be unique"):
        prepare_folder(raw, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetSourceError, match="no image"):
        prepare_folder(tmp_path / "empty", tmp_path / "out")


def test_recursive_names(raw: Path, tmp_path: Path) -> None:
    (raw / "site_a").mkdir()
    shutil.move(raw / "deepglobe_6399.jpg", raw / "site_a" / "deepglobe_6399.jpg")
    flat = read_manifest(prepare_folder(raw, tmp_path / "flat"))
    assert flat["image_id"].tolist() == ["sample_geotiff"]
    nested = read_manifest(prepare_folder(raw, tmp_path / "nested", recursive=True))
    assert sorted(nested["image_id"]) == ["sample_geotiff", "site_a__deepglobe_6399"]


# ---------------------------------------------------------------------------------------- registry


def test_registry(raw: Path, tmp_path: Path) -> None:
    assert set(CONVERTERS) == {"demo", "isaid", "potsdam", "samrs", "atlas", "folder"}
    with pytest.raises(ValueError, match="unknown dataset 'isprs'; choose one of: demo, isaid, potsdam"):
        prepare_dataset("isprs", raw, tmp_path / "out")
    with pytest.raises(ValueError, match=r"takes no option\(s\) \['tilesize'\]; its options: bands"):
        prepare_dataset("folder", raw, tmp_path / "out", tilesize=256)
    with pytest.raises(ValueError, match="needs raw_dir"):
        prepare_dataset("potsdam", None, tmp_path / "out")
    assert converter_options("isaid")["patch_size"] == 896
    assert converter_options("demo")["on_error"] == "raise"
    manifest = prepare_dataset("folder", raw, tmp_path / "out", tile_size=2048, on_error="skip")
    assert manifest == (tmp_path / "out" / "manifest.csv").absolute()
    # Another converter's dataset is not replaced by this one.
    with pytest.raises(FileExistsError, match="refusing to replace"):
        prepare_dataset("isaid", raw, tmp_path / "out")
