"""iSAID converter: archives made of the real iSAID samples, mmseg's windows, palette, errors, atomicity."""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from miniature import ISAID_SPLIT_OF
from PIL import Image
from raw_layouts import isaid as make_raw

from alps.datasets import DatasetSourceError, prepare_dataset
from alps.datasets import isaid as isaid_module
from alps.datasets.isaid import PALETTE, isaid_windows, prepare_isaid
from alps.io.manifest import read_manifest

from conftest import shared_data

LABEL = "_instance_color_RGB.png"
SPLIT_OF = ISAID_SPLIT_OF
# Hand-computed 896/512 windows, (y0, x0): P0003 is 1147 wide x 1023 high, P0005 884 x 977 (padded to 896
# wide), P0004 824 x 1464 (padded to 896 wide; starts 0, 512 and 1024 -> 568).
EXPECTED = {
    "train": [
        "P0003_0_896_0_896",
        "P0003_0_896_251_1147",
        "P0003_127_1023_0_896",
        "P0003_127_1023_251_1147",
        "P0005_0_896_0_896",
        "P0005_81_977_0_896",
    ],
    "val": ["P0004_0_896_0_896", "P0004_512_1408_0_896", "P0004_568_1464_0_896"],
}


def _zip(path: Path, members: dict[str, Path | bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Stored, not deflated: the PNGs are compressed already and the fixture stays fast.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content if isinstance(content, bytes) else content.read_bytes())
    return path


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def _mmseg_tools() -> Path:
    """mmsegmentation's dataset converter scripts, shipped inside the installed package (not imported)."""
    spec = importlib.util.find_spec("mmseg")
    if spec is None or spec.origin is None:
        pytest.skip("mmsegmentation is not installed")
    return Path(spec.origin).parent / ".mim" / "tools" / "dataset_converters"


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_raw(tmp_path_factory.mktemp("isaid_raw"))


@pytest.fixture(scope="module")
def built(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    before = _tree(raw)
    manifest = prepare_dataset("isaid", raw, tmp_path_factory.mktemp("isaid_out") / "isaid")
    assert _tree(raw) == before  # the raw download is never written to
    return manifest.parent


def test_windows_hand_computed() -> None:
    assert isaid_windows(1023, 1147) == [(0, 0), (0, 251), (127, 0), (127, 251)]
    assert isaid_windows(1464, 824) == [(0, 0), (512, 0), (568, 0)]
    assert isaid_windows(977, 884) == [(0, 0), (81, 0)]
    # Two starts shifted onto the same place are one window (mmseg writes it twice under one name).
    assert isaid_windows(896, 1400) == [(0, 0), (0, 504)]
    assert isaid_windows(500, 500) == [(0, 0)]


def test_patches_names_and_manifest(built: Path) -> None:
    manifest = read_manifest(built / "manifest.csv")
    for split, names in EXPECTED.items():
        assert sorted(manifest.loc[manifest["split"] == split, "image_id"]) == names
        assert sorted(p.stem for p in (built / "img_dir" / split).iterdir()) == names
        assert sorted(p.stem for p in (built / "ann_dir" / split).iterdir()) == names
    assert set(manifest["height"]) == {896} and set(manifest["width"]) == {896}
    row = manifest.set_index("image_id").loc["P0005_81_977_0_896"]
    # The window is the source part the patch covers: 884 px wide, the rest is padding.
    assert (row.source, row.window_x, row.window_y, row.window_w, row.window_h) == ("P0005", 0, 81, 884, 896)
    card = json.loads((built / "dataset_card.json").read_text())
    assert card["dataset"] == "alps-isaid"
    assert card["splits"]["train"]["patches"] == 6 and card["splits"]["val"]["images"] == 1
    assert json.loads((built / "skipped.json").read_text())["skipped"] == []


def test_real_png_pixels_and_palette(built: Path) -> None:
    full = shared_data("isaid", "full")
    for split, names in EXPECTED.items():
        for name in names:
            image_id, y0, y1, x0, x1 = name.split("_")
            y0, y1, x0, x1 = int(y0), int(y1), int(x0), int(x1)
            for folder in ("img_dir", "ann_dir"):
                assert (built / folder / split / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            patch = np.asarray(Image.open(built / "img_dir" / split / f"{name}.png"))
            label = np.asarray(Image.open(built / "ann_dir" / split / f"{name}.png"))
            assert patch.shape == (896, 896, 3) and label.shape == (896, 896) and label.dtype == np.uint8
            source = np.asarray(Image.open(full / "images" / f"{image_id}.png").convert("RGB"))
            # The team's independently derived index labels (PROVENANCE.md), padded with 255.
            index = np.asarray(Image.open(full / "labels_index_derived" / f"{image_id}.png"))
            height, width = index.shape
            expected_label = np.full((max(height, 896), max(width, 896)), 255, np.uint8)
            expected_label[:height, :width] = index
            expected_image = np.zeros((*expected_label.shape, 3), np.uint8)
            expected_image[:height, :width] = source
            np.testing.assert_array_equal(label, expected_label[y0:y1, x0:x1])
            np.testing.assert_array_equal(patch, expected_image[y0:y1, x0:x1])
    classes = json.loads((built / "classes.json").read_text())
    assert classes["palette"][1] == [0, 0, 63] and classes["palette"][15] == [0, 100, 155]
    assert classes["classes"][14] == "plane" and classes["ignore_index"] == 255


def _mmseg_converter():
    path = _mmseg_tools() / "isaid.py"
    if not path.is_file():
        pytest.skip("mmsegmentation's iSAID converter is not installed")
    pytest.importorskip("mmcv")
    spec = importlib.util.spec_from_file_location("mmseg_isaid_converter", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_same_patches_as_mmseg(built: Path, tmp_path: Path) -> None:
    """mmseg's own converter functions on the same files give the same windows, pixels and labels."""
    mmseg = _mmseg_converter()
    assert {tuple(c): i for i, c in mmseg.iSAID_palette.items()} == {c: i for i, c in enumerate(PALETTE)}
    full = shared_data("isaid", "full")
    for split in ("train", "val"):
        for folder in ("img_dir", "ann_dir"):
            (tmp_path / folder / split).mkdir(parents=True)
    for image_id, split in SPLIT_OF.items():
        mmseg.slide_crop_image(str(full / "images" / f"{image_id}.png"), str(tmp_path), split, 896, 896, 384)
        label = full / "labels_color" / f"{image_id}_instance_color_RGB.png"
        mmseg.slide_crop_label(str(label), str(tmp_path), split, 896, 896, 384)
    for split, names in EXPECTED.items():
        assert sorted(p.stem for p in (tmp_path / "img_dir" / split).iterdir()) == names
        theirs = sorted(p.name for p in (tmp_path / "ann_dir" / split).iterdir())
        assert theirs == sorted(f"{n}_instance_color_RGB.png" for n in names)
        for name in names:
            ours = np.asarray(Image.open(built / "img_dir" / split / f"{name}.png"))
            theirs = np.asarray(Image.open(tmp_path / "img_dir" / split / f"{name}.png"))
            np.testing.assert_array_equal(ours, theirs)
            # mmseg's label files cannot serve as the reference: it saves mode "P" arrays without a
            # palette, and Pillow >= 12 then merges all (identical, black) palette entries, so every
            # class > 0 is written as 1. Its colour conversion and padding are compared instead.
            image_id, y0, y1, x0, x1 = (int(v) if v.isdigit() else v for v in name.split("_"))
            colours = mmseg.mmcv.imread(
                str(full / "labels_color" / f"{image_id}{LABEL}"), channel_order="rgb"
            )
            index = mmseg.iSAID_convert_from_color(colours)
            padded = mmseg.mmcv.impad(
                index, shape=(max(index.shape[0], 896), max(index.shape[1], 896)), pad_val=255
            )
            ours = np.asarray(Image.open(built / "ann_dir" / split / f"{name}.png"))
            np.testing.assert_array_equal(ours, padded[y0:y1, x0:x1])
        # mmseg writes BMP bytes under the .png name; ours are PNG.
        assert (tmp_path / "img_dir" / split / f"{names[0]}.png").read_bytes()[:2] == b"BM"


# ---------------------------------------------------------------------------------------- errors


def test_truncated_zip(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", ("P0005",))
    archive = raw / "train/images/part1.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(
        DatasetSourceError, match=r"part1\.zip: not a readable zip archive.*download it again"
    ):
        prepare_isaid(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no half-built folder left behind


def _rewrite_label(raw: Path, image_id: str, change) -> None:
    archive = raw / "train/Semantic_masks/images.zip"
    member = f"images/{image_id}_instance_color_RGB.png"
    with zipfile.ZipFile(archive) as handle:
        members = {name: handle.read(name) for name in handle.namelist()}
    label = np.array(Image.open(io.BytesIO(members[member])).convert("RGB"))
    buffer = io.BytesIO()
    Image.fromarray(change(label)).save(buffer, format="PNG")
    members[member] = buffer.getvalue()
    archive.unlink()
    _zip(archive, members)


def test_unknown_colour_raises_or_skips(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", ("P0003", "P0005"))

    def paint(label: np.ndarray) -> np.ndarray:
        label[10, 20] = (1, 2, 3)
        return label

    _rewrite_label(raw, "P0005", paint)
    with pytest.raises(
        DatasetSourceError, match=r"P0005_instance_color_RGB\.png: label colour.*\(1, 2, 3\) x 1 px"
    ):
        prepare_isaid(raw, tmp_path / "out", splits=("train",))
    assert not (tmp_path / "out").exists()
    manifest = read_manifest(prepare_isaid(raw, tmp_path / "out", splits=("train",), on_error="skip"))
    assert set(manifest["source"]) == {"P0003"}
    skipped = json.loads((tmp_path / "out" / "skipped.json").read_text())["skipped"]
    assert len(skipped) == 1 and skipped[0]["item"].endswith("part1.zip:images/P0005.png")
    assert "(1, 2, 3)" in skipped[0]["reason"]
    card = json.loads((tmp_path / "out" / "dataset_card.json").read_text())
    assert card["skipped"] == skipped


def test_size_mismatch_and_missing_label(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", ("P0005",))
    _rewrite_label(raw, "P0005", lambda label: label[:-1])
    with pytest.raises(
        DatasetSourceError, match=r"label is 884x976 px but its image .*P0005\.png is 884x977"
    ):
        prepare_isaid(raw, tmp_path / "out", splits=("train",))
    raw2 = make_raw(tmp_path / "raw2", ("P0005",))
    (raw2 / "train/Semantic_masks/images.zip").unlink()
    with pytest.raises(DatasetSourceError, match=r"P0005\.png: no label P0005_instance_color_RGB\.png"):
        prepare_isaid(raw2, tmp_path / "out", splits=("train",))
    with pytest.raises(DatasetSourceError, match=r"val/images does not exist"):
        prepare_isaid(raw2, tmp_path / "out", splits=("val",))


def test_interrupted_build_leaves_previous_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = make_raw(tmp_path / "raw", ("P0005",))
    out = tmp_path / "out"
    prepare_isaid(raw, out, splits=("train",), patch_size=512, overlap=0)
    before = _tree(out)
    calls = {"n": 0}
    real_write_png = isaid_module.write_png

    def interrupted(path: Path, array: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real_write_png(path, array)

    monkeypatch.setattr(isaid_module, "write_png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_isaid(raw, out, splits=("train",), patch_size=256, overlap=0)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_refuses_foreign_folder_and_bad_options(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing to replace"):
        prepare_isaid(tmp_path, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="overlap"):
        prepare_isaid(tmp_path, tmp_path / "out", overlap=896)
    with pytest.raises(ValueError, match="on_error"):
        prepare_isaid(tmp_path, tmp_path / "out", on_error="ignore")
