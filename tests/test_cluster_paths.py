"""One clustering path: `alps label` and the sharded stages (`alps masks/features/cluster/paint`, as the
workflow runs them) give byte-identical models and labels; paint takes its gate from the model and matches
features to masks by id; a crafted model file never runs code."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
from PIL import Image

from alps.cli import main
from alps.cluster import ClusterModel
from alps.features.shards import read_feature_shard, write_feature_shard

from conftest import shared_data

MASKS = ["--masks", "felzenszwalb", "--mask-params", json.dumps({"scale": 100, "min_size": 30})]
CLUSTER = ["--k", "4", "--seed", "3", "--epochs", "2", "--area-threshold", "0.3"]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Seven 128x160 crops of the real Potsdam tile."""
    source = np.asarray(Image.open(shared_data("potsdam", "img_dir", "2_10_0_0_512_512.png")).convert("RGB"))
    folder = tmp_path_factory.mktemp("images")
    for i in range(7):
        y, x = (i // 3) * 180, (i % 3) * 160
        Image.fromarray(source[y : y + 128, x : x + 160]).save(folder / f"tile_{i}.png")
    return folder


@pytest.fixture(scope="module")
def both_paths(image_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("paths")
    assert main(["label", str(image_dir), str(root / "label"), *MASKS, *CLUSTER]) == 0
    shards = root / "shards"
    for index in range(3):  # 7 images in shards of 3: 3 + 3 + 1
        shard = ["--shard-index", str(index), "--shard-size", "3"]
        masks, features = shards / f"m{index}.parquet", shards / f"f{index}.npz"
        assert main(["masks", str(image_dir), str(masks), *shard, *MASKS]) == 0
        assert main(["features", str(image_dir), str(masks), str(features), *shard]) == 0
    model = shards / "kmeans.npz"
    features = [str(shards / f"f{i}.npz") for i in (2, 0, 1)]  # any order
    assert main(["cluster", *features, "--out", str(model), *CLUSTER]) == 0
    for index in range(3):
        paint = [str(shards / f"m{index}.parquet"), str(shards / f"f{index}.npz"), str(model)]
        # One folder per shard, each replaced whole by its paint job (as the workflow's).
        assert main(["paint", *paint, str(shards / f"paint{index}")]) == 0
    return root / "label", shards


def _digests(*folders):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.glob("*.png"))
    }


def _painted(shards):
    """The labels of every painted shard of `both_paths`."""
    return _digests(*(shards / f"paint{index}" / "labels" for index in range(3)))


def test_label_and_sharded_stages_give_identical_models_and_labels(both_paths):
    label_dir, shards = both_paths
    single = ClusterModel.load(label_dir / "kmeans.npz")
    sharded = ClusterModel.load(shards / "kmeans.npz")
    assert single.centers.tobytes() == sharded.centers.tobytes()
    assert single.card["vectors_per_epoch"] == sharded.card["vectors_per_epoch"] > 4
    assert single.area_threshold == sharded.area_threshold == 0.3
    labels = _digests(label_dir / "labels")
    assert len(labels) == 7 and labels == _painted(shards)


def test_paint_uses_the_model_threshold_and_refuses_another(both_paths, tmp_path, capsys):
    _, shards = both_paths
    paint = [str(shards / "m0.parquet"), str(shards / "f0.npz"), str(shards / "kmeans.npz")]
    assert main(["paint", *paint, str(tmp_path / "same"), "--area-threshold", "0.3"]) == 0
    expected = _painted(shards)
    painted = _digests(tmp_path / "same" / "labels")
    assert painted and all(expected[name] == digest for name, digest in painted.items())
    assert main(["paint", *paint, str(tmp_path / "other"), "--area-threshold", "0.5"]) == 2
    error = capsys.readouterr().err
    assert "--area-threshold 0.5 differs from the 0.3" in error and "kmeans.npz" in error
    assert not (tmp_path / "other").exists()


def test_paint_matches_features_to_masks_by_id(both_paths, tmp_path, capsys):
    _, shards = both_paths
    features = read_feature_shard(shards / "f0.npz")
    order = np.random.default_rng(0).permutation(len(features))
    shuffled = tmp_path / "shuffled.npz"
    write_feature_shard(
        shuffled,
        features.vectors[order],
        features.image_ids[order],
        features.mask_ids[order],
        features.area_fraction[order],
        features.encoder,
    )
    model = str(shards / "kmeans.npz")
    assert main(["paint", str(shards / "m0.parquet"), str(shuffled), model, str(tmp_path / "p")]) == 0
    expected = _painted(shards)
    painted = _digests(tmp_path / "p" / "labels")
    assert painted and all(expected[name] == digest for name, digest in painted.items())
    # A feature shard that lacks a mask (stale) is refused with the mask named.
    short = tmp_path / "short.npz"
    keep = slice(1, None)
    write_feature_shard(
        short,
        features.vectors[keep],
        features.image_ids[keep],
        features.mask_ids[keep],
        features.area_fraction[keep],
        features.encoder,
    )
    assert main(["paint", str(shards / "m0.parquet"), str(short), model, str(tmp_path / "q")]) == 2
    assert "has no vector for mask 0 of image" in capsys.readouterr().err


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_paint_with_a_crafted_pickle_model_never_runs_it(both_paths, tmp_path, capsys):
    _, shards = both_paths
    marker = tmp_path / "PAYLOAD_RAN"
    for name in ("kmeans.npz", "kmeans.joblib"):
        crafted = tmp_path / name
        crafted.write_bytes(pickle.dumps(_Payload(marker)))
        args = [
            "paint",
            str(shards / "m0.parquet"),
            str(shards / "f0.npz"),
            str(crafted),
            str(tmp_path / "p"),
        ]
        assert main(args) == 2
        assert "is not an ALPS k-means model" in capsys.readouterr().err
    assert not marker.exists()


def test_cli_k_auto_reports_the_criterion_of_every_k(tmp_path, rng):
    centres = rng.normal(size=(5, 64)) * 3
    sizes = [300, 150, 80, 40, 20]
    vectors = np.concatenate(
        [c + 0.2 * rng.normal(size=(n, 64)) for c, n in zip(centres, sizes, strict=True)]
    )
    ids = np.repeat([f"img{i}" for i in range(59)], 10)  # 590 masks, 10 per image
    shard = write_feature_shard(
        tmp_path / "f.npz", vectors, ids, np.tile(np.arange(10), 59), np.full(590, 0.01), "fake"
    )
    args = [
        "cluster",
        str(shard),
        "--out",
        str(tmp_path / "kmeans.npz"),
        "--k",
        "auto",
        "--k-range",
        "2",
        "12",
    ]
    assert main(args) == 0
    model = ClusterModel.load(tmp_path / "kmeans.npz")
    card = json.loads((tmp_path / "kmeans.npz.card.json").read_text())
    assert model.k == 5 and card["k_estimated"] and card["k"] == 5
    assert sorted(map(int, card["k_criterion"])) == list(range(2, 13))
    assert max(card["k_criterion"], key=card["k_criterion"].get) == "5"
