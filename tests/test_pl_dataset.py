"""PL-dataset assembly (`alps pl-dataset`): complete or an error naming what is missing; never temp files;
images written with the labeling's bands; a killed paint job leaves nothing a rerun would trust."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alps.cli import main
from alps.io.images import read_image
from alps.pl_dataset import assemble_pl_dataset
from alps.sharding import ImageItem


def painted_shard(folder: Path, image_ids: list[str], k: int = 3) -> Path:
    """A painted shard as `alps paint` leaves it (labels/, vis/, paint_stats.json written last)."""
    for name in ("labels", "vis"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for number, image_id in enumerate(image_ids):
        label = np.full((8, 8), 255, np.uint8)
        label[:4] = number % k
        Image.fromarray(label).save(folder / "labels" / f"{image_id}.png")
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "vis" / f"{image_id}.png")
    (folder / "paint_stats.json").write_text(json.dumps({"images": len(image_ids), "k": k}))
    return folder


def images(folder: Path, image_ids: list[str], bands: int = 3) -> list[ImageItem]:
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    rng = np.random.default_rng(0)
    for image_id in image_ids:
        path = folder / f"{image_id}.png"
        Image.fromarray(rng.integers(0, 255, (8, 8, bands), dtype=np.uint8)).save(path)
        items.append(ImageItem(image_id, path))
    return items


def test_missing_painted_images_fail_naming_them(tmp_path):
    items = images(tmp_path / "img", ["a", "b", "c", "d"])
    shard = painted_shard(tmp_path / "shard_0000", ["a", "b"])  # a stale shard of the old sharding
    with pytest.raises(ValueError, match=r"2 image\(s\) of split 'train' have no painted label .*: c, d"):
        assemble_pl_dataset(items, [shard], tmp_path / "pl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img", "shard_0000"]  # nothing half-built
    card = assemble_pl_dataset(
        items, [shard, painted_shard(tmp_path / "shard_0001", ["c", "d"])], tmp_path / "pl"
    )
    assert card["images"] == 4


def test_leftover_temp_files_are_never_read_as_data(tmp_path):
    items = images(tmp_path / "img", ["a"])
    shard = painted_shard(tmp_path / "shard", ["a"])
    # What a killed atomic write leaves (alps.io.atomic.atomic_output's hidden temporary).
    (shard / "labels" / ".a.png.x1y2.png").write_bytes(b"")
    card = assemble_pl_dataset(items, [shard], tmp_path / "pl")
    assert card["images"] == 1
    assert sorted(p.name for p in (tmp_path / "pl/ann_dir/train").iterdir()) == ["a.png"]


def test_shard_without_stats_is_incomplete(tmp_path):
    items = images(tmp_path / "img", ["a"])
    shard = painted_shard(tmp_path / "shard", ["a"])
    (shard / "paint_stats.json").unlink()
    with pytest.raises(ValueError, match="no paint_stats.json; the shard is incomplete"):
        assemble_pl_dataset(items, [shard], tmp_path / "pl")


def test_images_are_written_with_the_labeling_bands(tmp_path):
    items = images(tmp_path / "img", ["a"], bands=4)  # RGBA-like 4 bands: which three were labeled matters
    shard = painted_shard(tmp_path / "shard", ["a"])
    code = main(
        [
            "pl-dataset",
            str(tmp_path / "img"),
            str(tmp_path / "pl"),
            "--paint-dirs",
            str(shard),
            "--bands",
            "4,3,2",
        ]
    )
    assert code in (0, None)
    written = np.asarray(Image.open(tmp_path / "pl/img_dir/train/a.png"))
    np.testing.assert_array_equal(written, read_image(items[0].path, bands=[4, 3, 2]))
    assert not np.array_equal(written, read_image(items[0].path))
    assert json.loads((tmp_path / "pl/dataset_card.json").read_text())["bands"] == [4, 3, 2]


def test_train_and_val_splits(tmp_path):
    train = images(tmp_path / "train", ["a", "b"])
    val = images(tmp_path / "val", ["v"])
    card = assemble_pl_dataset(
        {"train": train, "val": val},
        {
            "train": [painted_shard(tmp_path / "t0", ["a", "b"])],
            "val": [painted_shard(tmp_path / "v0", ["v"])],
        },
        tmp_path / "pl",
    )
    assert card["split"] == "train" and card["images_per_split"] == {"train": 2, "val": 1}
    for split, names in (("train", ["a.png", "b.png"]), ("val", ["v.png"])):
        for folder in ("img_dir", "ann_dir"):
            assert sorted(p.name for p in (tmp_path / "pl" / folder / split).iterdir()) == names
    with pytest.raises(ValueError, match="come from different labelings"):
        assemble_pl_dataset(
            {"train": train, "val": val},
            {
                "train": [painted_shard(tmp_path / "t1", ["a", "b"])],
                "val": [painted_shard(tmp_path / "v1", ["v"], 5)],
            },
            tmp_path / "pl2",
        )


def _paint_then_die(mask_shard, feature_shard, model, out_dir):
    """`alps paint` killed with SIGKILL half-way through writing its labels."""
    import alps.pipeline as pipeline

    original = pipeline.paint_mask_sets

    def dying(mask_sets, *args, **kwargs):
        original(mask_sets[:1], *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    pipeline.paint_mask_sets = dying
    pipeline.run_paint(mask_shard, feature_shard, model, out_dir)  # the model's own area threshold


def test_a_killed_paint_job_leaves_no_shard_and_the_rerun_completes(tmp_path):
    from alps.cluster import ClusterConfig
    from alps.features.encoders import build_encoder
    from alps.pipeline import build_mask_generator, run_cluster, run_features, run_masks, run_paint
    from alps.sharding import images_from_source

    rng = np.random.default_rng(0)
    folder = tmp_path / "img"
    folder.mkdir()
    for name in ("a", "b", "c"):
        image = np.zeros((64, 64, 3), np.uint8)
        image[: rng.integers(16, 48)] = rng.integers(0, 255, 3)
        Image.fromarray(image).save(folder / f"{name}.png")
    items = images_from_source(folder)
    masks, features, model = tmp_path / "m.parquet", tmp_path / "f.npz", tmp_path / "km.npz"
    run_masks(items, build_mask_generator("felzenszwalb", {"scale": 100, "min_size": 30}), masks)
    run_features(items, masks, build_encoder("efficientnet-lite0"), features)
    run_cluster([features], ClusterConfig(k=2, batch_size=64, seed=0), 1.0, model)
    shard = tmp_path / "paint" / "shard_0000"
    process = multiprocessing.get_context("fork").Process(
        target=_paint_then_die, args=(masks, features, model, shard)
    )
    process.start()
    process.join(120)
    assert process.exitcode == -signal.SIGKILL
    # Before: the labels of the first image (and no paint_stats.json) at the shard's path, which Snakemake
    # and pl-dataset took for a painted shard. Now the shard's path is empty until the job finishes.
    assert not shard.exists()
    run_paint(masks, features, model, shard)
    assert assemble_pl_dataset(items, [shard], tmp_path / "pl")["images"] == 3


def test_a_pl_dataset_records_the_dataset_it_labels_and_pretrains_at_its_scale(tmp_path):
    """`alps prepare folder` -> `alps pl-dataset` from its manifest: the card names the source dataset,
    so that pre-training takes that dataset's crop and scale (alps.train.configs.pl_source_kind)."""
    from alps.datasets import folder
    from alps.io.manifest import read_manifest
    from alps.train.configs import dataset_spec
    from alps.train.scales import DEFAULT_CROPS

    images(tmp_path / "raw", ["scene_a", "scene_b"])
    assert main(["prepare", "folder", str(tmp_path / "raw"), str(tmp_path / "ds")]) == 0
    manifest = tmp_path / "ds" / "manifest.csv"
    ids = sorted(read_manifest(manifest)["image_id"])
    shard = painted_shard(tmp_path / "shard", ids)
    split = str(read_manifest(manifest)["split"].iloc[0])
    arguments = ["pl-dataset", str(manifest), str(tmp_path / "pl"), "--paint-dirs", str(shard)]
    assert main([*arguments, "--split", split]) == 0
    card = json.loads((tmp_path / "pl" / "dataset_card.json").read_text())
    assert card["source_dataset"] == folder.DATASET_NAME
    assert dataset_spec("pl", tmp_path / "pl").crop_size == (DEFAULT_CROPS["folder"],) * 2
    # A folder of images has no card: no source, the PL default.
    assert main(["pl-dataset", str(tmp_path / "raw"), str(tmp_path / "pl2"), "--paint-dirs", str(shard)]) == 0
    assert "source_dataset" not in json.loads((tmp_path / "pl2" / "dataset_card.json").read_text())
