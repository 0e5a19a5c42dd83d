"""The labeling stages end to end on small real images, through the library and through the CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from alps.cli import main
from alps.cluster import ClusterConfig, ClusterModel
from alps.features.encoders import build_encoder
from alps.geo.georef import raster_georef
from alps.io import read_image
from alps.masks.shards import read_mask_shard
from alps.pipeline import (
    build_mask_generator,
    images_from_source,
    label,
    run_cluster,
    run_features,
    run_masks,
    run_paint,
    select_shard,
    shard_count,
)

from conftest import shared_data


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Six 128x160 crops of the real Potsdam tile, and one grey JPEG."""
    source = np.asarray(Image.open(shared_data("potsdam", "img_dir", "2_10_0_0_512_512.png")).convert("RGB"))
    folder = tmp_path_factory.mktemp("images")
    for i in range(6):
        y, x = (i // 3) * 200, (i % 3) * 160
        Image.fromarray(source[y : y + 128, x : x + 160]).save(folder / f"tile_{i}.png")
    Image.fromarray(source[300:400, 300:420].mean(axis=2).astype(np.uint8)).save(folder / "grey.jpg")
    return folder


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


def test_shard_selection():
    items = list(range(10))
    assert shard_count(10, 4) == 3 and shard_count(0, 4) == 1
    assert select_shard(items, 2, 4) == [8, 9]
    with pytest.raises(ValueError, match="10 images make 3 shard"):
        select_shard(items, 3, 4)


def test_label_end_to_end_is_deterministic(image_dir, tmp_path):
    items = images_from_source(image_dir)
    assert items[0].image_id == "grey"
    cards = []
    for run in ("a", "b"):
        generator = build_mask_generator("felzenszwalb", {"scale": 100, "min_size": 30})
        cards.append(
            label(
                items,
                tmp_path / run,
                generator,
                build_encoder("efficientnet-lite0"),
                ClusterConfig(k=4, batch_size=256, seed=1),
                area_threshold=0.3,
                binary=True,
            )
        )
    first, second = tmp_path / "a", tmp_path / "b"
    assert _digest(first / "labels") == _digest(second / "labels")
    assert len(_digest(first / "labels")) == 7
    card = cards[0]
    assert card["k"] == 4 and 0 < card["masks_kept"] < card["masks"]
    for image_id in ("tile_0", "grey"):
        label_png = np.asarray(Image.open(first / "labels" / f"{image_id}.png"))
        assert label_png.dtype == np.uint8
        assert set(np.unique(label_png)) <= {0, 1, 2, 3, 255}
        vis = np.asarray(Image.open(first / "vis" / f"{image_id}.png"))
        assert vis.shape == (*label_png.shape, 3)
        binary = np.asarray(Image.open(first / "binary" / f"{image_id}.png"))
        np.testing.assert_array_equal(binary == 1, label_png != 255)
    assert (first / "kmeans.npz").is_file() and json.loads((first / "label_card.json").read_text())


def test_sharded_stages_equal_the_single_process_run(image_dir, tmp_path):
    items = images_from_source(image_dir)
    generator = build_mask_generator("felzenszwalb", {"scale": 100, "min_size": 30})
    encoder = build_encoder("efficientnet-lite0")
    config = ClusterConfig(k=4, batch_size=256, seed=1)
    shards = []
    for index in range(shard_count(len(items), 3)):
        part = select_shard(items, index, 3)
        run_masks(part, generator, tmp_path / f"m{index}.parquet")
        run_features(part, tmp_path / f"m{index}.parquet", encoder, tmp_path / f"f{index}.npz")
        shards.append(index)
    assert sum(len(read_mask_shard(tmp_path / f"m{i}.parquet")) for i in shards) == len(items)
    model = run_cluster([tmp_path / f"f{i}.npz" for i in shards], config, 0.3, tmp_path / "km.npz")
    assert model.k == 4
    for index in shards:
        stats = run_paint(
            tmp_path / f"m{index}.parquet",
            tmp_path / f"f{index}.npz",
            tmp_path / "km.npz",
            tmp_path / f"paint{index}",  # one folder per shard, replaced whole (as the workflow's)
            0.3,
        )
        assert stats["images"] == len(select_shard(items, index, 3))
    labels = sorted(p.stem for i in shards for p in (tmp_path / f"paint{i}" / "labels").glob("*.png"))
    assert labels == sorted(i.image_id for i in items)


def test_masks_stage_reads_every_image_whole_however_large(tmp_path):
    """The workflow's masks stage keeps one mask set per image: a strip wider than label's tile is not cut."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    strip = np.repeat(rng.integers(0, 256, (1, 1100, 3), dtype=np.uint8), 24, axis=0)
    Image.fromarray(strip).save(folder / "strip.png")
    generator = build_mask_generator("felzenszwalb", {"scale": 100, "min_size": 30})
    mask_sets = run_masks(images_from_source(folder), generator, tmp_path / "m.parquet")
    assert [(m.image_id, m.height, m.width) for m in mask_sets] == [("strip", 24, 1100)]
    assert sum(int(m.area.sum()) for m in mask_sets) == 24 * 1100  # felzenszwalb covers every pixel


def test_cli_label_and_evaluate(image_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "label",
            str(image_dir),
            str(out),
            "--masks",
            "slic",
            "--mask-params",
            '{"n_segments": 30}',
            "--encoder",
            "efficientnet-lite0",
            "--k",
            "3",
            "--seed",
            "0",
        ]
    )
    assert code == 0
    assert len(list((out / "labels").glob("*.png"))) == 7
    # Score the labels against themselves: a perfect Hungarian match.
    gt = tmp_path / "gt"
    gt.mkdir()
    for path in (out / "labels").glob("*.png"):
        array = np.asarray(Image.open(path)).copy()
        Image.fromarray(array).save(gt / path.name)
    assert main(["evaluate-labels", str(out / "labels"), str(gt), "--out", str(tmp_path / "q.json")]) == 0
    report = json.loads((tmp_path / "q.json").read_text())
    assert report["hungarian"]["miou"] == 1.0


def test_cli_reports_bad_input_in_one_line(image_dir, tmp_path, capsys):
    assert main(["label", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["label", str(empty), str(tmp_path / "o"), "--k", "3"]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["label", str(image_dir), str(tmp_path / "o"), "--masks", "sam"]) == 2
    assert "--sam-checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["label", str(empty), str(tmp_path / "o"), "--k", "1"])


@settings(max_examples=50, deadline=None)
@given(
    fractions=st.lists(st.floats(0.0, 1.0), min_size=0, max_size=30),
    threshold=st.floats(0.01, 1.0),
)
def test_gate_property(fractions, threshold):
    """A mask gets a cluster iff its area fraction is <= the threshold (paper Eq. 3); -1 otherwise."""

    model = ClusterModel(np.arange(7, dtype=np.float32)[:, None] * 10)  # vector 10c is nearest centre c
    area = np.array(fractions, dtype=np.float32)
    ids = model.assign((np.arange(len(area)) % 7)[:, None].astype(np.float32) * 10, area, threshold)
    np.testing.assert_array_equal(ids >= 0, area <= threshold)
    np.testing.assert_array_equal(ids[area <= threshold], (np.arange(len(area)) % 7)[area <= threshold])


def test_label_16bit_geotiff_and_one_bit_tiff(tmp_path):
    """Real rasters of other formats: the 16-bit single-band GeoTIFF and a WHU aerial TIFF."""
    folder = tmp_path / "images"
    folder.mkdir()
    for source in (
        shared_data("spacenet_building", "sample_geotiff.tif"),
        sorted(shared_data("whu_building", "images").glob("*.tif"))[0],
    ):
        (folder / source.name).symlink_to(source)
    names = sorted(p.stem for p in folder.iterdir())
    code = main(["label", str(folder), str(tmp_path / "out"), "--masks", "slic", "--k", "3"])
    assert code == 0
    for name, source in zip(names, sorted(folder.iterdir()), strict=True):
        # The georeferenced SpaceNet scene gets a GeoTIFF label (tests/geo/test_scenes.py checks its CRS).
        suffix = ".tif" if raster_georef(source) is not None else ".png"
        label = np.asarray(Image.open(tmp_path / "out" / "labels" / f"{name}{suffix}"))
        assert label.shape == read_image(source).shape[:2]
