"""alps.geo on the real samples: GeoTIFF labels, tiled scenes mosaicked by nearest tile centre, polygons.

The SpaceNet sample (16-bit, 1 band, EPSG:32616) and the Vaihingen IRRG tile are cropped small so that
``alps label`` runs its real stages (felzenszwalb + efficientnet-lite0) over several tiles in seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from rasterio.windows import Window

from alps.cli import build_parser, main
from alps.cluster import ClusterModel
from alps.evaluate import accumulate_confusion, scores_from_confusion
from alps.features.shards import read_feature_shard
from alps.geo.georef import Georef, manifest_georefs, raster_georef, read_label
from alps.geo.scene import SceneOptions, mosaic_cells, nearest_centre_cells, open_scene
from alps.io import read_image
from alps.masks.shards import read_mask_shard
from alps.paint import UNLABELED, paint_labels
from alps.pipeline import assign_clusters, split_per_image

from conftest import shared_data
from gdal_c import gdal_label_info

SPACENET = ("spacenet_building", "sample_geotiff.tif")
VAIHINGEN = ("vaihingen", "img_dir", "area1_0_0_512_512.png")
TILE = ["--tile-size", "128", "--overlap", "32"]


def crop_geotiff(
    source: Path, target: Path, x: int, y: int, size: int, bands: int | None = None, nodata_rows: int = 0
) -> Path:
    """A ``size`` square window of a GeoTIFF, written with the window's own transform (with ``nodata_rows``:
    its last rows zeroed and 0 declared no-data)."""
    with rasterio.open(source) as src:
        data = src.read(window=Window(x, y, size, size))
        profile = {
            "driver": "GTiff",
            "height": size,
            "width": size,
            "count": data.shape[0],
            "dtype": data.dtype,
            "crs": src.crs,
            "transform": src.window_transform(Window(x, y, size, size)),
        }
    if nodata_rows:
        data = np.maximum(data, 1)
        data[:, -nodata_rows:] = 0
        profile["nodata"] = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
    return target


@pytest.fixture(scope="module")
def labeled_scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``alps label`` (real CLI, default backends) on a 256^2 SpaceNet crop cut into 3 x 3 tiles."""
    root = tmp_path_factory.mktemp("scene")
    image = crop_geotiff(shared_data(*SPACENET), root / "in" / "scene.tif", 300, 200, 256)
    code = main(["label", str(root / "in"), str(root / "out"), "--k", "4", "--binary", *TILE])
    assert code == 0
    return image, root / "out"


def test_label_writes_a_geotiff_in_the_source_crs(labeled_scene):
    image, out = labeled_scene
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["scene.tif"]
    with rasterio.open(image) as src, rasterio.open(out / "labels" / "scene.tif") as dst:
        assert dst.crs == src.crs and dst.crs.to_epsg() == 32616
        assert dst.transform == src.transform
        assert (dst.height, dst.width, dst.count, dst.dtypes[0]) == (256, 256, 1, "uint8")
        assert dst.nodata == UNLABELED
        assert dst.block_shapes == [(256, 256)] and dst.profile["compress"] == "deflate"
        assert dst.colormap(1)[0][:3] == (242, 85, 85)  # the cluster palette travels with the file
    with rasterio.open(out / "binary" / "scene.tif") as binary:
        assert binary.crs.to_epsg() == 32616 and set(np.unique(binary.read(1))) <= {0, 1}


def test_tiles_share_one_kmeans_and_mosaic_by_nearest_centre(labeled_scene):
    """Repaint every tile from the saved masks, features and model; each pixel is its nearest tile's."""
    _, out = labeled_scene
    mask_sets = read_mask_shard(out / "masks.parquet")
    assert len(mask_sets) == 9 and {m.image_id for m in mask_sets} == {
        f"scene_{y}_{y + 128}_{x}_{x + 128}" for y in (0, 96, 128) for x in (0, 96, 128)
    }
    features = read_feature_shard(out / "features.npz")
    model = ClusterModel.load(out / "kmeans.npz")
    ids = split_per_image(mask_sets, assign_clusters(model, features.vectors, features.area_fraction, 0.3))
    tiles = {m.image_id: paint_labels(m, ids[m.image_id]) for m in mask_sets}
    # Brute force: every pixel's nearest tile centre (ties to the earlier tile, rows first).
    starts = [(x, y) for y in (0, 96, 128) for x in (0, 96, 128)]
    yy, xx = np.mgrid[0:256, 0:256] + 0.5
    distance = np.stack([(xx - x - 64) ** 2 + (yy - y - 64) ** 2 for x, y in starts])
    nearest = distance.argmin(axis=0)
    expected = np.zeros((256, 256), np.uint8)
    for index, (x, y) in enumerate(starts):
        tile = tiles[f"scene_{y}_{y + 128}_{x}_{x + 128}"]
        where = nearest == index
        expected[where] = tile[(np.nonzero(where)[0] - y), (np.nonzero(where)[1] - x)]
    label, _ = read_label(out / "labels" / "scene.tif")
    np.testing.assert_array_equal(label, expected)


def test_label_card_records_inputs_bands_and_parameters(labeled_scene):
    image, out = labeled_scene
    card = json.loads((out / "label_card.json").read_text())
    (scene,) = card["inputs"]
    assert scene["file"] == str(image) and scene["dtype"] == "uint16" and scene["band_count"] == 1
    assert scene["crs"] == "EPSG:32616" and scene["tiles"] == 9 and scene["bands"] == [1, 1, 1]
    assert card["bands"] is None and card["label_files"] == ["scene.tif"]
    assert card["mask_params"] == {"scale": 200.0, "sigma": 0.8, "min_size": 50, "name": "felzenszwalb"}
    assert card["encoder_params"]["layers"] == ["stage5", "stage7"]
    assert card["cluster_params"]["k"] == 4 and card["cluster_params"]["seed"] == 0
    assert card["tiling"] == {"tile_size": 128, "overlap": 32, "mosaic": "nearest tile centre"}
    assert sum(card["class_pixels"]) == round(card["coverage"] * 256 * 256)
    overlay = np.asarray(Image.open(out / "vis" / "scene.overlay.png"))
    assert overlay.shape[0] == 256 and overlay.shape[1] == 256 + 4 + 150
    assert np.asarray(Image.open(out / "vis" / "scene.png")).shape == (256, 256, 3)


def test_tiled_16bit_scene_shares_one_stretch():
    """Every tile of a small 16-bit scene is the same pixels as the scene stretched whole."""
    path = shared_data(*SPACENET)
    scene = open_scene("s", path, None, SceneOptions(tile_size=512, overlap=64))
    assert len(scene.windows) == 4 and scene.stretch is not None
    # 900 px: the statistics' read is decimated to 1024 px a side, i.e. not at all, so it is exact.
    whole = read_image(path)
    for x, y, w, h in scene.windows:
        np.testing.assert_array_equal(scene.read_tile((x, y, w, h), None), whole[y : y + h, x : x + w])


def _vectorize(labels: Path, out: Path, *extra: str) -> None:
    assert main(["vectorize", str(labels), str(out), *extra]) == 0


def test_vectorize_geopackage_read_by_pyogrio_in_the_label_crs(labeled_scene, tmp_path):
    import pyogrio
    import shapely

    _, out = labeled_scene
    labels = out / "labels" / "scene.tif"
    _vectorize(labels, tmp_path / "poly.gpkg")
    info = pyogrio.read_info(tmp_path / "poly.gpkg")
    assert info["crs"] == "EPSG:32616" and info["driver"] == "GPKG" and info["geometry_type"] == "Polygon"
    _, geometry, field_data = pyogrio.raw.read(tmp_path / "poly.gpkg")[1:]
    assert info["fields"].tolist() == ["cluster_id", "area"]
    label, georef = read_label(labels)
    cluster_ids, areas = field_data
    polygons = shapely.from_wkb(geometry)
    # Regions cover exactly the labeled pixels of each cluster (a pixel is 0.5 m x 0.5 m).
    for value in np.unique(label[label != UNLABELED]):
        mine = cluster_ids == value
        assert np.isclose(shapely.area(polygons[mine]).sum(), (label == value).sum() * 0.25)
    np.testing.assert_allclose(areas, shapely.area(polygons))
    minx, _, _, maxy = shapely.total_bounds(polygons)
    assert (minx, maxy) == (georef.transform.c, georef.transform.f)
    # --min-area drops the small regions; --simplify keeps them but with fewer vertices.
    _vectorize(labels, tmp_path / "big.gpkg", "--min-area", "20")
    big = pyogrio.read_info(tmp_path / "big.gpkg")["features"]
    assert 0 < big == int((areas >= 20).sum()) < len(areas)
    _vectorize(labels, tmp_path / "simple.geojson", "--simplify", "1.0")
    simple = shapely.from_wkb(pyogrio.raw.read(tmp_path / "simple.geojson")[2])
    assert pyogrio.read_info(tmp_path / "simple.geojson")["crs"] == "EPSG:32616"
    assert shapely.get_num_coordinates(simple).sum() < shapely.get_num_coordinates(polygons).sum()


def test_vectorize_names_classes(labeled_scene, tmp_path):
    import pyogrio

    _, out = labeled_scene
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c", "d"]}))
    _vectorize(
        out / "labels" / "scene.tif", tmp_path / "named.gpkg", "--classes", str(tmp_path / "classes.json")
    )
    _, _, _, (ids, _, names) = pyogrio.raw.read(tmp_path / "named.gpkg")
    assert names.tolist() == [["a", "b", "c", "d"][i] for i in ids]


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="ogrinfo (Debian's gdal-bin) is not installed")
def test_ogrinfo_reads_the_geopackage_in_the_same_crs(labeled_scene, tmp_path):
    import pyogrio

    _, out = labeled_scene
    _vectorize(out / "labels" / "scene.tif", tmp_path / "poly.gpkg")
    report = subprocess.run(
        ["ogrinfo", "-so", "-al", str(tmp_path / "poly.gpkg")], capture_output=True, text=True, check=True
    ).stdout
    assert 'ID["EPSG",32616]' in report
    count = pyogrio.read_info(tmp_path / "poly.gpkg")["features"]
    assert f"Feature Count: {count}" in report and "Geometry: Polygon" in report


def test_nearest_centre_cells_match_brute_force():
    for starts, sizes, length in [
        ([0, 96, 128], [128] * 3, 256),
        ([0, 7, 14, 20], [10] * 4, 30),
        ([0], [5], 5),
    ]:
        cells = nearest_centre_cells(starts, sizes, length)
        centres = np.array([s + n / 2 for s, n in zip(starts, sizes, strict=True)])
        owner = np.abs(np.arange(length)[:, None] + 0.5 - centres[None]).argmin(axis=1)
        got = np.concatenate([np.full(b - a, i) for i, (a, b) in enumerate(cells)])
        np.testing.assert_array_equal(got, owner)
        assert all(s <= a and b <= s + n for (a, b), s, n in zip(cells, starts, sizes, strict=True))


def test_vaihingen_irrg_png_labels_tiled_into_one_png(tmp_path):
    """A plain (non-georeferenced) 8-bit IRRG PNG: tiled, mosaicked, written as one PNG of its size."""
    source = shared_data(*VAIHINGEN)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(source).crop((0, 0, 200, 160)).save(folder / "irrg.png")
    assert main(["label", str(folder), str(tmp_path / "out"), "--k", "3", *TILE]) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "labels").iterdir()) == ["irrg.png"]
    label = np.asarray(Image.open(tmp_path / "out" / "labels" / "irrg.png"))
    assert label.shape == (160, 200)
    card = json.loads((tmp_path / "out" / "label_card.json").read_text())
    assert card["inputs"][0]["tiles"] == 4 and card["inputs"][0]["crs"] is None


def test_four_band_image_without_bands_warns(tmp_path, caplog):
    """IRRG + a fourth band (RGBN-like): labeling it without --bands warns and names the fix."""
    irrg = np.asarray(Image.open(shared_data(*VAIHINGEN)))[:64, :64]
    bands = np.concatenate([np.moveaxis(irrg, -1, 0), irrg[None, :, :, 0]])
    path = tmp_path / "four.tif"
    with rasterio.open(path, "w", driver="GTiff", height=64, width=64, count=4, dtype="uint8") as dst:
        dst.write(bands)
    with caplog.at_level("WARNING", logger="alps.geo.scene"):
        open_scene("four", path, None, SceneOptions())
    assert "4 bands" in caplog.text and "--bands" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="alps.geo.scene"):
        scene = open_scene("four", path, [4, 1, 2], SceneOptions())
    assert caplog.text == "" and scene.bands == [4, 1, 2]


def test_prepare_folder_mosaic_and_pl_dataset_georeferencing(tmp_path):
    """``prepare folder`` tiles a GeoTIFF; ``alps mosaic`` puts tile labels back by nearest tile centre."""
    raw = tmp_path / "raw"
    crop_geotiff(shared_data(*SPACENET), raw / "site.tif", 100, 100, 200)
    assert (
        main(
            [
                "prepare",
                "folder",
                str(raw),
                str(tmp_path / "ds"),
                "--options",
                '{"tile_size": 96, "overlap": 24}',
            ]
        )
        == 0
    )
    manifest = tmp_path / "ds" / "manifest.csv"
    georefs = manifest_georefs(manifest)
    scene_georef = raster_georef(raw / "site.tif")
    # Tile labels: each tile painted with its own index, so the mosaic shows which tile every pixel took.
    import pandas as pd

    rows = pd.read_csv(manifest)
    tile_dir = tmp_path / "tiles"
    tile_dir.mkdir()
    windows = []
    for index, row in enumerate(rows.itertuples()):
        windows.append((row.window_x, row.window_y, row.window_w, row.window_h))
        Image.fromarray(np.full((row.window_h, row.window_w), index, np.uint8)).save(
            tile_dir / f"{row.image_id}.png"
        )
        assert georefs[row.image_id] == scene_georef.window(row.window_x, row.window_y)
    assert main(["mosaic", str(manifest), str(tile_dir), str(tmp_path / "mosaic")]) == 0
    label, georef = read_label(tmp_path / "mosaic" / "site.tif")
    assert label.shape == (200, 200) and georef == scene_georef
    centres = np.array([(x + w / 2, y + h / 2) for x, y, w, h in windows])
    yy, xx = np.mgrid[0:200, 0:200] + 0.5
    nearest = ((xx[..., None] - centres[:, 0]) ** 2 + (yy[..., None] - centres[:, 1]) ** 2).argmin(axis=-1)
    np.testing.assert_array_equal(label, nearest)
    assert set(mosaic_cells(windows, 200, 200)) == set(windows)
    card = json.loads((tmp_path / "mosaic" / "mosaic_card.json").read_text())
    assert card["scenes"][0]["tiles"] == len(windows) == 9


def test_pl_dataset_tiles_keep_their_georeferencing(tmp_path):
    """The PL dataset's PNG tiles carry ``.aux.xml`` sidecars that rasterio (GDAL, QGIS) reads; the scene's
    declared no-data stays unlabeled from ``prepare folder`` to ``alps mosaic``."""
    raw = tmp_path / "raw"
    crop_geotiff(shared_data(*SPACENET), raw / "site.tif", 0, 0, 160, nodata_rows=20)
    assert (
        main(
            [
                "prepare",
                "folder",
                str(raw),
                str(tmp_path / "ds"),
                "--options",
                '{"tile_size": 96, "overlap": 32}',
            ]
        )
        == 0
    )
    manifest = tmp_path / "ds" / "manifest.csv"
    paint = tmp_path / "paint"
    assert (
        main(
            [
                "masks",
                str(manifest),
                str(paint / "masks.parquet"),
                "--features-out",
                str(paint / "f.npz"),
                "--encoder",
                "efficientnet-lite0",
            ]
        )
        == 0
    )
    assert main(["cluster", str(paint / "f.npz"), "--out", str(paint / "k.npz"), "--k", "3"]) == 0
    assert (
        main(
            [
                "paint",
                str(paint / "masks.parquet"),
                str(paint / "f.npz"),
                str(paint / "k.npz"),
                str(paint / "shard"),
            ]
        )
        == 0
    )
    assert (
        main(["pl-dataset", str(manifest), str(tmp_path / "pl"), "--paint-dirs", str(paint / "shard")]) == 0
    )
    georefs = manifest_georefs(manifest)
    assert len(georefs) == 4
    for image_id, georef in georefs.items():
        for folder in ("img_dir", "ann_dir"):
            with rasterio.open(tmp_path / "pl" / folder / "train" / f"{image_id}.png") as src:
                assert src.crs.to_epsg() == 32616
                assert src.transform == georef.transform
    # `alps label` on the manifest: each PNG tile's label is a GeoTIFF placed by its manifest row.
    assert main(["label", str(manifest), str(tmp_path / "tiles"), "--k", "3"]) == 0
    for image_id, georef in georefs.items():
        label, placed = read_label(tmp_path / "tiles" / "labels" / f"{image_id}.tif")
        assert placed == Georef("EPSG:32616", georef.transform)
    # alps mosaic turns the PL dataset's tile labels into one GeoTIFF of the scene.
    assert (
        main(["mosaic", str(manifest), str(tmp_path / "pl" / "ann_dir" / "train"), str(tmp_path / "m")]) == 0
    )
    label, georef = read_label(tmp_path / "m" / "site.tif")
    assert label.shape == (160, 160) and georef == raster_georef(raw / "site.tif")
    # No-data: alpha 0 in the tiles (RGBA PNG), unlabeled in every tile label and in the mosaic.
    assert (label[-20:] == UNLABELED).all() and (label[:-20] != UNLABELED).any()
    bottom = next(i for i in georefs if i.startswith("site_64_160"))
    tile = np.asarray(Image.open(tmp_path / "ds" / "img_dir" / "train" / f"{bottom}.png"))
    assert tile.shape[2] == 4 and (tile[-20:, :, 3] == 0).all() and (tile[:-20, :, 3] == 255).all()
    # A class map over the PL dataset keeps the tile labels' georeferencing.
    (tmp_path / "map.yaml").write_text("0: a\n1: b\n2: a\n")
    args = ["apply-class-map", str(tmp_path / "pl"), str(tmp_path / "named"), "--class-map"]
    assert main([*args, str(tmp_path / "map.yaml")]) == 0
    for image_id, georef in georefs.items():
        with rasterio.open(tmp_path / "named" / "ann_dir" / "train" / f"{image_id}.png") as src:
            assert src.crs.to_epsg() == 32616 and src.transform == georef.transform


def test_georef_window_round_trip():
    georef = Georef("EPSG:32616", Affine(0.5, 0, 1000, 0, -0.5, 2000))
    assert georef.window(10, 20).transform == Affine(0.5, 0, 1005, 0, -0.5, 1990)
    assert georef.window(10, 20).origin_of(10, 20) == georef


def test_every_subcommand_help_shows_defaults(monkeypatch):
    import argparse

    monkeypatch.setenv("COLUMNS", "1000")  # no line wrapping inside the checked text
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():
        text = subparser.format_help()
        for action in subparser._actions:
            if action.option_strings and action.default not in (None, argparse.SUPPRESS):
                shown = {str(action.default)}
                if isinstance(action.default, (list, tuple)):  # as typed on the command line: "2 64"
                    shown.add(" ".join(map(str, action.default)))
                assert any(f"default: {value}" in text for value in shown), (
                    name,
                    action.dest,
                )
    label_help = sub.choices["label"].format_help()
    assert "(default: 1024)" in label_help and "(default: felzenszwalb)" in label_help


@pytest.mark.slow
def test_workflow_mosaics_the_pl_labels_of_a_folder_dataset(tmp_path):
    """The real DAG: prepare folder (tiles) -> masks -> features -> k-means -> paint -> PL set -> mosaic."""
    import yaml

    from conftest import REPO_ROOT
    from test_workflow import snakemake

    raw = tmp_path / "raw"
    crop_geotiff(shared_data(*SPACENET), raw / "site.tif", 200, 200, 224)
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    config["datasets"] = {
        "site": {"converter": "folder", "raw_dir": str(raw), "options": {"tile_size": 128, "overlap": 32}}
    }
    config["pseudo_labels"] = {"site-pl": {"dataset": "site", "label": "Site-PL"}}
    config["tables"] = {}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = snakemake(str(tmp_path / "results" / "mosaic" / "site-pl"), config=config_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    label, georef = read_label(tmp_path / "results" / "mosaic" / "site-pl" / "site.tif")
    assert label.shape == (224, 224) and georef == raster_georef(raw / "site.tif")
    # Every mosaic pixel is the PL label of its nearest tile.
    manifest = tmp_path / "results" / "datasets" / "site" / "manifest.csv"
    import pandas as pd

    rows = list(pd.read_csv(manifest).itertuples())
    centres = np.array([(r.window_x + r.window_w / 2, r.window_y + r.window_h / 2) for r in rows])
    yy, xx = np.mgrid[0:224, 0:224] + 0.5
    nearest = ((xx[..., None] - centres[:, 0]) ** 2 + (yy[..., None] - centres[:, 1]) ** 2).argmin(axis=-1)
    pl = tmp_path / "results" / "pl" / "site-pl" / "ann_dir" / "train"
    for index, row in enumerate(rows):
        tile = np.asarray(Image.open(pl / f"{row.image_id}.png"))
        where = np.nonzero(nearest == index)
        np.testing.assert_array_equal(label[where], tile[where[0] - row.window_y, where[1] - row.window_x])


def test_tile_ids_that_collide_with_an_image_are_refused(tmp_path):
    from alps.geo.scene import open_scenes
    from alps.sharding import ImageItem

    source = shared_data(*VAIHINGEN)
    Image.open(source).crop((0, 0, 200, 160)).save(tmp_path / "a.png")
    Image.open(source).crop((0, 0, 100, 100)).save(tmp_path / "a_0_128_0_128.png")
    items = [ImageItem("a", tmp_path / "a.png"), ImageItem("a_0_128_0_128", tmp_path / "a_0_128_0_128.png")]
    with pytest.raises(ValueError, match="rename the image"):
        open_scenes(items, None, SceneOptions(tile_size=128, overlap=32))


def test_vectorize_and_mosaic_bad_input_get_one_clear_line(tmp_path, capsys):
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    assert main(["vectorize", str(tmp_path / "broken.tif"), str(tmp_path / "o.gpkg")]) == 2
    assert "broken.tif: not a readable label raster" in capsys.readouterr().err
    assert main(["vectorize", str(tmp_path / "none.tif"), str(tmp_path / "o.gpkg")]) == 2
    assert "no such label raster" in capsys.readouterr().err
    raw = tmp_path / "raw"
    raw.mkdir()
    Image.open(shared_data(*VAIHINGEN)).crop((0, 0, 100, 100)).save(raw / "irrg.png")
    options = '{"tile_size": 64, "overlap": 16}'
    assert main(["prepare", "folder", str(raw), str(tmp_path / "ds"), "--options", options]) == 0
    (tmp_path / "empty").mkdir()
    manifest = str(tmp_path / "ds" / "manifest.csv")
    assert main(["mosaic", manifest, str(tmp_path / "empty"), str(tmp_path / "m")]) == 2
    assert "irrg_0_64_0_64.png: the label of tile 'irrg_0_64_0_64' is missing" in capsys.readouterr().err
    assert not (tmp_path / "m" / "irrg.png").exists()


def test_evaluate_labels_scores_the_geotiff_labels_of_alps_label(labeled_scene, tmp_path):
    """`alps label` wrote scene.tif (GeoTIFF); `alps evaluate-labels` scores it against the SpaceNet
    footprints (the sample's derived 0/1 PNG, cropped to the same window as the labeled scene)."""
    _, out = labeled_scene
    footprints = np.asarray(Image.open(shared_data("spacenet_building", "footprint_mask_derived.png")))
    gt = footprints[200:456, 300:556]  # crop_geotiff's window: x 300, y 200, 256 px
    (tmp_path / "gt").mkdir()
    Image.fromarray(gt).save(tmp_path / "gt" / "scene.png")
    report_path = tmp_path / "quality.json"
    code = main(["evaluate-labels", str(out / "labels"), str(tmp_path / "gt"), "--out", str(report_path)])
    assert code == 0
    report = json.loads(report_path.read_text())
    # The expected scores from the GeoTIFF's pixels as rasterio reads them.
    with rasterio.open(out / "labels" / "scene.tif") as src:
        label = src.read(1)
    clusters = int(label[label != UNLABELED].max()) + 1
    expected = scores_from_confusion(accumulate_confusion(label, gt, clusters, 2), "hungarian", ["0", "1"])
    assert report["images"] == 1 and report["hungarian"]["pixels"] == 256 * 256
    assert report["hungarian"] == json.loads(json.dumps(expected))
    assert report["hungarian"]["per_class_iou"]["1"] > 0  # building pixels were scored, not skipped


def test_label_with_a_class_map_names_a_geotiff_as_apply_class_map_does(tmp_path):
    """``alps label --class-map`` on a GeoTIFF writes the map's classes (it once wrote no label at all), and
    ``alps apply-class-map`` on a run without the map gives the same labels beside it, without relabeling."""
    crop_geotiff(shared_data(*SPACENET), tmp_path / "in" / "scene.tif", 300, 200, 160, nodata_rows=16)
    (tmp_path / "map.yaml").write_text("0: roof\n1: ground\n2: roof\n3: ignore\n")
    options = ["--k", "4", *TILE]
    assert main(["label", str(tmp_path / "in"), str(tmp_path / "plain"), *options]) == 0
    mapped_args = ["--class-map", str(tmp_path / "map.yaml")]
    assert main(["label", str(tmp_path / "in"), str(tmp_path / "named"), *options, *mapped_args]) == 0
    assert main(["apply-class-map", str(tmp_path / "plain"), str(tmp_path / "beside"), *mapped_args]) == 0
    clusters, _ = read_label(tmp_path / "plain" / "labels" / "scene.tif")
    lut = np.full(256, UNLABELED, np.uint8)
    lut[:4] = [0, 1, 0, UNLABELED]
    for out in ("named", "beside"):
        folder = tmp_path / out
        assert sorted(p.name for p in (folder / "labels").iterdir()) == ["scene.tif", "scene.tif.aux.xml"]
        assert sorted(p.name for p in (folder / "vis").iterdir()) == ["scene.overlay.png", "scene.png"]
        label, georef = read_label(folder / "labels" / "scene.tif")
        assert georef == raster_georef(tmp_path / "in" / "scene.tif")
        assert set(np.unique(label)) == {0, 1, UNLABELED} and (label[-16:] == UNLABELED).all()
        np.testing.assert_array_equal(label, lut[clusters])
        with rasterio.open(folder / "labels" / "scene.tif") as src:
            assert src.nodata == UNLABELED and src.colormap(1)[1][:3] == (85, 131, 242)
        assert gdal_label_info(folder / "labels" / "scene.tif")["categories"] == ["roof", "ground"]
        card = json.loads((folder / "label_card.json").read_text())
        assert card["class_map"]["classes"] == ["roof", "ground"]
        assert card["class_map"]["class_pixels"] == [int((label == 0).sum()), int((label == 1).sum())]
    # vectorize names the classes it finds in the label's sidecar.
    _vectorize(tmp_path / "beside" / "labels" / "scene.tif", tmp_path / "named.gpkg")
    import pyogrio

    info = pyogrio.read_info(tmp_path / "named.gpkg")
    assert info["fields"].tolist() == ["class_id", "area", "class_name"]
    # The source labeling is untouched; a named output is not named twice.
    assert "class_map" not in json.loads((tmp_path / "plain" / "label_card.json").read_text())
    again = ["apply-class-map", str(tmp_path / "beside"), str(tmp_path / "twice"), *mapped_args]
    assert main(again) == 2


def test_gallery_shares_are_of_the_scene_pixels(labeled_scene):
    """Tiles of a scene overlap: gallery shares are of the scene's pixels and add up to the coverage."""
    _, out = labeled_scene
    card = json.loads((out / "label_card.json").read_text())
    gallery = json.loads((out / "gallery" / "gallery.json").read_text())
    assert gallery["total_pixels"] == 256 * 256
    assert sum(row["pixel_share"] for row in gallery["clusters"]) == pytest.approx(card["coverage"])
