"""The README's journey, run as written: label -> gallery -> class map -> PL dataset -> pre-train -> fine-tune
-> predict -> polygons, on a small georeferenced scene built from real LoveDA tiles (with a no-data strip).

The commands are read from the README's "From a scene to a trained model" section and run through the
``alps`` CLI in a scratch folder; ``SMALL`` appends options that shrink them (argparse takes the last value
of an option), nothing else. Every step is checked where a user would look: the CRS and transform of each
label raster, the class names (in cards, in the GDAL sidecars QGIS reads, in the polygons, in the models'
checkpoints) and the label values. The trained models then run through stock mmsegmentation
(``init_model`` + ``inference_model``) in a subprocess where the ``alps`` package cannot be imported.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from affine import Affine
from PIL import Image

from alps.classmap import load_class_map
from alps.cli import main

from conftest import REPO_ROOT, shared_data
from gdal_c import gdal_label_info

README = REPO_ROOT / "README.md"
SECTION = "## From a scene to a trained model"
CRS = "EPSG:32650"
TRANSFORM = Affine(0.3, 0.0, 500000.0, 0.0, -0.3, 3400000.0)
HEIGHT, WIDTH, NODATA_ROWS = 192, 256, 16
LOVEDA_CLASSES = ["background", "building", "road", "water", "barren", "forest", "agriculture"]
TRAIN_SMALL = ["--iters", "2", "--crop-size", "64", "--batch-size", "2", "--workers", "0", "--threads", "1"]
SMALL = {
    "label": ["--tile-size", "128", "--overlap", "32"],
    "pl-dataset": ["--tile-size", "64"],
    "pretrain": [*TRAIN_SMALL, "--val-interval", "2"],
    "finetune": [*TRAIN_SMALL, "--val-interval", "2"],
    "predict": ["--device", "cpu", "--threads", "1"],
}
"""What the test adds to the README's commands: a tiny scene's tiles, two iterations at 64 px."""

STOCK_MMSEG = r"""
import importlib.abc, importlib.util, json, sys

class BlockAlps(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "alps" or name.startswith("alps."):
            raise ImportError(f"the alps package is blocked here ({name})")
        return None

sys.meta_path.insert(0, BlockAlps())
compat, image, *runs = sys.argv[1:]
try:
    import mmcv.ops  # a full mmcv build has the compiled ops
except ImportError:  # mmcv-lite: the stand-in for them, loaded from its file, not from the alps package
    spec = importlib.util.spec_from_file_location("mmcv_ops_standin", compat)
    standin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standin)
    standin.ensure_mmcv_ops()
import torch
from mmseg.apis import inference_model, init_model

report = []
for work, checkpoint in zip(runs[::2], runs[1::2]):
    torch.load(checkpoint, weights_only=True)  # stock torch.load, no allow-list
    model = init_model(f"{work}/config.py", checkpoint, device="cpu")
    result = inference_model(model, image)
    pred = result.pred_sem_seg.data[0]
    report.append({"classes": list(model.dataset_meta["classes"]), "shape": list(pred.shape),
                   "values": sorted(int(v) for v in pred.unique())})
alps = sorted(m for m in sys.modules if m == "alps" or m.startswith("alps."))
print(json.dumps({"runs": report, "alps_modules": alps}))
"""


def _readme_block(kind: str) -> str:
    section = README.read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{kind}\n", 1)[1].split("```", 1)[0]


def readme_commands() -> list[list[str]]:
    """The ``alps`` commands of the README's journey, as argument lists (comments dropped)."""
    commands = [shlex.split(line, comments=True) for line in _readme_block("bash").splitlines()]
    return [command for command in commands if command]


def _write_scene(path: Path) -> None:
    """256 x 192 px of two LoveDA tiles side by side, in UTM 50N at 0.3 m, the last rows declared no-data."""
    left = np.asarray(Image.open(shared_data("loveda", "img_dir", "0.png")))[:HEIGHT, :128]
    right = np.asarray(Image.open(shared_data("loveda", "img_dir", "1.png")))[:HEIGHT, :128]
    pixels = np.maximum(np.concatenate([left, right], axis=1), 1)  # 0 is the no-data value
    pixels[-NODATA_ROWS:] = 0
    path.parent.mkdir(parents=True)
    profile = {"driver": "GTiff", "height": HEIGHT, "width": WIDTH, "count": 3, "dtype": "uint8"}
    with rasterio.open(path, "w", **profile, crs=CRS, transform=TRANSFORM, nodata=0) as dst:
        dst.write(np.moveaxis(pixels, -1, 0))


def _write_labeled(root: Path) -> None:
    """The user's labeled tiles: 64 px crops of another LoveDA image and its ground truth (0 = no-data)."""
    image = np.asarray(Image.open(shared_data("loveda", "img_dir", "2.png")))
    truth = np.asarray(Image.open(shared_data("loveda", "ann_dir", "2.png"))).astype(np.int16) - 1
    label = np.where(truth < 0, 255, truth).astype(np.uint8)  # LoveDA 1..7 -> 0..6
    for split, offsets in (("train", [0, 64, 128, 192]), ("val", [256, 320])):
        for i, y in enumerate(offsets):
            for sub, data in (("img_dir", image), ("ann_dir", label)):
                (root / sub / split).mkdir(parents=True, exist_ok=True)
                Image.fromarray(data[y : y + 64, 512:576]).save(root / sub / split / f"t{i}.png")
    (root / "classes.json").write_text(json.dumps({"classes": LOVEDA_CLASSES}))


def _label(path: Path) -> tuple[np.ndarray, rasterio.Affine, str]:
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.crs.to_string()


def _check_georeferenced_label(path: Path, names: list[str] | None, k: int) -> np.ndarray:
    """A label GeoTIFF in the scene's CRS and transform, values 0..k-1 or 255, the no-data strip 255."""
    label, transform, crs = _label(path)
    assert crs == CRS and transform == TRANSFORM and label.shape == (HEIGHT, WIDTH)
    assert set(np.unique(label)) <= {*range(k), 255}
    assert (label[-NODATA_ROWS:] == 255).all() and (label[:-NODATA_ROWS] != 255).any()
    if names is not None:  # what GDAL (and so QGIS) reads: category names and the attribute table
        info = gdal_label_info(path)
        assert info["categories"] == names and 'AUTHORITY["EPSG","32650"]' in info["crs_wkt"]
        assert [row[1] for row in info["rat_rows"]] == names
    return label


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_the_readme_journey_from_a_scene_to_a_trained_model(tmp_path, monkeypatch, capsys):
    _write_scene(tmp_path / "scenes" / "scene.tif")
    _write_labeled(tmp_path / "labeled")
    (tmp_path / "map.yaml").write_text(_readme_block("yaml"))
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    assert [c[1] for c in commands] == [
        "label",
        "apply-class-map",
        "pl-dataset",
        "pretrain",
        "finetune",
        "predict",
        "predict",
        "vectorize",
    ]
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for command in commands:
            assert command[0] == "alps"
            assert main([*command[1:], *SMALL.get(command[1], [])]) == 0, command
    wall = time.monotonic() - started
    with capsys.disabled():
        print(f"\nthe README's journey took {wall:.1f} s")

    # 1. alps label: cluster ids in the scene's CRS, no-data unlabeled, gallery shares of the scene's pixels.
    card = json.loads(Path("out/label_card.json").read_text())
    k = card["k"]
    clusters = _check_georeferenced_label(Path("out/labels/scene.tif"), None, k)
    gallery = json.loads(Path("out/gallery/gallery.json").read_text())
    assert gallery["total_pixels"] == HEIGHT * WIDTH
    assert sum(row["pixel_share"] for row in gallery["clusters"]) == pytest.approx(card["coverage"])

    # Training reads PL datasets; given the label output itself, it names the command that makes one.
    assert main(["pretrain", "out", "work/wrong"]) == 2
    assert "alps pl-dataset out PL_DIR" in capsys.readouterr().err

    # 2. apply-class-map: the map's classes only, exactly the map applied to the cluster labels; out/ kept.
    class_map = load_class_map("map.yaml", k)
    names = list(class_map.names)
    named = _check_georeferenced_label(Path("named/labels/scene.tif"), names, len(names))
    np.testing.assert_array_equal(named, class_map.lut()[clusters])
    assert "class_map" not in json.loads(Path("out/label_card.json").read_text())
    assert json.loads(Path("named/classes.json").read_text())["classes"] == names
    assert Path("named/vis/scene.overlay.png").is_file()

    # 3. pl-dataset: train and val tiles of the named labels, georeferenced, the classes in the card.
    pl_card = json.loads(Path("pl/dataset_card.json").read_text())
    assert pl_card["classes"] == names and pl_card["num_classes"] == len(names)
    assert pl_card["images_per_split"]["train"] > 0 and pl_card["images_per_split"]["val"] > 0
    tile = next(Path("pl/ann_dir/val").glob("*.png"))
    with rasterio.open(tile) as src:  # its .aux.xml sidecar places it
        assert src.crs.to_string() == CRS and src.transform.a == TRANSFORM.a
        assert set(np.unique(src.read(1))) <= {*range(len(names)), 255}

    # 4-5. pretrain and finetune: metrics of the right classes; checkpoints of plain data with the names.
    for work, classes in (("work/pre", names), ("work/ft", LOVEDA_CLASSES)):
        metrics = json.loads(Path(work, "metrics.json").read_text())
        assert metrics["dataset"]["classes"] == classes and metrics["evaluated"]
        checkpoint = torch.load(Path(work, metrics["checkpoint"]), weights_only=True)  # no allow-list
        assert checkpoint["meta"]["dataset_meta"]["classes"] == classes
    assert json.loads(Path("work/ft/metrics.json").read_text())["from_checkpoint"].endswith("iter_2.pth")

    # 6. predict with each model: GeoTIFFs in the source CRS, their classes named, no-data left 255.
    for out, classes in (("pred-pre", names), ("pred", LOVEDA_CLASSES)):
        _check_georeferenced_label(Path(out, "labels", "scene.tif"), classes, len(classes))
        assert json.loads(Path(out, "classes.json").read_text())["classes"] == classes
        assert Path(out, "vis", "scene.overlay.png").is_file()

    # 7. vectorize: polygons in the CRS, named by the prediction's classes; pyogrio warns of nothing.
    import pyogrio

    info = pyogrio.read_info("pred/scene.gpkg")
    assert info["crs"] == CRS and info["fields"].tolist() == ["class_id", "area", "class_name"]
    _, _, _, (ids, _, polygon_names) = pyogrio.raw.read("pred/scene.gpkg")
    assert polygon_names.tolist() == [LOVEDA_CLASSES[i] for i in ids]
    assert not [w for w in caught if "pyogrio" in str(w.filename) or "extension" in str(w.message)]

    # Stock mmsegmentation runs both checkpoints without the alps package.
    runs = []
    for work in ("work/pre", "work/ft"):
        metrics = json.loads(Path(work, "metrics.json").read_text())
        runs += [str(tmp_path / work), str(tmp_path / work / metrics["checkpoint"])]
    compat = REPO_ROOT / "src" / "alps" / "train" / "mmcv_compat.py"
    stock = subprocess.run(
        [
            sys.executable,
            "-c",
            STOCK_MMSEG,
            str(compat),
            str(next(Path("pl/img_dir/val").glob("*.png"))),
            *runs,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"},
    )
    assert stock.returncode == 0, stock.stderr[-3000:]
    report = json.loads(stock.stdout.strip().splitlines()[-1])
    assert report["alps_modules"] == []
    assert [run["classes"] for run in report["runs"]] == [names, LOVEDA_CLASSES]
    assert all(run["shape"] == [64, 64] for run in report["runs"])
    assert set(report["runs"][0]["values"]) <= set(range(len(names)))


def test_the_readme_map_names_every_cluster_of_its_k():
    k = int(next(c for c in readme_commands() if c[1] == "label")[-1])
    mapping = yaml.safe_load(_readme_block("yaml"))
    assert sorted(mapping) == list(range(k))
