"""``alps pl-dataset`` of an ``alps label`` output: tiles of scene and label, empty ones out, keyed split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from alps.cli import main
from alps.geo.georef import Georef, label_geotiff
from alps.label_dataset import val_score

TRANSFORM = Affine(0.5, 0.0, 1000.0, 0.0, -0.5, 2000.0)


def _label_output(root: Path) -> Path:
    """A hand-made ``alps label`` output of one 128 px RGB scene: 3 clusters, its top-left 32 px unlabeled."""
    rng = np.random.default_rng(0)
    scene = root / "scenes" / "scene.tif"
    scene.parent.mkdir(parents=True)
    profile = {"driver": "GTiff", "height": 128, "width": 128, "count": 3, "dtype": "uint8"}
    with rasterio.open(scene, "w", **profile, crs="EPSG:32616", transform=TRANSFORM) as dst:
        dst.write(rng.integers(0, 255, (3, 128, 128), dtype=np.uint8))
    label = np.kron(rng.integers(0, 3, (8, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
    label[:32, :32] = 255
    out = root / "out"
    with label_geotiff(out / "labels" / "scene.tif", 128, 128, Georef("EPSG:32616", TRANSFORM)) as dst:
        dst.write(label, 1)
    inputs = [
        {"image_id": "scene", "file": str(scene), "crs": "EPSG:32616", "transform": list(TRANSFORM)[:6]}
    ]
    card = {"k": 3, "bands": None, "inputs": inputs, "label_files": ["scene.tif"], "tiling": {}}
    (out / "label_card.json").write_text(json.dumps(card))
    return out


def test_label_output_becomes_a_pl_dataset_with_a_keyed_split(tmp_path):
    out = _label_output(tmp_path)
    assert main(["pl-dataset", str(out), str(tmp_path / "pl"), "--tile-size", "32", "--seed", "3"]) == 0
    card = json.loads((tmp_path / "pl" / "dataset_card.json").read_text())
    assert card["num_classes"] == 3 and card["variant"] == "clusters" and "classes" not in card
    assert card["tiles"]["empty_left_out"] == 1 and card["images"] == 15  # the unlabeled corner tile
    val = sorted(p.stem for p in (tmp_path / "pl" / "ann_dir" / "val").glob("*.png"))
    expected = sorted(
        f"scene_{y}_{y + 32}_{x}_{x + 32}"
        for y in range(0, 128, 32)
        for x in range(0, 128, 32)
        if (x, y) != (0, 0) and val_score(3, f"scene_{y}_{y + 32}_{x}_{x + 32}") < 0.2
    )
    assert val == expected and card["images_per_split"] == {"train": 15 - len(val), "val": len(val)}
    tile = next((tmp_path / "pl" / "img_dir" / "val").glob("*.png"))
    _, y0, _, x0, _ = tile.stem.split("_")
    with rasterio.open(tile) as src, rasterio.open(tmp_path / "scenes" / "scene.tif") as scene:
        assert src.crs.to_epsg() == 32616 and src.transform == TRANSFORM * Affine.translation(
            int(x0), int(y0)
        )
        window = rasterio.windows.Window(int(x0), int(y0), 32, 32)
        np.testing.assert_array_equal(src.read(), scene.read(window=window))
    # Training refuses the label output itself, and names this command.
    assert main(["pretrain", str(out), str(tmp_path / "work")]) == 2
