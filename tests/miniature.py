"""Raw dataset layouts built from the project's real samples, for the executed miniature of the study.

The paper's study (``config/paper.yaml``) starts from the datasets' downloads: the iSAID archives, the ISPRS
Potsdam zips, the SAMRS subsets, the ATLAS 2023 NIfTI volumes and a detector's DOTA box files for SAMRS*.
None of those can ship with the project, but real samples of each lie in ``../shared/data`` (its README).
This module lays those samples out exactly as each download is laid out, so that the real converters
(``alps prepare``) read them as they would read the download; ``make test-study`` (``.test/config.yaml``)
and the converter tests build their raw folders here.

Nothing is generated but the layout: the images and labels are the samples' own bytes, except where a
format has to change (Potsdam's index labels become ISPRS colour GeoTIFFs, the ATLAS label gets a stand-in
tumour block) as documented per function.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alps.boxes import read_dota_boxes
from alps.datasets.potsdam import ISPRS_PALETTE
from alps.masks.sam import build_sam

ISAID_SPLIT_OF: dict[str, str] = {"P0003": "train", "P0005": "train", "P0004": "val"}
"""The split each of the three full iSAID samples plays in a raw layout."""

ATLAS_STUDY = "atlas-train-dataset-1.0.1/train"
"""The ATLAS release's folder of training volumes, as its zip unpacks."""

SAMRS_SOTA = ("P0003", "P0004", "P0005")
SAMRS_SIOR_NWPU = ("060.jpg", "064.jpg", "109.jpg", "134.jpg")
SAMRS_FAST = (("DOTA_P1888.png", "P1888.png"), ("OSBS_029.png", "OSBS_029.png"))


class SampleError(FileNotFoundError):
    """A sample the layout needs is not in the samples folder."""


def _sample(samples: Path, *parts: str) -> Path:
    path = Path(samples).joinpath(*parts)
    if not path.exists():
        raise SampleError(
            f"sample {path} is missing: the raw layouts are built from ../shared/data (see its README.md)"
        )
    return path


def _zip(path: Path, members: Mapping[str, Path | bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Stored, not deflated: the PNGs are compressed already and building stays fast.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content if isinstance(content, bytes) else content.read_bytes())
    return path


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())


# ----------------------------------------------------------------------------------------------------------
# iSAID
# ----------------------------------------------------------------------------------------------------------


def isaid_raw(
    samples: str | os.PathLike[str], root: str | os.PathLike[str], ids: Sequence[str] = tuple(ISAID_SPLIT_OF)
) -> Path:
    """The iSAID download layout of the full samples: train as zips, val extracted (both forms exist).

    Arguments:
        samples: the samples folder (``../shared/data``).
        root: the raw folder to create.
        ids: which of ``ISAID_SPLIT_OF``'s images to include (their split is fixed there).

    Returns:
        ``root``.
    """
    full = _sample(Path(samples), "isaid", "full")
    root = Path(root)
    for image_id in ids:
        image = _sample(full, "images", f"{image_id}.png")
        label = _sample(full, "labels_color", f"{image_id}_instance_color_RGB.png")
        if ISAID_SPLIT_OF[image_id] == "val":
            _copy(image, root / "val/images/images" / image.name)
            _copy(label, root / "val/Semantic_masks/images" / label.name)
    train = [i for i in ids if ISAID_SPLIT_OF[i] == "train"]
    if train:
        _zip(
            root / "train/images/part1.zip", {f"images/{i}.png": full / "images" / f"{i}.png" for i in train}
        )
        _zip(
            root / "train/Semantic_masks/images.zip",
            {
                f"images/{i}_instance_color_RGB.png": full / "labels_color" / f"{i}_instance_color_RGB.png"
                for i in train
            },
        )
    return root


# ----------------------------------------------------------------------------------------------------------
# ISPRS Potsdam
# ----------------------------------------------------------------------------------------------------------

POTSDAM_TRANSFORM = (0.05, 0.0, 366000.0, 0.0, -0.05, 5808000.0)
"""The affine (a, b, c, d, e, f) the layout gives the crop: Potsdam lies in UTM 33N at 5 cm."""


def potsdam_crop(samples: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """The real mmseg-converted 512 px crop of tile 2_10: RGB image and index label (0..6)."""
    from PIL import Image

    folder = _sample(Path(samples), "potsdam")
    image = np.asarray(Image.open(_sample(folder, "img_dir", "2_10_0_0_512_512.png")).convert("RGB"))
    index = np.asarray(Image.open(_sample(folder, "ann_dir", "2_10_0_0_512_512.png")))
    return image, index


def potsdam_tiles(samples: str | os.PathLike[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Tile 2_10 (train) = the real crop; tile 2_13 (val) = the crop widened to 812 px by a mirrored strip."""
    image, index = potsdam_crop(samples)
    wide_image = np.concatenate([image, image[:, :300][:, ::-1]], axis=1)
    wide_index = np.concatenate([index, index[:, :300][:, ::-1]], axis=1)
    return {"2_10": (image, index), "2_13": (wide_image, wide_index)}


def isprs_colours(index: np.ndarray) -> np.ndarray:
    """mmseg's Potsdam index label back to the ISPRS colour label it was converted from."""

    colours = np.zeros((*index.shape, 3), np.uint8)
    for colour, value in ISPRS_PALETTE.items():
        colours[index == value] = colour
    return colours


def geotiff_bytes(path: Path, array: np.ndarray, georeferenced: bool = True) -> bytes:
    """``array`` (H x W x 3 uint8) as a GeoTIFF at ``path`` (UTM 33N, ``POTSDAM_TRANSFORM``), its bytes."""
    import rasterio
    from affine import Affine

    geo = {"crs": "EPSG:32633", "transform": Affine(*POTSDAM_TRANSFORM)} if georeferenced else {}
    with rasterio.open(
        path, "w", driver="GTiff", height=array.shape[0], width=array.shape[1], count=3, dtype="uint8", **geo
    ) as dst:
        dst.write(np.moveaxis(array, -1, 0))
    return path.read_bytes()


def potsdam_raw(
    samples: str | os.PathLike[str],
    root: str | os.PathLike[str],
    tiles: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    """``2_Ortho_RGB.zip`` (tiles in a sub-folder, as ISPRS ships it) and ``5_Labels_all_noBoundary.zip``.

    Arguments:
        samples: the samples folder (``../shared/data``).
        root: the raw folder to create (must not exist).
        tiles: tile name -> (image, index label); default ``potsdam_tiles``.

    Returns:
        ``root``.
    """
    tiles = potsdam_tiles(samples) if tiles is None else tiles
    root = Path(root)
    root.mkdir(parents=True)
    with (
        tempfile.TemporaryDirectory() as scratch_dir,
        zipfile.ZipFile(root / "2_Ortho_RGB.zip", "w") as images,
        zipfile.ZipFile(root / "5_Labels_all_noBoundary.zip", "w") as labels,
    ):
        scratch = Path(scratch_dir)  # rasterio writes files: each GeoTIFF is made there, then zipped
        for tile, (image, index) in tiles.items():
            name = f"top_potsdam_{tile}_RGB.tif"
            images.writestr(f"2_Ortho_RGB/{name}", geotiff_bytes(scratch / name, image))
            name = f"top_potsdam_{tile}_label_noBoundary.tif"
            labels.writestr(name, geotiff_bytes(scratch / name, isprs_colours(index)))
    return root


# ----------------------------------------------------------------------------------------------------------
# SAMRS and SAMRS* boxes
# ----------------------------------------------------------------------------------------------------------


def _samrs_sota_isaid(samples: Path, root: Path) -> None:
    """SAMRS's SOTA holds DOTA's images, as iSAID does: the three iSAID images with their index labels."""
    isaid = _sample(samples, "isaid", "full")
    for image_id in SAMRS_SOTA:
        _copy(_sample(isaid, "images", f"{image_id}.png"), root / "SOTA/images" / f"{image_id}.png")
        _copy(
            _sample(isaid, "labels_index_derived", f"{image_id}.png"),
            root / "SOTA/labels" / f"{image_id}.png",
        )


def samrs_raw(samples: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path:
    """The SAMRS layout for the converter's tests: SOTA/ and FAST/ as folders, SIOR as SIOR.zip.

    SOTA gets the three iSAID images (DOTA's, as SAMRS's SOTA), SIOR one DIOR image and four NWPU VHR-10
    images, FAST one DOTA and one NEON image (in a sub-folder of a lower-case ``fast/``: subset names are
    matched case-insensitively).
    """
    samples = Path(samples)
    root = Path(root)
    _samrs_sota_isaid(samples, root)
    sior = {"SIOR/images/DIOR_00001.jpg": _sample(samples, "unlabeled", "dior", "DIOR_00001.jpg")}
    for name in SAMRS_SIOR_NWPU:
        sior[f"SIOR/images/nwpu_{name}"] = _sample(samples, "nwpu_vhr10_train", "images", name)
    _zip(root / "SIOR.zip", sior)
    for source, name in SAMRS_FAST:
        folder = "dota" if source.startswith("DOTA_") else "neon_deepforest"
        _copy(_sample(samples, "unlabeled", folder, source), root / "fast/images/part1" / name)
    return root


DOTA_V1_CLASSES: tuple[str, ...] = (
    "plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle", "large-vehicle", "ship",
    "tennis-court", "basketball-court", "storage-tank", "soccer-ball-field", "roundabout", "harbor",
    "swimming-pool", "helicopter",
)  # fmt: skip
"""DOTA v1.0's classes in its label-id order (the SAMRS* detector's vocabulary, config/paper.yaml)."""

NWPU_TO_DOTA: dict[str, str] = {
    "airplane": "plane",
    "ship": "ship",
    "storage_tank": "storage-tank",
    "baseball_diamond": "baseball-diamond",
    "tennis_court": "tennis-court",
    "basketball_court": "basketball-court",
    "ground_track_field": "ground-track-field",
    "harbor": "harbor",
    "bridge": "bridge",
    "vehicle": "small-vehicle",  # NWPU's vehicles are cars
}
"""NWPU VHR-10's categories by their DOTA v1.0 names."""

SAMRS_LABELED_DOTA = "P1888"
SAMRS_LABELED_NWPU = ("060", "064", "109", "134")
SAMRS_LABELED_FAST = "0"  # a LoveDA tile


def _png_bytes(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def dota_index_label(samples: str | os.PathLike[str], name: str) -> np.ndarray:
    """DOTA's oriented boxes of image ``name`` rasterised: 0 background, 1 + the DOTA v1.0 class id."""
    from PIL import Image, ImageDraw

    dota = _sample(Path(samples), "unlabeled", "dota")
    with Image.open(_sample(dota, f"DOTA_{name}.png")) as image:
        label = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(label)
    for box in read_dota_boxes(dota / f"DOTA_{name}.txt"):
        if box.class_name in DOTA_V1_CLASSES:
            draw.polygon(
                [tuple(p) for p in np.asarray(box.polygon).reshape(-1, 2)],
                fill=1 + DOTA_V1_CLASSES.index(box.class_name),
            )
    return np.asarray(label)


def nwpu_dota_lines(samples: str | os.PathLike[str], file_name: str) -> str:
    """NWPU VHR-10's boxes of one image as DOTA ``labelTxt`` lines (horizontal boxes, DOTA names)."""
    import json

    coco = json.loads(_sample(Path(samples), "nwpu_vhr10_train", "instances_train.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    (image_id,) = [i["id"] for i in coco["images"] if i["file_name"] == file_name]
    lines = []
    for annotation in coco["annotations"]:
        if annotation["image_id"] == image_id:
            x, y, w, h = annotation["bbox"]
            corners = (x, y, x + w, y, x + w, y + h, x, y + h)
            lines.append(
                " ".join(f"{v:g}" for v in corners) + f" {NWPU_TO_DOTA[names[annotation['category_id']]]} 0"
            )
    return "\n".join(lines) + ("\n" if lines else "")


def samrs_labeled_raw(samples: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path:
    """A SAMRS layout whose every image has a label, as SAMRS's own images do (the study's miniature).

    SOTA (DOTA's images): the three iSAID images with their index labels, and DOTA's P1888 with its
    oriented boxes rasterised (``dota_index_label``); SIOR (as ``SIOR.zip``): four NWPU VHR-10 images with
    their semantic labels; FAST (FAIR1M's aerial scenes in SAMRS): a LoveDA tile with its land-cover label.
    The label encodings differ per subset, as SAMRS's do; ALPS uses the images only.
    """
    samples = Path(samples)
    root = Path(root)
    _samrs_sota_isaid(samples, root)
    name = SAMRS_LABELED_DOTA
    _copy(_sample(samples, "unlabeled", "dota", f"DOTA_{name}.png"), root / "SOTA/images" / f"{name}.png")
    (root / "SOTA/labels" / f"{name}.png").write_bytes(_png_bytes(dota_index_label(samples, name)))
    sior: dict[str, Path | bytes] = {}
    for stem in SAMRS_LABELED_NWPU:
        sior[f"SIOR/images/nwpu_{stem}.jpg"] = _sample(samples, "nwpu_vhr10_train", "images", f"{stem}.jpg")
        sior[f"SIOR/labels/nwpu_{stem}.png"] = _sample(samples, "nwpu_vhr10_train", "semantic", f"{stem}.png")
    _zip(root / "SIOR.zip", sior)
    loveda = _sample(samples, "loveda")
    _copy(
        _sample(loveda, "img_dir", f"{SAMRS_LABELED_FAST}.png"),
        root / "FAST/images" / f"loveda_{SAMRS_LABELED_FAST}.png",
    )
    _copy(
        _sample(loveda, "ann_dir", f"{SAMRS_LABELED_FAST}.png"),
        root / "FAST/labels" / f"loveda_{SAMRS_LABELED_FAST}.png",
    )
    return root


def samrs_labeled_boxes(samples: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Per-image DOTA box files for every image of ``samrs_labeled_raw``, standing in for a detector's.

    DOTA's own oriented boxes for P1888 and NWPU VHR-10's annotated boxes (by their DOTA names) for the
    NWPU images: a detector's output has the same format and classes. The other images get an empty file,
    which is how a detector's output says "no object" (``alps.boxes``: a missing file is an error).

    Returns:
        ``out_dir``, holding ``<image_id>.txt`` per image.
    """
    samples = Path(samples)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = {f"sota_{i}": "" for i in SAMRS_SOTA}
    texts[f"sota_{SAMRS_LABELED_DOTA}"] = _sample(
        samples, "unlabeled", "dota", f"DOTA_{SAMRS_LABELED_DOTA}.txt"
    ).read_text()
    for stem in SAMRS_LABELED_NWPU:
        texts[f"sior_nwpu_{stem}"] = nwpu_dota_lines(samples, f"{stem}.jpg")
    texts[f"fast_loveda_{SAMRS_LABELED_FAST}"] = ""
    for image_id, text in texts.items():
        (out / f"{image_id}.txt").write_text(text)
    return out


# ----------------------------------------------------------------------------------------------------------
# ATLAS 2023 (MRI)
# ----------------------------------------------------------------------------------------------------------


def atlas_volume(samples: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MR volume (int16, 117 x 91 x 20, LPS), its affine, and a 0/1/2 label made from its liver mask.

    The mask is TotalSegmentator's prediction (label 5, liver), not ATLAS ground truth; ATLAS's "tumour"
    (2) is stood in by the liver voxels of a small block around the liver's middle in slices 8-12. Only the
    encoding matters to the converter.
    """
    import nibabel as nib

    folder = _sample(Path(samples), "medical", "totalsegmentator_abdomen_mr")
    image = nib.load(_sample(folder, "example_mr_sm.nii.gz"))
    liver = np.asanyarray(nib.load(_sample(folder, "example_seg_roi_subset_mr.nii.gz")).dataobj) == 5
    label = liver.astype(np.uint8)
    rows, cols = np.nonzero(liver[:, :, 10])
    cy, cx = int(np.median(rows)), int(np.median(cols))
    block = np.zeros_like(liver)
    block[cy - 4 : cy + 4, cx - 4 : cx + 4, 8:13] = True
    label[liver & block] = 2
    return np.asanyarray(image.dataobj), image.affine, label


def _save_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), path)


def atlas_raw(
    samples: str | os.PathLike[str],
    root: str | os.PathLike[str],
    patients: int = 3,
    slices: tuple[int, int] | None = None,
    empty_above: int | None = 14,
) -> Path:
    """``imagesTr/im<N>.nii.gz`` and ``labelsTr/lb<N>.nii.gz`` of ``patients`` patients from the one volume.

    Odd patients get the volume flipped along its first axis (so that patients differ).

    Arguments:
        samples: the samples folder (``../shared/data``).
        root: the raw folder to create.
        patients: how many patients.
        slices: keep only axial slices ``[start, stop)`` of the volume (fewer images); default all 20.
        empty_above: patient 0's label is emptied from this slice on (of the kept slices; a patient with
            empty slices, as the real data has); None leaves it whole.

    Returns:
        ``root``.
    """
    data, affine, label = atlas_volume(samples)
    if slices is not None:
        data, label = data[:, :, slices[0] : slices[1]], label[:, :, slices[0] : slices[1]]
    root = Path(root)
    for n in range(patients):
        volume, mask = (data, label) if n % 2 == 0 else (data[::-1].copy(), label[::-1].copy())
        if n == 0 and empty_above is not None:
            mask = mask.copy()
            mask[:, :, empty_above + 1 :] = 0
        _save_nifti(root / ATLAS_STUDY / "imagesTr" / f"im{n}.nii.gz", volume, affine)
        _save_nifti(root / ATLAS_STUDY / "labelsTr" / f"lb{n}.nii.gz", mask, affine)
    return root


# ----------------------------------------------------------------------------------------------------------
# SAM
# ----------------------------------------------------------------------------------------------------------


def tiny_sam_checkpoint(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write the state dict of a randomly initialised ``vit_tiny`` SAM, as the official checkpoints are.

    The ``vit_tiny`` architecture (``alps.masks.sam.SAM_ARCHITECTURES``) has no released weights: it lets
    the real checkpoint loading and automatic mask generation run on a CPU in seconds.

    Arguments:
        path: the ``.pth`` file to write (its folder must exist).
        seed: torch seed of the random initialisation; the same seed gives the same weights.

    Returns:
        ``path`` as a ``Path``.
    """
    import torch

    path = Path(path)
    # Fork the RNG so that building the checkpoint does not shift the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_sam("vit_tiny")
    torch.save(model.state_dict(), path)
    return path
