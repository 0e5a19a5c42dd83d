"""The sam backend through the whole engine, on a tiny random SAM loaded from a checkpoint file."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from alps.cli import main
from alps.cluster import ClusterConfig
from alps.features.encoders import build_encoder
from alps.pipeline import build_mask_generator, images_from_source, label

from tiny_sam import make_tiny_sam_checkpoint

# Random weights give near-random masks: open every gate of AMG so that masks come out.
PERMISSIVE = {
    "points_per_side": 4,
    "points_per_batch": 16,
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "box_nms_thresh": 0.9,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_sam_checkpoint(tmp_path_factory.mktemp("sam") / "sam_tiny.pth")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Three images of different shapes and formats (PNG landscape, PNG portrait, TIFF square).

    Synthetic, so that the sam path is tested in every clone (the real samples in ../shared/data drive the
    other backends' tests).
    """
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, (height, width) in {
        "potsdam.png": (120, 160),
        "portrait.png": (128, 96),
        "whu.tif": (128, 128),
    }.items():
        pixels = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
        pixels[10 : height // 2, 10 : width // 2] = (200, 40, 40)
        pixels[height // 2 + 5 : height - 5, width // 2 : width - 8] = (40, 200, 90)
        Image.fromarray(pixels).save(folder / name)
    return folder


def _run(image_dir, out, checkpoint):
    generator = build_mask_generator(
        "sam", PERMISSIVE, sam_checkpoint=checkpoint, sam_model="vit_tiny", device="cpu"
    )
    calls = []
    handle = generator.model.image_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        card = label(
            images_from_source(image_dir),
            out,
            generator,
            build_encoder("sam"),
            ClusterConfig(k=3, batch_size=64, seed=0),
            area_threshold=0.5,
        )
    finally:
        handle.remove()
    return card, len(calls)


@pytest.mark.slow
def test_one_encoder_pass_per_image_and_identical_bytes(image_dir, tmp_path, checkpoint):
    card, encoder_calls = _run(image_dir, tmp_path / "a", checkpoint)
    # Masks AND features from a single image-encoder pass per image.
    assert encoder_calls == 3
    assert card["mask_backend"] == "sam" and card["encoder"] == "sam" and card["masks"] > 3
    _run(image_dir, tmp_path / "b", checkpoint)
    for name in ("potsdam", "portrait", "whu"):
        first = (tmp_path / "a" / "labels" / f"{name}.png").read_bytes()
        assert first == (tmp_path / "b" / "labels" / f"{name}.png").read_bytes()
        label_png = np.asarray(Image.open(tmp_path / "a" / "labels" / f"{name}.png"))
        assert label_png.shape == np.asarray(Image.open(next(image_dir.glob(f"{name}.*")))).shape[:2]
    assert (
        hashlib.sha256((tmp_path / "a" / "features.npz").read_bytes()).hexdigest()
        == hashlib.sha256((tmp_path / "b" / "features.npz").read_bytes()).hexdigest()
    )


@pytest.mark.slow
def test_sharded_cli_with_sam_features_in_the_masks_job(image_dir, tmp_path, checkpoint):
    masks = tmp_path / "m.parquet"
    features = tmp_path / "f.npz"
    code = main(
        [
            "masks",
            str(image_dir),
            str(masks),
            "--shard-index",
            "0",
            "--shard-size",
            "2",
            "--masks",
            "sam",
            "--sam-checkpoint",
            str(checkpoint),
            "--sam-model",
            "vit_tiny",
            "--mask-params",
            json.dumps(PERMISSIVE),
            "--encoder",
            "sam",
            "--features-out",
            str(features),
        ]
    )
    assert code == 0 and masks.is_file() and features.is_file()
    assert (
        main(
            [
                "cluster",
                str(features),
                "--out",
                str(tmp_path / "km.npz"),
                "--k",
                "2",
                "--area-threshold",
                "0.5",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "paint",
                str(masks),
                str(features),
                str(tmp_path / "km.npz"),
                str(tmp_path / "p"),
                "--area-threshold",
                "0.5",
                "--binary",
            ]
        )
        == 0
    )
    assert sorted(p.stem for p in (tmp_path / "p" / "labels").glob("*.png")) == ["portrait", "potsdam"]
    assert sorted(p.stem for p in (tmp_path / "p" / "binary").glob("*.png")) == ["portrait", "potsdam"]


def test_features_stage_refuses_sam_encoder(image_dir, tmp_path, capsys):
    from alps.masks.base import MaskSet
    from alps.masks.shards import write_mask_shard

    write_mask_shard(tmp_path / "m.parquet", [MaskSet.from_binary("potsdam", np.ones((1, 120, 160), bool))])
    code = main(
        ["features", str(image_dir), str(tmp_path / "m.parquet"), str(tmp_path / "f.npz"), "--encoder", "sam"]
    )
    assert code == 2 and "--features-out" in capsys.readouterr().err
    assert not (tmp_path / "f.npz").exists()
