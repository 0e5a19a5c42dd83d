"""SAMRS* labels: box-prompted SAM over a prepared dataset of real DOTA images, gathered by ``pl-dataset``.

The images and box lines are the real DOTA samples in ../shared/data/unlabeled/dota; the dataset is made by
the ``folder`` converter (P0706, 1111x1182, becomes four overlapping 1024 tiles: the window case). SAM is the
tiny random-weight model of tests/tiny_sam.py, so its masks are noise; what is checked is what must hold
for any masks: labels only inside the boxes, with the class of a box that covers the pixel. A fake
predictor whose mask is the whole box makes the painting exactly predictable.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import ArrayLike
from PIL import Image

from alps.box_labels import (
    LABELER_NAME,
    BoxMaskPredictor,
    BoxPromptLabeler,
    box_pixel_bounds,
    label_box_shard,
    read_classes,
)
from alps.boxes import BoxFileError, read_dota_boxes
from alps.cli import main
from alps.datasets import prepare_dataset
from alps.io.manifest import read_manifest
from alps.masks.base import MaskSet, encode_masks
from alps.masks.sam import load_sam
from alps.pipeline import assemble_pl_dataset, images_from_source

from conftest import shared_data
from tiny_sam import make_tiny_sam_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ("plane", "ship", "harbor", "large-vehicle", "small-vehicle")
IMAGES = ("DOTA_P0706", "DOTA_P1888", "DOTA_P2805__1024__0___0")
# Box lines kept per source (header lines are kept too): few prompts keep the tiny SAM fast. P0706's first
# box lies past x = 1024 (only the right-hand tiles hold it, clipped), two ships lie on the harbour.
KEEP = {
    "DOTA_P0706": (3, 4, 5, 538),
    "DOTA_P1888": (3, 4, 5, 6, 7, 8),
    "DOTA_P2805__1024__0___0": (1, 2, 3, 4),
}


@pytest.fixture(scope="module")
def sources() -> Path:
    return shared_data("unlabeled", "dota")


@pytest.fixture(scope="module")
def manifest(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    for name in IMAGES:
        (raw / f"{name}.png").symlink_to(sources / f"{name}.png")
    return prepare_dataset("folder", raw, tmp_path_factory.mktemp("dataset") / "dota", tile_size=1024)


@pytest.fixture(scope="module")
def boxes_dir(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("labelTxt")
    for name, keep in KEEP.items():
        lines = (sources / f"{name}.txt").read_text().splitlines()
        chosen = [line for number, line in enumerate(lines, 1) if number in keep or ":" in line]
        (folder / f"{name}.txt").write_text("\n".join(chosen) + "\n")
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_sam_checkpoint(tmp_path_factory.mktemp("sam") / "sam_tiny.pth")


@pytest.fixture(scope="module")
def labeler(checkpoint: Path) -> BoxPromptLabeler:
    return BoxPromptLabeler.from_checkpoint(checkpoint, "vit_tiny")


class RectangleMasks:
    """A fake SAM whose mask is every pixel of its box: makes the painted label exactly predictable."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def predict_masks(self, image: np.ndarray, boxes: ArrayLike, image_id: str) -> MaskSet:
        height, width = image.shape[:2]
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
        self.calls.append((image_id, len(boxes)))
        masks = np.zeros((len(boxes), height, width), dtype=bool)
        for mask, box in zip(masks, boxes, strict=True):
            row0, row1, col0, col1 = box_pixel_bounds(box, height, width)
            mask[row0:row1, col0:col1] = True
        return MaskSet(
            image_id,
            height,
            width,
            encode_masks(masks) if len(masks) else [],
            [1.0] * len(masks),
            [1.0] * len(masks),
        )


def _rows(manifest: Path) -> dict[str, dict]:
    return {row["image_id"]: row for row in read_manifest(manifest).to_dict("records")}


def _expected_rectangles(row: dict, boxes_dir: Path) -> list[tuple[int, int, int, int, int]]:
    """``(row0, row1, col0, col1, class id)`` of each box of a manifest image, by hand from the raw lines."""
    stem = Path(row["source"]).stem
    wx, wy, ww, wh = row["window_x"], row["window_y"], row["window_w"], row["window_h"]
    rects = []
    for box in read_dota_boxes(boxes_dir / f"{stem}.txt"):
        x0, y0, x1, y1 = box.hbb
        x0, x1 = max(x0 - wx, 0), min(x1 - wx, ww)
        y0, y1 = max(y0 - wy, 0), min(y1 - wy, wh)
        if x1 > x0 and y1 > y0:
            rects.append(
                (math.floor(y0), math.ceil(y1), math.floor(x0), math.ceil(x1), CLASSES.index(box.class_name))
            )
    return rects


def _label(folder: Path, image_id: str) -> np.ndarray:
    return np.asarray(Image.open(folder / "labels" / f"{image_id}.png"))


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
    }


def test_read_classes(tmp_path: Path) -> None:
    assert read_classes("plane, ship,harbor") == ("plane", "ship", "harbor")
    assert read_classes(["a", "b"]) == ("a", "b")
    cards = tmp_path / "classes.json"
    cards.write_text(json.dumps({"classes": list(CLASSES), "palette": [[0, 0, 0]] * 5}))
    assert read_classes(cards) == CLASSES and read_classes(str(cards)) == CLASSES
    plain = tmp_path / "plain.json"
    plain.write_text('["x", "y"]')
    assert read_classes(plain) == ("x", "y")
    with pytest.raises(ValueError, match="repeated: \\['ship'\\]"):
        read_classes("ship,plane,ship")
    with pytest.raises(ValueError, match="class 2 has an empty name"):
        read_classes("ship,plane,")
    with pytest.raises(ValueError, match="256 classes; at most 255"):
        read_classes([f"c{i}" for i in range(256)])
    with pytest.raises(FileNotFoundError, match="classes file .*missing.json does not exist"):
        read_classes(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"classes": "ship"}')
    with pytest.raises(ValueError, match="expected a list of class names"):
        read_classes(tmp_path / "bad.json")


def test_box_pixel_bounds() -> None:
    # Every pixel whose square overlaps the box: [2.5, 7.2) in x covers columns 2..7.
    assert box_pixel_bounds((2.5, 1.0, 7.2, 3.0), 10, 10) == (1, 3, 2, 8)
    assert box_pixel_bounds((-4, -4, 20, 20), 10, 12) == (0, 10, 0, 12)
    assert box_pixel_bounds((3, 3, 3, 9), 10, 10)[2:] == (3, 3)  # no width: no pixel


def test_rectangle_masks_paint_exactly_with_windows_and_order(
    manifest: Path, boxes_dir: Path, tmp_path: Path
) -> None:
    fake = RectangleMasks()
    assert isinstance(fake, BoxMaskPredictor)
    out = tmp_path / "shard"
    stats = label_box_shard(manifest, boxes_dir, out, fake, CLASSES, split="train")
    rows = _rows(manifest)
    assert sorted(p.stem for p in (out / "labels").glob("*.png")) == sorted(rows)
    assert (stats["labeler"], stats["classes"], stats["k"], stats["images"]) == (
        LABELER_NAME,
        list(CLASSES),
        5,
        6,
    )
    on_disk = json.loads((out / "paint_stats.json").read_text())
    assert on_disk == json.loads(json.dumps(stats))
    for image_id, row in rows.items():
        rects = _expected_rectangles(row, boxes_dir)
        expected = np.full((row["height"], row["width"]), 255, np.uint8)
        # Largest first, equal areas in file order: smaller boxes end up on top.
        for r0, r1, c0, c1, cid in sorted(rects, key=lambda r: -(r[1] - r[0]) * (r[3] - r[2])):
            expected[r0:r1, c0:c1] = cid
        np.testing.assert_array_equal(_label(out, image_id), expected, err_msg=image_id)
        assert stats["per_image"][image_id]["boxes"] == len(rects)
        vis = np.asarray(Image.open(out / "vis" / f"{image_id}.png"))
        assert vis.shape == (row["height"], row["width"], 3)
    # The tiles of P0706 take the source's boxes, shifted; whole images take their own file.
    tile = stats["per_image"]["DOTA_P0706_158_1182_87_1111"]
    assert (tile["boxes_from"], tile["mapping"], tile["boxes"]) == ("DOTA_P0706", "source", 4)
    assert stats["per_image"]["DOTA_P0706_0_1024_0_1024"]["boxes"] == 3  # the first ship lies past x = 1024
    assert stats["per_image"]["DOTA_P1888"]["mapping"] == "image"
    assert stats["boxes"] == {
        "listed": 4 * 4 + 6 + 4,
        "outside_image": 2,
        "below_min_score": 0,
        "unknown_class": 0,
        "prompted": 24,
    }
    # Ships on the harbour stay visible: "807 331 800 324 817 309 823 316 ship" sits inside the harbour box.
    label = _label(out, "DOTA_P0706_0_1024_0_1024")
    assert label[320, 811] == CLASSES.index("ship") and label[200, 700] == CLASSES.index("harbor")
    # The same ship in the tile shifted by (87, 158): the window offset was applied.
    assert _label(out, "DOTA_P0706_158_1182_87_1111")[320 - 158, 811 - 87] == CLASSES.index("ship")


@pytest.mark.slow
def test_real_sam_shards_and_pl_dataset(
    manifest: Path, boxes_dir: Path, labeler: BoxPromptLabeler, checkpoint: Path, tmp_path: Path
) -> None:
    rows = _rows(manifest)
    shards = [tmp_path / f"shard_{i}" for i in range(2)]
    for index, shard in enumerate(shards):
        stats = label_box_shard(manifest, boxes_dir, shard, labeler, CLASSES, shard_index=index, shard_size=3)
        assert stats["images"] == 3 and stats["prompt_model"]["sam_model"] == "vit_tiny"
    for image_id, row in rows.items():
        label = _label(shards[0] if image_id < "DOTA_P0706_158_1182_87_1111" else shards[1], image_id)
        allowed = np.zeros((*label.shape, 256), dtype=bool)
        allowed[..., 255] = True
        for r0, r1, c0, c1, cid in _expected_rectangles(row, boxes_dir):
            allowed[r0:r1, c0:c1, cid] = True
        # Every painted pixel holds the class of a box that covers it; outside all boxes it is 255.
        assert np.take_along_axis(allowed, label[..., None].astype(np.int64), axis=2).all(), image_id
        assert (label != 255).any(), f"{image_id}: SAM painted nothing inside its boxes"

    # Two runs, one through the CLI (classes from a classes.json), give byte-identical shards.
    classes_json = tmp_path / "classes.json"
    classes_json.write_text(json.dumps({"classes": list(CLASSES)}))
    again = tmp_path / "again"
    args = [
        "box-labels",
        str(manifest),
        str(boxes_dir),
        str(again),
        "--shard-index",
        "1",
        "--shard-size",
        "3",
    ]
    args += ["--classes", str(classes_json), "--sam-checkpoint", str(checkpoint), "--sam-model", "vit_tiny"]
    assert main(args) == 0
    assert _digests(again) == _digests(shards[1]) and len(_digests(again)) == 6
    assert not list(tmp_path.glob(".*.tmp"))

    items = images_from_source(manifest, "train")
    card = assemble_pl_dataset(items, shards, tmp_path / "pl")
    assert card["num_classes"] == 5 and card["classes"] == list(CLASSES)
    assert (card["labeler"], card["variant"], card["images"], card["ignore_index"]) == (
        LABELER_NAME,
        "classes",
        6,
        255,
    )
    assert json.loads((tmp_path / "pl" / "dataset_card.json").read_text()) == card
    painted = sum(
        _label(s, p.stem).size - (_label(s, p.stem) == 255).sum()
        for s in shards
        for p in (s / "labels").iterdir()
    )
    assert sum(card["class_pixels"]) == painted
    assert sorted(p.name for p in (tmp_path / "pl" / "ann_dir" / "train").iterdir()) == sorted(
        f"{i}.png" for i in rows
    )
    assert (
        main(
            [
                "pl-dataset",
                str(manifest),
                str(tmp_path / "pl64"),
                "--paint-dirs",
                *map(str, shards),
                "--num-classes",
                "64",
            ]
        )
        == 0
    )
    card64 = json.loads((tmp_path / "pl64" / "dataset_card.json").read_text())
    assert card64["num_classes"] == 64 and len(card64["class_pixels"]) == 64
    assert card64["class_pixels"][:5] == card["class_pixels"] and card64["classes"] == list(CLASSES)


def test_num_classes_override_must_hold_every_painted_label(
    manifest: Path, boxes_dir: Path, tmp_path: Path
) -> None:
    shard = tmp_path / "shard"
    label_box_shard(manifest, boxes_dir, shard, RectangleMasks(), CLASSES)
    items = images_from_source(manifest, "train")
    # The rectangles paint harbour (2) through small-vehicle (4): 5 ids are needed.
    with pytest.raises(
        ValueError, match="--num-classes 4 is smaller than the largest painted label \\+ 1 \\(5\\)"
    ):
        assemble_pl_dataset(items, [shard], tmp_path / "pl", num_classes=4)
    assert not (tmp_path / "pl").exists() and not (tmp_path / ".pl.tmp").exists()
    assert assemble_pl_dataset(items, [shard], tmp_path / "pl", num_classes=5)["num_classes"] == 5


def test_cluster_shards_keep_their_card_and_do_not_mix(
    manifest: Path, boxes_dir: Path, tmp_path: Path
) -> None:
    items = images_from_source(manifest, "train")
    # A shard painted by `alps paint` before shards said who made them: clusters, K from its k.
    cluster = tmp_path / "cluster"
    (cluster / "labels").mkdir(parents=True)
    (cluster / "vis").mkdir()
    label = np.full((557, 712), 255, np.uint8)
    label[:100, :100] = 6
    Image.fromarray(label).save(cluster / "labels" / "DOTA_P1888.png")
    Image.fromarray(np.zeros((557, 712, 3), np.uint8)).save(cluster / "vis" / "DOTA_P1888.png")
    (cluster / "paint_stats.json").write_text(json.dumps({"images": 1, "k": 8, "class_pixels": [0] * 8}))
    # The dataset holds exactly the labeled images: here the one image that shard painted.
    painted = [item for item in items if item.image_id == "DOTA_P1888"]
    card = assemble_pl_dataset(painted, [cluster], tmp_path / "pl")
    assert (card["num_classes"], card["labeler"], card["variant"]) == (8, "alps", "clusters")
    assert "classes" not in card and card["class_pixels"][6] == 10000
    samrs = tmp_path / "samrs"
    label_box_shard(manifest, boxes_dir, samrs, RectangleMasks(), CLASSES, shard_index=1, shard_size=3)
    with pytest.raises(ValueError, match="come from different labelings"):
        assemble_pl_dataset(items, [cluster, samrs], tmp_path / "mixed")


def test_unknown_classes_scores_and_missing_files(manifest: Path, boxes_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "shard"
    label_box_shard(manifest, boxes_dir, out, RectangleMasks(), CLASSES, shard_index=1, shard_size=3)
    before = _digests(out)
    # P1888's first large vehicle is on line 5 of its file.
    with pytest.raises(
        ValueError, match="DOTA_P1888.txt, line 5: class 'large-vehicle' is not in the vocabulary"
    ):
        label_box_shard(
            manifest, boxes_dir, out, RectangleMasks(), ("plane", "ship", "harbor", "small-vehicle")
        )
    assert _digests(out) == before  # a failed run leaves the previous shard as it was
    with pytest.raises(ValueError, match="class 'large-vehicle' .* \\(did you mean 'Large_Vehicle'\\?\\)"):
        label_box_shard(
            manifest, boxes_dir, out, RectangleMasks(), (*CLASSES[:3], "Large_Vehicle", "small-vehicle")
        )

    fake = RectangleMasks()
    stats = label_box_shard(
        manifest, boxes_dir, tmp_path / "known", fake, ("plane", "ship", "harbor"), skip_unknown=True
    )
    assert stats["boxes"]["unknown_class"] == 6 and stats["per_image"]["DOTA_P1888"]["boxes"] == 0
    assert set(np.unique(_label(tmp_path / "known", "DOTA_P1888"))) == {255}

    scored = tmp_path / "scored"
    scored.mkdir()
    (scored / "DOTA_P2805__1024__0___0.txt").write_text(
        "359 663 369 497 543 509 531 677 plane 0 0.9\n540 884 363 862 392 674 570 695 plane 0 0.2\n"
    )
    (scored / "DOTA_P1888.txt").write_text("")  # an image without objects: an empty file
    (scored / "DOTA_P0706.txt").write_text("1 1 5 5 ship 0.3\n")
    stats = label_box_shard(
        manifest, scored, tmp_path / "scored_out", RectangleMasks(), CLASSES, min_score=0.5
    )
    assert (
        stats["boxes"]["below_min_score"] == 1 + 1
    )  # the weak plane, and the ship in the one tile at (0, 0)
    assert stats["per_image"]["DOTA_P2805__1024__0___0"]["boxes"] == 1

    (scored / "DOTA_P1888.txt").unlink()
    with pytest.raises(
        BoxFileError, match="no box file for image DOTA_P1888 \\(looked for DOTA_P1888.txt\\)"
    ):
        label_box_shard(manifest, scored, tmp_path / "x", RectangleMasks(), CLASSES)


def test_cli_reports_a_malformed_box_file(
    manifest: Path, boxes_dir: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in boxes_dir.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    with (broken / "DOTA_P1888.txt").open("a") as handle:
        handle.write("12 34 56 small-vehicle 0\n")
    args = [
        "box-labels",
        str(manifest),
        str(broken),
        str(tmp_path / "out"),
        "--shard-index",
        "1",
        "--shard-size",
        "3",
    ]
    args += ["--classes", ",".join(CLASSES), "--sam-checkpoint", str(checkpoint), "--sam-model", "vit_tiny"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "alps box-labels: error:" in error and "DOTA_P1888.txt, line 9: 3 number(s)" in error
    assert not (tmp_path / "out").exists()


def test_predict_masks_one_per_box_inside_the_box(checkpoint: Path, sources: Path) -> None:
    image = np.asarray(Image.open(sources / "DOTA_P1888.png").convert("RGB"))
    labeler = BoxPromptLabeler(load_sam(checkpoint, "vit_tiny"), batch_size=2)
    encodes: list[int] = []
    hook = labeler.model.image_encoder.register_forward_hook(lambda *_: encodes.append(1))
    try:
        empty = labeler.predict_masks(image, np.zeros((0, 4)), "P1888")
        assert len(empty) == 0 and encodes == []  # no box: SAM does not run
        boxes = np.array(
            [
                [10, 20, 200, 150],
                [400, 300, 712, 557],
                [0, 0, 711.5, 556.5],
                [100, 100, 101, 101],
                [50, 60, 90, 300],
            ]
        )
        masks = labeler.predict_masks(image, boxes, "P1888")
    finally:
        hook.remove()
    assert encodes == [1]  # one encoder pass for all five prompts (in three batches)
    assert len(masks) == 5 and masks.predicted_iou.shape == (5,)
    decoded = masks.decode()
    for mask, box in zip(decoded, boxes, strict=True):
        r0, r1, c0, c1 = box_pixel_bounds(box, 557, 712)
        outside = mask.copy()
        outside[r0:r1, c0:c1] = False
        assert not outside.any()
    assert decoded[2].any()  # the whole-image box: random SAM still predicts something
    with pytest.raises(ValueError, match="x0 <= x1"):
        labeler.predict_masks(image, [[10, 10, 5, 20]], "P1888")
    with pytest.warns(RuntimeWarning, match="bf16 autocast is only used on CUDA"):
        assert BoxPromptLabeler(labeler.model, bf16=True).bf16 is False
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        BoxPromptLabeler(labeler.model, batch_size=0)
    assert os.fspath(checkpoint).endswith(".pth")
