"""SAMRS converter: three subsets (folders and a zip) merged into one pool, split 7:3 with a seed.

No SAMRS sample is public (../shared/data/unlabeled/PROVENANCE.md), so the subsets are stood in for by real
images of their source datasets: DOTA/iSAID images for SOTA (SAMRS made SOTA from DOTA-v2.0), DIOR and
NWPU VHR-10 JPEGs for SIOR (from DIOR), other DOTA and NEON images for FAST.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from raw_layouts import samrs as make_raw

from alps.datasets import DatasetSourceError, prepare_dataset
from alps.datasets.samrs import prepare_samrs
from alps.io.manifest import read_manifest

from conftest import shared_data

NWPU = ("060.jpg", "064.jpg", "109.jpg", "134.jpg")


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_raw(tmp_path_factory.mktemp("samrs") / "raw")


@pytest.fixture(scope="module")
def built(raw: Path) -> Path:
    return prepare_dataset("samrs", raw, raw.parent / "out", seed=0).parent


def test_pool_split_and_files(raw: Path, built: Path) -> None:
    manifest = read_manifest(built / "manifest.csv")
    assert len(manifest) == 10
    assert (manifest["split"] == "val").sum() == 3 and (
        manifest["split"] == "train"
    ).sum() == 7  # round(0.3 * 10)
    assert set(manifest["source"]) == {"SOTA", "SIOR", "FAST"}
    ids = set(manifest["image_id"])
    assert {"sota_P0003", "sior_DIOR_00001", "sior_nwpu_060", "fast_OSBS_029"} <= ids
    rows = manifest.set_index("image_id")
    # Bytes are copied unchanged: JPEG stays JPEG, and the SAMRS label is kept beside its image.
    dior = rows.loc["sior_DIOR_00001"]
    assert dior.image_path.endswith("sior_DIOR_00001.jpg") and dior.label_path == ""
    assert (built / dior.image_path).read_bytes() == shared_data(
        "unlabeled", "dior", "DIOR_00001.jpg"
    ).read_bytes()
    sota = rows.loc["sota_P0004"]
    assert (sota.width, sota.height) == (824, 1464)
    assert (built / sota.label_path).read_bytes() == (raw / "SOTA/labels/P0004.png").read_bytes()
    assert sota.label_path == f"ann_dir/{sota.split}/sota_P0004.png"
    card = json.loads((built / "dataset_card.json").read_text())
    assert card["source"]["subsets"]["SOTA"] == {"images": 3, "labels": 3, "labels_without_image": 0}
    assert card["split"]["images"] == {"train": 7, "val": 3}


def test_seeded_split(raw: Path, built: Path, tmp_path: Path) -> None:
    reference = read_manifest(built / "manifest.csv")
    again = read_manifest(prepare_samrs(raw, tmp_path / "again", seed=0))
    assert again.equals(reference)
    splits = [read_manifest(prepare_samrs(raw, tmp_path / f"s{seed}", seed=seed))["split"] for seed in (1, 2)]
    assert any(not split.equals(reference["split"]) for split in splits)
    subset = read_manifest(prepare_samrs(raw, tmp_path / "sub", subsets=("SIOR", "FAST")))
    assert len(subset) == 7 and (subset["split"] == "val").sum() == 2  # round(0.3 * 7)


def test_errors(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw")
    # A label that does not fit its image.
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(raw / "SOTA/labels/P0005.png")
    with pytest.raises(DatasetSourceError, match=r"P0005\.png: label is 10x10 px but its image .*884x977"):
        prepare_samrs(raw, tmp_path / "out")
    manifest = read_manifest(prepare_samrs(raw, tmp_path / "out", on_error="skip"))
    assert "sota_P0005" not in set(manifest["image_id"]) and len(manifest) == 9
    # A truncated subset archive.
    archive = raw / "SIOR.zip"
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(DatasetSourceError, match=r"SIOR\.zip: not a readable zip archive"):
        prepare_samrs(raw, tmp_path / "out2")
    # A missing subset.
    with pytest.raises(DatasetSourceError, match=r"no SOTA/ folder or SOTA\.zip"):
        prepare_samrs(tmp_path / "out", tmp_path / "out3", subsets=("SOTA",))
    with pytest.raises(ValueError, match="subsets"):
        prepare_samrs(raw, tmp_path / "out3", subsets=("DOTA",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]
