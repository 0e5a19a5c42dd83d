"""Potsdam converter: ISPRS-style archives made from the real mmseg-converted crop, checked against mmseg."""

from __future__ import annotations

import importlib.util
import json
import types
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from miniature import isprs_colours, potsdam_crop, potsdam_tiles
from PIL import Image
from raw_layouts import potsdam as make_raw

from alps.datasets import DatasetSourceError, prepare_dataset
from alps.datasets.potsdam import (
    TRAIN_TILES,
    VAL_TILES,
    mmseg_clip_boxes,
    prepare_potsdam,
)
from alps.io.manifest import read_manifest

from conftest import shared_data

# The real crop is the top-left 512 px of tile 2_10; the test georeferences it (Potsdam is in UTM 33N, 5 cm).
TRANSFORM = Affine(0.05, 0.0, 366000.0, 0.0, -0.05, 5808000.0)
EXPECTED = {"train": ["2_10_0_0_512_512"], "val": ["2_13_0_0_512_512", "2_13_300_0_812_512"]}


def _real_crop() -> tuple[np.ndarray, np.ndarray]:
    return potsdam_crop(shared_data("potsdam").parent)


def _to_isprs_colours(index: np.ndarray) -> np.ndarray:
    return isprs_colours(index)


def _tif(path: Path, array: np.ndarray, transform: Affine | None = TRANSFORM) -> bytes:
    geo = {"crs": "EPSG:32633", "transform": transform} if transform is not None else {}
    with rasterio.open(
        path, "w", driver="GTiff", height=array.shape[0], width=array.shape[1], count=3, dtype="uint8", **geo
    ) as dst:
        dst.write(np.moveaxis(array, -1, 0))
    return path.read_bytes()


def tiles() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Tile 2_10 (train) = the real crop; tile 2_13 (val) = the crop widened to 812 px by a mirrored strip."""
    return potsdam_tiles(shared_data("potsdam").parent)


def _mmseg_tools() -> Path:
    """mmsegmentation's dataset converter scripts, shipped inside the installed package (not imported)."""
    spec = importlib.util.find_spec("mmseg")
    if spec is None or spec.origin is None:
        pytest.skip("mmsegmentation is not installed")
    return Path(spec.origin).parent / ".mim" / "tools" / "dataset_converters"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = make_raw(tmp_path_factory.mktemp("potsdam") / "raw")
    return prepare_dataset("potsdam", raw, raw.parent / "out").parent


def test_clip_boxes_and_full_dataset_counts() -> None:
    boxes = mmseg_clip_boxes(6000, 6000)
    assert len(boxes) == 144 and len(set(boxes)) == 144
    starts = sorted({b[0] for b in boxes})
    assert starts == [*range(0, 5121, 512), 5488]  # a 512 px grid plus the last column flush with the border
    assert all(x1 - x0 == 512 and y1 - y0 == 512 for x0, y0, x1, y1 in boxes)
    assert len(TRAIN_TILES) * len(boxes) == 3456 and len(VAL_TILES) * len(boxes) == 2016
    assert mmseg_clip_boxes(512, 812) == [(0, 0, 512, 512), (300, 0, 812, 512)]
    assert len(mmseg_clip_boxes(512, 512, 256, 128)) == 4


def test_clips_labels_and_split(built: Path) -> None:
    manifest = read_manifest(built / "manifest.csv")
    for split, names in EXPECTED.items():
        assert sorted(manifest.loc[manifest["split"] == split, "image_id"]) == names
    image, index = _real_crop()
    # Tile 2_10's only clip is exactly the mmseg-converted sample it was made from.
    ours = built / "img_dir" / "train" / "2_10_0_0_512_512.png"
    assert ours.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.asarray(Image.open(ours)), image)
    np.testing.assert_array_equal(np.asarray(Image.open(built / "ann_dir/train/2_10_0_0_512_512.png")), index)
    shifted = np.asarray(Image.open(built / "ann_dir/val/2_13_300_0_812_512.png"))
    wide_index = tiles()["2_13"][1]
    np.testing.assert_array_equal(shifted, wide_index[:, 300:812])
    card = json.loads((built / "dataset_card.json").read_text())
    assert card["splits"]["train"]["tiles"] == ["2_10"] and card["splits"]["val"]["clips"] == 2
    assert card["splits"]["train"]["value_pixels"]["car"] == int((index == 5).sum()) == 7841
    assert card["reduce_zero_label"] is True and card["unknown_colour_pixels"] == {}
    classes = json.loads((built / "classes.json").read_text())
    assert classes["classes"] == [
        "impervious_surface",
        "building",
        "low_vegetation",
        "tree",
        "car",
        "clutter",
    ]
    assert classes["palette"][1] == [0, 0, 255]  # building, as in mmseg's PotsdamDataset


def test_georeferencing(built: Path) -> None:
    row = read_manifest(built / "manifest.csv").set_index("image_id").loc["2_13_300_0_812_512"]
    assert row.crs == "EPSG:32633"
    a, b, c, d, e, f = (float(v) for v in row["transform"].split(","))
    assert (a, b, d, e) == (0.05, 0.0, 0.0, -0.05)
    assert c == pytest.approx(366000.0 + 300 * 0.05) and f == 5808000.0
    assert (row.window_x, row.window_y, row.window_w, row.window_h) == (300, 0, 512, 512)


def test_same_clips_as_mmseg(built: Path, tmp_path: Path) -> None:
    path = _mmseg_tools() / "potsdam.py"
    if not path.is_file():
        pytest.skip("mmsegmentation's Potsdam converter is not installed")
    pytest.importorskip("mmcv")
    spec = importlib.util.spec_from_file_location("mmseg_potsdam_converter", path)
    assert spec is not None and spec.loader is not None
    mmseg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mmseg)
    args = types.SimpleNamespace(clip_size=512, stride_size=256)
    for tile, (image, index) in tiles().items():
        split = "train" if tile in TRAIN_TILES else "val"
        for kind, array in (("img", image), ("ann", _to_isprs_colours(index))):
            out = tmp_path / f"{kind}_dir" / split
            out.mkdir(parents=True, exist_ok=True)
            name = f"top_potsdam_{tile}_{'RGB' if kind == 'img' else 'label_noBoundary'}.tif"
            _tif(tmp_path / name, array)
            mmseg.clip_big_image(str(tmp_path / name), str(out), args, to_label=kind == "ann")
    for split, names in EXPECTED.items():
        for kind in ("img_dir", "ann_dir"):
            theirs = sorted(p.stem for p in (tmp_path / kind / split).iterdir())
            assert theirs == names
            for name in names:
                np.testing.assert_array_equal(
                    np.asarray(Image.open(built / kind / split / f"{name}.png")),
                    np.asarray(Image.open(tmp_path / kind / split / f"{name}.png")),
                )


# ---------------------------------------------------------------------------------------- errors


def test_unknown_colour_strict_and_lenient(tmp_path: Path) -> None:
    image, index = _real_crop()
    colours = _to_isprs_colours(index)
    colours[5, 7] = (250, 250, 250)
    raw = tmp_path / "raw"
    raw.mkdir()
    # Extracted tiles (no zip) are accepted too.
    _tif(raw / "top_potsdam_2_10_RGB.tif", image)
    _tif(raw / "top_potsdam_2_10_label_noBoundary.tif", colours)
    with pytest.raises(
        DatasetSourceError,
        match=r"top_potsdam_2_10_label_noBoundary\.tif: label colour.*\(250, 250, 250\) x 1 px",
    ):
        prepare_potsdam(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    prepare_potsdam(raw, tmp_path / "out", strict_palette=False)
    label = np.asarray(Image.open(tmp_path / "out/ann_dir/train/2_10_0_0_512_512.png"))
    assert label[5, 7] == 0  # mmseg's silent mapping, made explicit
    card = json.loads((tmp_path / "out" / "dataset_card.json").read_text())
    assert card["unknown_colour_pixels"] == {"2_10": 1}


def test_size_mismatch_truncated_zip_and_skip(tmp_path: Path) -> None:
    image, index = _real_crop()
    raw = make_raw(tmp_path / "raw", {"2_10": (image, index), "2_13": (image, index[:-2])})
    with pytest.raises(
        DatasetSourceError, match=r"label is 512x510 px but its image .*top_potsdam_2_13_RGB\.tif"
    ):
        prepare_potsdam(raw, tmp_path / "out")
    manifest = read_manifest(prepare_potsdam(raw, tmp_path / "out", on_error="skip"))
    assert manifest["image_id"].tolist() == ["2_10_0_0_512_512"]
    skipped = json.loads((tmp_path / "out" / "skipped.json").read_text())["skipped"]
    assert [s["item"].rsplit("/", 1)[-1] for s in skipped] == ["top_potsdam_2_13_RGB.tif"]

    labels = raw / "5_Labels_all_noBoundary.zip"
    labels.write_bytes(labels.read_bytes()[:1000])
    with pytest.raises(DatasetSourceError, match=r"5_Labels_all_noBoundary\.zip: not a readable zip archive"):
        prepare_potsdam(raw, tmp_path / "out")
    # The previous dataset is untouched by the failed run, and no temporary folder is left behind.
    assert read_manifest(tmp_path / "out" / "manifest.csv")["image_id"].tolist() == ["2_10_0_0_512_512"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_no_tiles(tmp_path: Path) -> None:
    with pytest.raises(DatasetSourceError, match=r"no top_potsdam_<i>_<j>_RGB\.tif found"):
        prepare_potsdam(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="labels must be one of"):
        prepare_potsdam(tmp_path, tmp_path / "out", labels="eroded")
