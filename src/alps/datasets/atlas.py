"""ATLAS 2023 (T1 CE-MRI of the liver) from its NIfTI volumes: 2D PNG slices, split by patient.

Raw input (``raw_dir``, searched recursively; the release zip may be given unextracted)::

    raw_dir/
        atlas-train-dataset-1.0.1/train/imagesTr/im0.nii.gz  im1.nii.gz ...   T1 CE-MRI volumes
        atlas-train-dataset-1.0.1/train/labelsTr/lb0.nii.gz   lb1.nii.gz ...   0 background, 1 liver, 2 tumour

Any ``imagesTr``/``imagesTs`` folder holding ``im<N>.nii[.gz]`` is read, with its label ``lb<N>.nii[.gz]`` in
the sibling ``labelsTr``/``labelsTs`` folder; a missing label is an error (or a skip). The patient id is
``tr<N>`` (``imagesTr``) or ``ts<N>`` (``imagesTs``), zero-padded to three digits.

Conversion, and why:

* **Orientation**: each volume is reoriented to the closest canonical RAS+ axes (nibabel's
  ``io_orientation``/``apply_orientation``; no resampling), so ``axis`` means the same anatomical direction
  for every scanner: 0 sagittal, 1 coronal, 2 axial (default). A slice is shown as radiologists' software
  shows it in neurological convention: ``numpy.rot90`` of the canonical slice (anterior/superior up, the
  patient's left on the image's left).
* **Intensity** (MR has no absolute scale): per volume, either the ``percentiles`` (default 0.5 and 99.5
  over all finite voxels) or a fixed ``window=(low, high)`` are mapped linearly to 0..255 and clipped.
  A constant volume maps to 0.
* **Images** are single-band 8-bit PNGs (``alps.io.images.read_image`` repeats the band for RGB models);
  labels are 8-bit PNGs with 0 background, 1 liver, 2 tumour. Any other label value is an error naming the
  file and the values.
* ``drop_empty``: ``None`` keeps every slice; ``"label"`` drops slices without liver or tumour; ``"image"``
  drops slices whose windowed image is constant (outside the field of view).
* **Names**: ``atlas_<patient>_<axis letter><slice index>``, e.g. ``atlas_tr007_z045`` (x/y/z for axis
  0/1/2, the index along that axis of the canonical volume).
* **Split by patient**, never by slice: the patients, sorted, are shuffled with
  ``numpy.random.default_rng(seed)`` and the first ``round(test_fraction * n)`` (at least one, and at least
  one left for train) are ``test``. The paper's 90 patients give 60 train / 30 test with the default 1/3.

Reading NIfTI needs ``nibabel``.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from alps.datasets._layout import (
    CARD_NAME,
    CLASSES_NAME,
    IMAGE_DIR,
    LABEL_DIR,
    MANIFEST_NAME,
    DatasetSourceError,
    RawFile,
    RawSource,
    SkipLog,
    building,
    write_json,
)
from alps.io.images import write_png
from alps.io.manifest import MANIFEST_COLUMNS, write_manifest
from alps.progress import track

DATASET_NAME = "alps-atlas"
"""Written into ``dataset_card.json``; ``prepare_atlas`` only ever replaces folders that carry it."""

CLASSES: tuple[str, ...] = ("background", "liver", "tumour")
"""Label values 0, 1, 2."""

PALETTE: tuple[tuple[int, int, int], ...] = ((0, 0, 0), (70, 130, 230), (230, 60, 60))
"""Display colours (black, blue liver, red tumour)."""

PERCENTILES: tuple[float, float] = (0.5, 99.5)
TEST_FRACTION = 1.0 / 3.0
AXIS_LETTERS = "xyz"
_VOLUME_NAME = re.compile(r"^(im|lb)(\d+)\.nii(\.gz)?$", re.IGNORECASE)
_VOLUME_DIR = re.compile(r"^(images|labels)(Tr|Ts)$", re.IGNORECASE)


def _nibabel() -> Any:
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading ATLAS NIfTI volumes needs nibabel: pip install nibabel") from exc
    return nibabel


def load_canonical(data: bytes, origin: str) -> tuple[NDArray[np.generic], tuple[float, ...]]:
    """Decode a NIfTI file's bytes and reorient the voxels to the closest canonical (RAS+) axes.

    Arguments:
        data: the ``.nii`` or ``.nii.gz`` bytes.
        origin: the file's name for messages (a ``.gz`` suffix means gzip).

    Returns:
        The 3D voxel array (scaled as the header says) and the voxel sizes along its axes.

    Raises:
        DatasetSourceError: the bytes are not a readable 3D NIfTI volume.
    """
    nib = _nibabel()
    try:
        raw = gzip.decompress(data) if origin.lower().endswith(".gz") else data
        image = nib.Nifti1Image.from_bytes(raw)
        array = np.asanyarray(image.dataobj)
        ornt = nib.orientations.io_orientation(image.affine)
        array = nib.orientations.apply_orientation(array, ornt)
        zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
        spacing = tuple(zooms[int(axis)] for axis in ornt[:, 0])
    except Exception as exc:  # gzip, nibabel and numpy raise many types; the user needs the file name
        raise DatasetSourceError(
            f"{origin}: not a readable NIfTI volume ({type(exc).__name__}: {exc}); the file is corrupt or "
            "truncated"
        ) from exc
    if array.ndim != 3:
        raise DatasetSourceError(f"{origin}: expected a 3D volume, got shape {array.shape}")
    return array, spacing


def window_to_uint8(volume: NDArray[np.generic], low: float, high: float) -> NDArray[np.uint8]:
    """Map ``[low, high]`` linearly to 0..255 (clipped); a degenerate window gives zeros."""
    if not high > low:
        return np.zeros(volume.shape, dtype=np.uint8)
    scaled = (volume.astype(np.float64) - low) / (high - low) * 255.0
    scaled[~np.isfinite(scaled)] = 0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def display_slice(volume: NDArray[Any], axis: int, index: int) -> NDArray[Any]:
    """The 2D slice ``index`` along ``axis`` of a canonical volume, rotated for display (see module)."""
    return np.ascontiguousarray(np.rot90(np.take(volume, index, axis=axis)))


def patient_split(patients: Sequence[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Assign each patient to train or test (see the module docstring).

    Arguments:
        patients: patient ids (any order; they are sorted first).
        test_fraction: fraction of patients for test, in (0, 1).
        seed: the shuffle's seed.

    Returns:
        Patient id -> ``"train"`` or ``"test"``; a single patient goes to train.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ordered = sorted(patients)
    n = len(ordered)
    n_test = 0 if n < 2 else min(max(1, round(test_fraction * n)), n - 1)
    test = {ordered[i] for i in np.random.default_rng(seed).permutation(n)[:n_test].tolist()}
    return {p: "test" if p in test else "train" for p in ordered}


def _find_volumes(raw: Path, source: RawSource) -> dict[str, tuple[RawFile, RawFile | None]]:
    """Patient id -> (image volume, label volume or None), from ``images*/im<N>``/``labels*/lb<N>`` files."""
    images: dict[tuple[str, str, str, int], RawFile] = {}
    labels: dict[tuple[str, str, str, int], RawFile] = {}
    for raw_file in source.scan(raw):
        parts = PurePosixPath(raw_file.member).parts
        folder = _VOLUME_DIR.match(parts[-2]) if len(parts) >= 2 else None
        name = _VOLUME_NAME.match(raw_file.name)
        if folder is None or name is None or (folder[1].lower() == "images") != (name[1].lower() == "im"):
            continue
        # An image pairs with the label of the same number in the same study folder (and archive).
        archive = str(raw_file.path) if raw_file.in_archive else ""
        key = (archive, "/".join(parts[:-2]), folder[2].lower(), int(name[2]))
        (images if folder[1].lower() == "images" else labels)[key] = raw_file
    volumes: dict[str, tuple[RawFile, RawFile | None]] = {}
    for key in sorted(images):
        patient = f"{key[2]}{key[3]:03d}"
        if patient in volumes:
            origin = images[key].origin
            source.skip_log.fail(
                origin, f"{origin}: patient {patient} found twice (also {volumes[patient][0].origin})"
            )
            continue
        volumes[patient] = (images[key], labels.get(key))
    return volumes


def prepare_atlas(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    axis: int = 2,
    percentiles: tuple[float, float] = PERCENTILES,
    window: tuple[float, float] | None = None,
    drop_empty: str | None = None,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    on_error: str = "raise",
) -> Path:
    """Slice the ATLAS volumes into 2D PNGs with labels, split by patient, and write manifest and card.

    See the module docstring for the raw layout, orientation, windowing, names and split.

    Arguments:
        raw_dir: the folder holding ``imagesTr``/``labelsTr`` somewhere below it; never written to.
        out_dir: the dataset folder to create or replace (absent, empty, or a previous ATLAS dataset).
        axis: the slicing axis of the canonical volume (0 sagittal, 1 coronal, 2 axial).
        percentiles: per-volume intensity percentiles mapped to 0 and 255 (ignored with ``window``).
        window: a fixed intensity window ``(low, high)`` for every volume instead of percentiles.
        drop_empty: ``None``, ``"label"`` (drop slices without liver/tumour) or ``"image"`` (drop constant
            slices).
        test_fraction: fraction of patients in the test split.
        seed: seed of the patient shuffle.
        on_error: ``"raise"`` stops at the first bad input; ``"skip"`` leaves the patient out and lists it
            in ``skipped.json`` and the card.

    Returns:
        The manifest path, ``out_dir / "manifest.csv"``.

    Raises:
        DatasetSourceError: a bad input (no volumes, truncated archive or volume, label values outside
            0..2, image/label shape mismatch, missing label), with ``on_error="raise"``.
        FileExistsError: ``out_dir`` holds something other than a previous ATLAS dataset.
    """
    raw = Path(raw_dir)
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    if drop_empty not in (None, "label", "image"):
        raise ValueError(f"drop_empty must be None, 'label' or 'image', got {drop_empty!r}")
    if window is not None and not window[1] > window[0]:
        raise ValueError(f"window must be (low, high) with high > low, got {window}")
    if window is None and not 0.0 <= percentiles[0] < percentiles[1] <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    if not raw.is_dir():
        raise DatasetSourceError(f"{raw} does not exist or is not a folder")
    _nibabel()  # fail before any work when nibabel is missing
    skip = SkipLog(on_error)
    letter = AXIS_LETTERS[axis]
    with building(out_dir, DATASET_NAME, "prepare_atlas") as built, RawSource(skip) as source:
        volumes = _find_volumes(raw, source)
        if not volumes:
            raise DatasetSourceError(
                f"{raw}: no imagesTr/im<N>.nii.gz found (expected atlas-train-dataset-1.0.1/train/imagesTr/"
                "im0.nii.gz with labelsTr/lb0.nii.gz beside it; see docs/datasets.md)"
            )
        splits = patient_split(list(volumes), test_fraction, seed)
        rows: list[dict[str, Any]] = []
        patients: dict[str, dict[str, Any]] = {}
        for patient in track(sorted(volumes), "ATLAS volumes", "volume"):
            image_file, label_file = volumes[patient]
            split = splits[patient]
            try:
                if label_file is None:
                    raise DatasetSourceError(
                        f"{image_file.origin}: no label lb<N>.nii.gz for this volume in the sibling "
                        "labels folder"
                    )
                volume, spacing = load_canonical(source.read(image_file), image_file.origin)
                label_volume, _ = load_canonical(source.read(label_file), label_file.origin)
                if label_volume.shape != volume.shape:
                    raise DatasetSourceError(
                        f"{label_file.origin}: label volume is {label_volume.shape} voxels but its image "
                        f"{image_file.origin} is {volume.shape}; expected the same shape"
                    )
                values = np.unique(label_volume)
                bad = [v for v in values.tolist() if v not in (0, 1, 2)]
                if bad:
                    raise DatasetSourceError(
                        f"{label_file.origin}: label values {bad[:10]} are not 0 background, 1 liver "
                        "or 2 tumour"
                    )
            except DatasetSourceError as exc:
                skip.fail(image_file.origin, exc)
                continue
            finite = volume[np.isfinite(volume)] if volume.dtype.kind == "f" else volume
            if window is not None:
                low, high = float(window[0]), float(window[1])
            elif finite.size:
                low, high = (float(v) for v in np.percentile(finite, percentiles))
            else:
                low = high = 0.0
            grey = window_to_uint8(volume, low, high)
            labels = label_volume.astype(np.uint8)
            kept = 0
            for index in range(volume.shape[axis]):
                image_slice = display_slice(grey, axis, index)
                label_slice = display_slice(labels, axis, index)
                if drop_empty == "label" and not label_slice.any():
                    continue
                if drop_empty == "image" and image_slice.min() == image_slice.max():
                    continue
                image_id = f"atlas_{patient}_{letter}{index:03d}"
                image_rel = f"{IMAGE_DIR}/{split}/{image_id}.png"
                label_rel = f"{LABEL_DIR}/{split}/{image_id}.png"
                write_png(built / image_rel, image_slice)
                write_png(built / label_rel, label_slice)
                height, width = image_slice.shape
                rows.append(
                    {
                        "image_id": image_id,
                        "split": split,
                        "image_path": image_rel,
                        "height": height,
                        "width": width,
                        "source": patient,
                        "window_x": 0,
                        "window_y": 0,
                        "window_w": width,
                        "window_h": height,
                        "label_path": label_rel,
                        "crs": "",
                        "transform": "",
                    }
                )
                kept += 1
            patients[patient] = {
                "split": split,
                "image": image_file.origin,
                "label": label_file.origin,
                "shape": list(volume.shape),
                "spacing_mm": list(spacing),
                "window": [low, high],
                "slices": int(volume.shape[axis]),
                "slices_kept": kept,
                "voxels": {name: int((labels == i).sum()) for i, name in enumerate(CLASSES)},
            }
        if not rows:
            raise DatasetSourceError(f"{raw}: no slice could be converted (see the skipped items)")
        write_manifest(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), built / MANIFEST_NAME)
        write_json(built / CLASSES_NAME, {"classes": list(CLASSES), "palette": [list(p) for p in PALETTE]})
        skip.write(built)
        card = {
            "dataset": DATASET_NAME,
            "format_version": 1,
            "source": {"raw_dir": str(raw.absolute())},
            "slicing": {
                "axis": axis,
                "orientation": "closest canonical RAS+, slice shown with numpy.rot90",
                "intensity": (
                    {"window": list(window)} if window is not None else {"percentiles": list(percentiles)}
                ),
                "drop_empty": drop_empty,
                "name": f"atlas_<patient>_{letter}<index>",
            },
            "split": {
                "rule": "by patient: sorted ids, numpy.random.default_rng(seed).permutation, first "
                "round(test_fraction * n) to test",
                "test_fraction": test_fraction,
                "seed": seed,
                "patients": {s: sum(p["split"] == s for p in patients.values()) for s in ("train", "test")},
                "slices": {s: sum(r["split"] == s for r in rows) for s in ("train", "test")},
            },
            "patients": patients,
            "classes": list(CLASSES),
            "skipped": skip.entries,
        }
        # Written last: its presence marks a complete dataset.
        write_json(built / CARD_NAME, card)
    return Path(out_dir).absolute() / MANIFEST_NAME
