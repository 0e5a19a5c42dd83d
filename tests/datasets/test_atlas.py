"""ATLAS converter: NIfTI volumes (the real abdominal MR + liver mask) sliced to PNG, split by patient."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from miniature import ATLAS_STUDY, atlas_volume
from PIL import Image
from raw_layouts import atlas as make_raw

from alps.datasets import DatasetSourceError, prepare_dataset
from alps.datasets.atlas import patient_split, prepare_atlas
from alps.io.manifest import read_manifest

from conftest import shared_data

nib = pytest.importorskip("nibabel")

STUDY = ATLAS_STUDY


def _real_volume() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MR volume (int16, 117 x 91 x 20, LPS), its affine, and a 0/1/2 label made from its liver mask."""
    return atlas_volume(shared_data("medical", "totalsegmentator_abdomen_mr").parents[1])


def _save(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), path)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_raw(tmp_path_factory.mktemp("atlas") / "raw")


@pytest.fixture(scope="module")
def built(raw: Path) -> Path:
    return prepare_dataset("atlas", raw, raw.parent / "out").parent


def test_patient_split() -> None:
    patients = [f"tr{n:03d}" for n in range(90)]
    split = patient_split(patients, 1 / 3, seed=0)
    assert sum(s == "train" for s in split.values()) == 60 and sum(s == "test" for s in split.values()) == 30
    assert split == patient_split(list(reversed(patients)), 1 / 3, seed=0)  # order of discovery is irrelevant
    assert split != patient_split(patients, 1 / 3, seed=1)
    assert patient_split(["tr000"], 1 / 3, seed=0) == {"tr000": "train"}
    assert sorted(patient_split(["a", "b"], 0.01, seed=0).values()) == ["test", "train"]


def test_slices_names_and_split_by_patient(built: Path) -> None:
    manifest = read_manifest(built / "manifest.csv")
    assert len(manifest) == 60
    assert sorted(manifest["source"].unique()) == ["tr000", "tr001", "tr002"]
    assert manifest["image_id"].iloc[0] == "atlas_tr000_z000" and "atlas_tr002_z019" in set(
        manifest["image_id"]
    )
    per_patient = manifest.groupby("source")["split"].nunique()
    assert (per_patient == 1).all()  # never one patient in two splits
    assert sorted(manifest.groupby("split")["source"].nunique().items()) == [("test", 1), ("train", 2)]
    assert set(manifest["height"]) == {91} and set(manifest["width"]) == {117}
    card = json.loads((built / "dataset_card.json").read_text())
    assert card["split"]["patients"] == {"train": 2, "test": 1}
    assert card["patients"]["tr000"]["spacing_mm"] == [3.0, 3.0, 3.0]


def test_orientation_windowing_and_labels(built: Path) -> None:
    data, _, label = _real_volume()
    manifest = read_manifest(built / "manifest.csv").set_index("image_id")
    row = manifest.loc["atlas_tr002_z010"]
    image = np.asarray(Image.open(built / row.image_path))
    ann = np.asarray(Image.open(built / row.label_path))
    # The volume is LPS: canonical RAS flips the first two axes; the slice is then rotated for display.
    low, high = np.percentile(data, (0.5, 99.5))
    expected = np.clip(np.round((data.astype(np.float64) - low) / (high - low) * 255), 0, 255).astype(
        np.uint8
    )
    np.testing.assert_array_equal(image, np.rot90(expected[::-1, ::-1, 10]))
    np.testing.assert_array_equal(ann, np.rot90(label[::-1, ::-1, 10]))
    assert image.dtype == np.uint8 and image.ndim == 2
    assert set(np.unique(ann)) == {0, 1, 2}
    # Patient 1 is the mirrored volume: the same slice, mirrored left-right.
    mirrored = np.asarray(Image.open(built / manifest.loc["atlas_tr001_z010"].image_path))
    np.testing.assert_array_equal(mirrored, image[:, ::-1])


def test_options_axis_window_drop_empty(raw: Path, tmp_path: Path) -> None:
    manifest = read_manifest(
        prepare_atlas(raw, tmp_path / "out", axis=0, window=(0.0, 400.0), drop_empty="label", seed=3)
    )
    data, _, label = _real_volume()
    tr000 = manifest[manifest["source"] == "tr000"]
    assert tr000["image_id"].iloc[0].startswith("atlas_tr000_x")
    # Sagittal slices with liver or tumour (patient 0's label stops at axial slice 14).
    label0 = label.copy()
    label0[:, :, 15:] = 0
    assert len(tr000) == int(label0.any(axis=(1, 2)).sum())
    first = tr000.iloc[0]
    index = int(first.image_id[-3:])
    image = np.asarray(Image.open(tmp_path / "out" / first.image_path))
    canonical = data[::-1, ::-1, :]
    windowed = np.clip(np.round(canonical[index].astype(np.float64) / 400.0 * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(image, np.rot90(windowed))
    card = json.loads((tmp_path / "out" / "dataset_card.json").read_text())
    assert card["slicing"]["intensity"] == {"window": [0.0, 400.0]}


def test_zipped_release_is_read_in_place(raw: Path, tmp_path: Path, built: Path) -> None:
    archive = tmp_path / "zipped" / "atlas-train-dataset-1.0.1.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted((raw / "atlas-train-dataset-1.0.1").rglob("*.nii.gz")):
            handle.write(path, path.relative_to(raw).as_posix())
    manifest = read_manifest(prepare_atlas(archive.parent, tmp_path / "out"))
    assert manifest.equals(read_manifest(built / "manifest.csv"))
    assert sorted(p.name for p in archive.parent.iterdir()) == ["atlas-train-dataset-1.0.1.zip"]


# ---------------------------------------------------------------------------------------- errors


def test_bad_label_values_shape_and_truncated_volume(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", patients=2)
    data, affine, _ = _real_volume()
    folder = shared_data("medical", "totalsegmentator_abdomen_mr")
    # The raw TotalSegmentator mask (liver = 5) is not an ATLAS label.
    (raw / STUDY / "labelsTr" / "lb1.nii.gz").write_bytes(
        (folder / "example_seg_roi_subset_mr.nii.gz").read_bytes()
    )
    with pytest.raises(DatasetSourceError, match=r"lb1\.nii\.gz: label values \[5\] are not 0 background"):
        prepare_atlas(raw, tmp_path / "out")
    manifest = read_manifest(prepare_atlas(raw, tmp_path / "out", on_error="skip"))
    assert set(manifest["source"]) == {"tr000"}
    assert [
        Path(s["item"]).name for s in json.loads((tmp_path / "out" / "skipped.json").read_text())["skipped"]
    ] == ["im1.nii.gz"]

    _save(raw / STUDY / "labelsTr" / "lb1.nii.gz", np.zeros((*data.shape[:2], 19), np.uint8), affine)
    with pytest.raises(DatasetSourceError, match=r"label volume is \(117, 91, 19\) voxels but its image"):
        prepare_atlas(raw, tmp_path / "out")

    image = raw / STUDY / "imagesTr" / "im1.nii.gz"
    image.write_bytes(image.read_bytes()[:5000])
    with pytest.raises(DatasetSourceError, match=r"im1\.nii\.gz: not a readable NIfTI volume"):
        prepare_atlas(raw, tmp_path / "out")
    (raw / STUDY / "labelsTr" / "lb0.nii.gz").unlink()
    with pytest.raises(DatasetSourceError, match=r"im0\.nii\.gz: no label"):
        prepare_atlas(raw, tmp_path / "out2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]  # the failed runs left nothing


def test_no_volumes_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(DatasetSourceError, match="no imagesTr/im<N>.nii.gz found"):
        prepare_atlas(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="axis"):
        prepare_atlas(tmp_path, tmp_path / "out", axis=3)
    with pytest.raises(ValueError, match="drop_empty"):
        prepare_atlas(tmp_path, tmp_path / "out", drop_empty="both")
