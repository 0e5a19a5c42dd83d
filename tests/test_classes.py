"""Issue #17: the cluster gallery and class maps, run from the CLI as a user runs them.

Real images (crops of the Potsdam sample in ../shared/data), the weight-free felzenszwalb masks and the
EfficientNet-Lite0 encoder; expected values are recomputed from the files the stages wrote (cluster model,
feature and mask shards), not hard-coded.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alps.classmap import ClassMapError, load_class_map
from alps.cli import main
from alps.cluster import ClusterModel
from alps.features.shards import read_feature_shard
from alps.gallery import example_key, render_tile
from alps.paint import make_palette
from alps.pipeline import assign_clusters
from alps.train.configs import build_config, dataset_spec

from conftest import shared_data

K = 4
FELZ = ["--masks", "felzenszwalb", "--mask-params", '{"scale": 100, "min_size": 30}']
MAP_TEXT = "# demo map\n0: roof\n1: ground\n2: roof\n3: ignore\n"


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _model_file(folder: Path) -> Path:
    """The cluster model `alps label` wrote (its format belongs to alps.cluster)."""
    return next(p for p in sorted(folder.glob("kmeans.*")) if not p.name.endswith(".json"))


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Six 112x144 crops of the real Potsdam tile."""
    source = np.asarray(Image.open(shared_data("potsdam", "img_dir", "2_10_0_0_512_512.png")).convert("RGB"))
    folder = tmp_path_factory.mktemp("images")
    for i in range(6):
        y, x = (i // 3) * 220, (i % 3) * 170
        Image.fromarray(source[y : y + 112, x : x + 144]).save(folder / f"tile_{i}.png")
    return folder


@pytest.fixture(scope="module")
def sharded(images, tmp_path_factory) -> Path:
    """The sharded stages as the workflow runs them: 2 mask/feature shards, k-means, paint, PL dataset."""
    root = tmp_path_factory.mktemp("sharded")
    for shard in (0, 1):
        common = [str(images), "--shard-index", str(shard), "--shard-size", "3"]
        assert main(["masks", *common, str(root / f"m{shard}.parquet"), *FELZ]) == 0
        assert main(["features", *common, str(root / f"m{shard}.parquet"), str(root / f"f{shard}.npz")]) == 0
    features = [str(root / "f0.npz"), str(root / "f1.npz")]
    assert main(["cluster", *features, "--out", str(root / "km.npz"), "--k", str(K), "--seed", "1"]) == 0
    for shard in (0, 1):
        args = [str(root / f"m{shard}.parquet"), str(root / f"f{shard}.npz"), str(root / "km.npz")]
        assert main(["paint", *args, str(root / f"paint{shard}")]) == 0
    paint = [str(root / "paint0"), str(root / "paint1")]
    assert main(["pl-dataset", str(images), str(root / "pl"), "--paint-dirs", *paint]) == 0
    (root / "map.yaml").write_text(MAP_TEXT)
    return root


def _gallery_args(root: Path, images: Path, out: Path, *extra: str) -> list[str]:
    return [
        "gallery",
        str(images),
        str(out),
        "--mask-shards",
        str(root / "m0.parquet"),
        str(root / "m1.parquet"),
        "--feature-shards",
        str(root / "f0.npz"),
        str(root / "f1.npz"),
        "--model",
        str(root / "km.npz"),
        "--examples",
        "5",
        "--tile",
        "48",
        *extra,
    ]


# -- class maps: the file format ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0: a\n0: b\n1: c\n", "line 2: cluster id 0 is listed twice"),
        ("0: a\n1: b\n4: c\n", "cluster id 4 does not exist (this labeling's ids are 0..3)"),
        ("0: a\n-1: b\n", "cluster id -1 does not exist"),
        ("0: a\nroad: b\n", "key 'road' is not a cluster id"),
        ("0: a\n1: '  '\n", "cluster 1: the name must be a non-empty string"),
        ("0: a\n1:\n", "cluster 1: the name must be a non-empty string, got None"),
        ("0: a\n1: 7\n", "cluster 1: the name must be a non-empty string, got 7"),
        ("0: a\n2: b\n", "cluster ids 1, 3 are not mapped"),
        ("[a, b]\n", "expected a mapping of cluster ids to names"),
        ("", "expected a mapping of cluster ids to names"),
        ("0: ignore\n1: Ignore\n2: ignore\n3: IGNORE\n", "every cluster is `ignore`"),
        ("0: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
        ("0: [a\n", "not valid YAML"),
    ],
)
def test_bad_class_maps_are_refused_with_the_reason(tmp_path, text, message):
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(ClassMapError, match=re.escape(message)):
        load_class_map(path, 4)


def test_class_map_merges_names_in_file_order_and_ignores(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("3: water\n0: road\n1: water\n2: ignore\n")
    class_map = load_class_map(path, 4)
    assert class_map.names == ("water", "road")
    lut = class_map.lut()
    assert lut[[0, 1, 2, 3, 4, 254, 255]].tolist() == [1, 0, 255, 0, 255, 255, 255]
    assert class_map.summary()["clusters"] == {"0": "road", "1": "water", "2": "ignore", "3": "water"}
    assert class_map.palette() == make_palette(2).tolist()


# -- alps label: gallery by default, --class-map ------------------------------------------------------------
@pytest.fixture(scope="module")
def labeled(images, tmp_path_factory) -> tuple[Path, Path]:
    """`alps label` twice on the same images: plain, and with a class map."""
    root = tmp_path_factory.mktemp("label")
    (root / "map.yaml").write_text(MAP_TEXT)
    common = [str(images), "--k", str(K), "--seed", "1", *FELZ]
    assert main(["label", common[0], str(root / "plain"), *common[1:]]) == 0
    assert (
        main(["label", common[0], str(root / "mapped"), *common[1:], "--class-map", str(root / "map.yaml")])
        == 0
    )
    return root / "plain", root / "mapped"


def test_label_writes_a_gallery_that_agrees_with_its_card(labeled):
    plain, _ = labeled
    card = json.loads((plain / "label_card.json").read_text())
    gallery = json.loads((plain / "gallery" / "gallery.json").read_text())
    assert card["gallery"] == "gallery/index.html" and gallery["k"] == K
    rows = gallery["clusters"]
    assert sum(r["masks"] for r in rows) == card["masks_kept"]
    assert [r["pixels"] for r in rows] == card["class_pixels"]
    assert sum(r["pixel_share"] for r in rows) == pytest.approx(card["coverage"])
    html = (plain / "gallery" / "index.html").read_text()
    # Static page, relative links only, one sheet per cluster that exists.
    links = re.findall(r'src="([^"]+)"', html)
    assert links == [f"cluster_{c:03d}.png" for c in range(K)]
    assert "<script" not in html and "http" not in html
    for row in rows:
        sheet = Image.open(plain / "gallery" / row["sheet"])
        assert sheet.mode == "RGB" and sheet.width >= 360
        assert len(row["examples"]) == min(12, row["masks"])


def test_label_with_class_map_holds_the_named_classes_and_stays_reproducible(labeled, tmp_path):
    plain, mapped = labeled
    class_map = load_class_map(mapped / "class_map.yaml", K)
    assert class_map.names == ("roof", "ground")
    assert json.loads((mapped / "classes.json").read_text()) == {
        "classes": ["roof", "ground"],
        "palette": make_palette(2).tolist(),
    }
    card = json.loads((mapped / "label_card.json").read_text())
    assert card["class_map"]["classes"] == ["roof", "ground"]
    assert card["class_map"]["sha256"] == hashlib.sha256((mapped / "class_map.yaml").read_bytes()).hexdigest()
    # The cluster labels are regenerated from the kept model, masks and features with `alps paint`; the
    # map turns them into exactly the labels `alps label --class-map` wrote.
    regenerated = tmp_path / "regenerated"
    model = _model_file(mapped)
    assert (
        main(
            [
                "paint",
                str(mapped / "masks.parquet"),
                str(mapped / "features.npz"),
                str(model),
                str(regenerated),
            ]
        )
        == 0
    )
    lut = class_map.lut()
    names = sorted(p.name for p in (mapped / "labels").glob("*.png"))
    assert len(names) == 6
    for name in names:
        clusters = _png(regenerated / "labels" / name)
        np.testing.assert_array_equal(_png(plain / "labels" / name), clusters)  # same seed, same clusters
        labels = _png(mapped / "labels" / name)
        np.testing.assert_array_equal(labels, lut[clusters])
        assert set(np.unique(labels)) <= {0, 1, 255}
        np.testing.assert_array_equal(_png(mapped / "vis" / name), make_palette()[labels])
    counts = sum(np.bincount(_png(mapped / "labels" / n).ravel(), minlength=256) for n in names)
    assert card["class_map"]["class_pixels"] == counts[:2].tolist()
    # The gallery names the clusters by the map.
    gallery = json.loads((mapped / "gallery" / "gallery.json").read_text())
    assert [r["name"] for r in gallery["clusters"]] == ["roof", "ground", "roof", "ignore"]


def test_label_rerun_without_a_map_removes_the_map_files(images, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "m.yaml").write_text("0: a\n1: b\n")
    args = [
        "label",
        str(images),
        str(out),
        "--k",
        "2",
        "--masks",
        "slic",
        "--mask-params",
        '{"n_segments": 12}',
    ]
    assert main([*args, "--class-map", str(tmp_path / "m.yaml"), "--no-gallery"]) == 0
    assert (out / "classes.json").is_file() and not (out / "gallery").exists()
    # The map's copy in the output folder is a valid map for the next run.
    assert main([*args, "--class-map", str(out / "class_map.yaml"), "--no-gallery"]) == 0
    assert (out / "class_map.yaml").read_text() == "0: a\n1: b\n"
    assert main(args) == 0
    assert not (out / "classes.json").exists() and not (out / "class_map.yaml").exists()
    assert (out / "gallery" / "index.html").is_file()
    assert "class_map" not in json.loads((out / "label_card.json").read_text())


def test_label_refuses_a_bad_map_before_any_work(images, tmp_path, capsys):
    (tmp_path / "m.yaml").write_text("0: a\n1: b\n5: c\n")
    code = main(
        ["label", str(images), str(tmp_path / "out"), "--k", "3", "--class-map", str(tmp_path / "m.yaml")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cluster id 5 does not exist (this labeling's ids are 0..2)" in err
    assert not (tmp_path / "out").exists()


# -- alps gallery on the sharded stages ---------------------------------------------------------------------
def test_gallery_picks_the_smallest_keys_and_is_deterministic(sharded, images, tmp_path):
    assert (
        main(
            _gallery_args(
                sharded,
                images,
                tmp_path / "a",
                "--paint-dirs",
                str(sharded / "paint0"),
                str(sharded / "paint1"),
            )
        )
        == 0
    )
    assert main(_gallery_args(sharded, images, tmp_path / "b")) == 0  # pixel counts painted here instead
    assert main(_gallery_args(sharded, images, tmp_path / "c", "--seed", "7")) == 0
    a = json.loads((tmp_path / "a" / "gallery.json").read_text())
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    # The examples, recomputed from the files: per cluster, the 5 masks with the smallest keys.
    model = ClusterModel.load(sharded / "km.npz")
    keys: dict[int, list[tuple[int, str]]] = {c: [] for c in range(K)}
    for shard in (0, 1):
        features = read_feature_shard(sharded / f"f{shard}.npz")
        ids = assign_clusters(model, features.vectors, features.area_fraction, 0.3)
        for image_id, mask_id, cluster in zip(features.image_ids, features.mask_ids, ids, strict=True):
            if cluster >= 0:
                keys[int(cluster)].append(
                    (example_key(0, str(image_id), int(mask_id)), f"{image_id}/{mask_id}")
                )
    for row in a["clusters"]:
        expected = [uid for _, uid in sorted(keys[row["cluster"]])[:5]]
        assert row["examples"] == expected and row["masks"] == len(keys[row["cluster"]])
    paint = [json.loads((sharded / f"paint{s}" / "paint_stats.json").read_text()) for s in (0, 1)]
    assert [r["pixels"] for r in a["clusters"]] == np.sum([p["class_pixels"] for p in paint], axis=0).tolist()
    other = json.loads((tmp_path / "c" / "gallery.json").read_text())
    assert [r["examples"] for r in other["clusters"]] != [r["examples"] for r in a["clusters"]]


def test_gallery_escapes_names_and_draws_unicode(sharded, images, tmp_path):
    (tmp_path / "m.yaml").write_text(
        "0: '<script>alert(1)</script>'\n1: 'a & \"b\"'\n2: Gebäude 建筑\n3: ignore\n", encoding="utf-8"
    )
    assert main(_gallery_args(sharded, images, tmp_path / "g", "--class-map", str(tmp_path / "m.yaml"))) == 0
    html = (tmp_path / "g" / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &amp; &quot;b&quot;" in html and "Gebäude 建筑" in html


def test_gallery_reports_mismatched_shards_in_one_line(sharded, images, tmp_path, capsys):
    args = _gallery_args(sharded, images, tmp_path / "g")
    first = args.index(str(sharded / "f0.npz"))
    args[first : first + 2] = [str(sharded / "f1.npz"), str(sharded / "f0.npz")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pass the feature shard of each mask shard, in the same order" in err
    assert not (tmp_path / "g").exists()


def test_tile_cuts_out_the_mask_with_context_and_outline():
    from pycocotools import mask as mask_utils

    image = np.full((100, 120, 3), 200, dtype=np.uint8)
    mask = np.zeros((100, 120), dtype=np.uint8)
    mask[40:60, 50:70] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    tile = render_tile(image, rle, (255, 0, 0), tile=64)
    assert tile.shape == (64, 64, 3)
    red = np.all(tile == (255, 0, 0), axis=2)
    assert red.any() and not red[:8].any() and not red[-8:].any()  # outline inside, context around it
    assert tile[32, 32].tolist() == [200, 200, 200]  # inside the mask: the image as it is
    assert tile[2, 2].tolist() == [110, 110, 110]  # context: dimmed


# -- alps apply-class-map: a new PL dataset ---------------------------------------------------------------
def test_apply_class_map_writes_a_new_dataset_and_leaves_the_source(sharded, tmp_path):
    source = sharded / "pl"
    before = _digests(source)
    out = tmp_path / "named"
    args = ["apply-class-map", str(source), str(out), "--class-map", str(sharded / "map.yaml")]
    assert main([*args, "--model", str(sharded / "km.npz")]) == 0
    assert _digests(source) == before
    lut = load_class_map(sharded / "map.yaml", K).lut()
    names = sorted(p.name for p in (source / "ann_dir" / "train").glob("*.png"))
    assert names == sorted(p.name for p in (out / "ann_dir" / "train").glob("*.png")) and len(names) == 6
    for name in names:
        np.testing.assert_array_equal(
            _png(out / "ann_dir" / "train" / name), lut[_png(source / "ann_dir" / "train" / name)]
        )
        assert (out / "img_dir" / "train" / name).read_bytes() == (
            source / "img_dir" / "train" / name
        ).read_bytes()
    card = json.loads((out / "dataset_card.json").read_text())
    assert (card["num_classes"], card["classes"], card["variant"]) == (2, ["roof", "ground"], "classes")
    assert card["class_map"]["source_num_classes"] == K
    assert json.loads((out / "classes.json").read_text())["classes"] == ["roof", "ground"]
    # mmsegmentation gets the names and the palette.
    spec = dataset_spec("pl", out, crop_size=64)
    assert spec.classes == ("roof", "ground") and spec.palette == tuple(tuple(p) for p in card["palette"])
    cfg = build_config("upernet-r18", spec, max_iters=2, device="cpu")
    assert list(cfg.train_dataloader.dataset.metainfo.classes) == ["roof", "ground"]
    assert cfg.model.decode_head.num_classes == 2
    # Running it again replaces its own output; the unmapped dataset keeps cluster names.
    assert main(args) == 0
    assert dataset_spec("pl", source).classes == tuple(f"cluster_{i:02d}" for i in range(K))


@pytest.mark.parametrize("where", ["same", "inside"])
def test_apply_class_map_never_writes_into_the_source(sharded, where, capsys):
    source = sharded / "pl"
    before = _digests(source)
    out = source if where == "same" else source / "named"
    assert main(["apply-class-map", str(source), str(out), "--class-map", str(sharded / "map.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"the output {out} {'is' if where == 'same' else 'lies inside'} the input {source}" in err
    assert "never replaces or mixes with its inputs" in err
    assert _digests(source) == before


def test_apply_class_map_refuses_a_foreign_folder_and_a_short_map(sharded, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    map_args = ["--class-map", str(sharded / "map.yaml")]
    assert main(["apply-class-map", str(sharded / "pl"), str(foreign), *map_args]) == 2
    err = capsys.readouterr().err
    assert "holds notes.txt and there is no .alps-output.json: alps apply-class-map did not write" in err
    assert (foreign / "notes.txt").read_text() == "keep me"
    (tmp_path / "short.yaml").write_text("0: a\n1: b\n")
    short = ["--class-map", str(tmp_path / "short.yaml"), "--model", str(sharded / "km.npz")]
    assert main(["apply-class-map", str(sharded / "pl"), str(tmp_path / "n"), *short]) == 2
    assert "cluster ids 2-3 are not mapped" in capsys.readouterr().err


def test_samrs_star_names_reach_mmseg(tmp_path):
    root = tmp_path / "samrs"
    root.mkdir()
    card = {"num_classes": 4, "classes": ["plane", "ship", "harbor"], "labeler": "samrs-star"}
    (root / "dataset_card.json").write_text(json.dumps(card))
    spec = dataset_spec("pl", root)
    assert spec.classes == ("plane", "ship", "harbor", "unused_03")
    assert spec.palette == tuple(tuple(int(v) for v in p) for p in make_palette(4))
