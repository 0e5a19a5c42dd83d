"""The manifest contract: round trip, canonical form, and one clear error per violation."""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alps.io.manifest import (
    MANIFEST_COLUMNS,
    SPLITS,
    ManifestError,
    read_manifest,
    resolve_paths,
    validate_manifest,
    write_manifest,
)


def _rows() -> list[dict[str, Any]]:
    return [
        {
            "image_id": "s2_r00_c00",
            "split": "train",
            "image_path": "img_dir/train/s2_r00_c00.png",
            "height": 256,
            "width": 256,
            "source": "scene",
            "window_x": 0,
            "window_y": 0,
            "window_w": 256,
            "window_h": 256,
            "label_path": "ann_dir/train/s2_r00_c00.png",
            "crs": "EPSG:32618",
            "transform": "10.0,0.0,435730.0,0.0,-10.0,4179460.0",
        },
        {
            "image_id": "holiday photo",
            "split": "val",
            "image_path": "raw/photo 1.jpg",
            "height": 480,
            "width": 640,
            "source": "",
            "window_x": 0,
            "window_y": 0,
            "window_w": 640,
            "window_h": 480,
            "label_path": "",
            "crs": "",
            "transform": "",
        },
    ]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(_rows(), columns=list(MANIFEST_COLUMNS))


def test_columns_and_splits() -> None:
    assert MANIFEST_COLUMNS[:3] == ("image_id", "split", "image_path")
    assert len(MANIFEST_COLUMNS) == 13
    assert SPLITS == ("train", "val", "test")


def test_round_trip(tmp_path: Path) -> None:
    path = write_manifest(_frame(), tmp_path / "sub" / "manifest.csv")
    assert path == tmp_path / "sub" / "manifest.csv"
    back = read_manifest(path)
    assert tuple(back.columns) == MANIFEST_COLUMNS
    pd.testing.assert_frame_equal(back, validate_manifest(_frame()))
    assert back.loc[0, "transform"] == "10.0,0.0,435730.0,0.0,-10.0,4179460.0"
    assert back.loc[1, "label_path"] == ""
    for column in ("height", "width", "window_x", "window_y", "window_w", "window_h"):
        assert back[column].dtype == "int64"
    # Writing what was read gives the same bytes: the file is stable under DVC/git.
    again = write_manifest(back, tmp_path / "again.csv")
    assert again.read_bytes() == path.read_bytes()
    assert b"\r\n" not in path.read_bytes()
    # No temporary files are left beside the manifest.
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.csv"]


def test_canonical_form(tmp_path: Path) -> None:
    """Any column order, NaN in optional columns and a non-default index are normalised."""
    df = _frame()[list(reversed(MANIFEST_COLUMNS))]
    df.index = [10, 20]
    df.loc[20, "label_path"] = math.nan
    df.loc[20, "crs"] = None
    out = validate_manifest(df)
    assert tuple(out.columns) == MANIFEST_COLUMNS
    assert list(out.index) == [0, 1]
    assert out.loc[1, "label_path"] == "" and out.loc[1, "crs"] == ""
    path = write_manifest(df, tmp_path / "m.csv")
    assert path.read_text().splitlines()[0] == ",".join(MANIFEST_COLUMNS)


def _set(row: int, column: str, value: Any) -> pd.DataFrame:
    df = _frame().astype(object)
    df.loc[row, column] = value
    return df


@pytest.mark.parametrize(
    ("df", "row", "column", "fragment"),
    [
        (_set(1, "image_id", "s2_r00_c00"), 1, "image_id", "duplicates row 0"),
        (_set(0, "image_id", ""), 0, "image_id", "empty value"),
        (_set(0, "image_id", "a/b"), 0, "image_id", "path separator"),
        (_set(0, "image_id", 7), 0, "image_id", "expected a string"),
        (_set(1, "split", "training"), 1, "split", "not one of train, val, test"),
        (_set(1, "split", None), 1, "split", "missing value"),
        (_set(0, "image_path", "/abs/x.png"), 0, "image_path", "absolute"),
        (_set(0, "image_path", "C:\\data\\x.png"), 0, "image_path", "absolute"),
        (_set(0, "label_path", "/abs/y.png"), 0, "label_path", "absolute"),
        (_set(0, "image_path", "../outside/secret.png"), 0, "image_path", "leaves the manifest's folder"),
        (_set(1, "image_path", "img_dir/../../x.png"), 1, "image_path", "leaves the manifest's folder"),
        (_set(0, "label_path", "..\\outside\\y.png"), 0, "label_path", "leaves the manifest's folder"),
        (_set(1, "height", 256.0), 1, "height", "not an integer"),
        (_set(1, "height", True), 1, "height", "not an integer"),
        (_set(1, "width", 0), 1, "width", "must be > 0"),
        (_set(0, "window_x", -1), 0, "window_x", "must be >= 0"),
        (_set(0, "window_h", math.nan), 0, "window_h", "not an integer"),
        (_set(0, "transform", "1,2,3"), 0, "transform", "six finite numbers"),
        (_set(0, "transform", "1,2,3,4,5,x"), 0, "transform", "six finite numbers"),
        (_set(0, "transform", "1,2,3,4,5,nan"), 0, "transform", "six finite numbers"),
    ],
)
def test_write_rejects(tmp_path: Path, df: pd.DataFrame, row: int, column: str, fragment: str) -> None:
    path = tmp_path / "manifest.csv"
    with pytest.raises(ManifestError) as info:
        write_manifest(df, path)
    message = str(info.value)
    assert str(path) in message
    assert f"row {row} (CSV line {row + 2})" in message
    assert f"column {column!r}" in message
    assert fragment in message
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_columns(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['crs'\]"):
        write_manifest(_frame().drop(columns=["crs"]), tmp_path / "m.csv")
    with pytest.raises(ManifestError, match=r"unknown column\(s\) \['lable_path'\]"):
        write_manifest(_frame().assign(lable_path=""), tmp_path / "m.csv")
    with pytest.raises(ManifestError, match="expected a pandas DataFrame"):
        write_manifest(_rows(), tmp_path / "m.csv")  # type: ignore[arg-type]
    assert not (tmp_path / "m.csv").exists()


def _csv_with(tmp_path: Path, row: int, column: str, text: str) -> Path:
    path = tmp_path / "manifest.csv"
    write_manifest(_frame(), path)
    lines = path.read_text().splitlines()
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row, column] = text
    df.to_csv(path, index=False, lineterminator="\n")
    assert len(path.read_text().splitlines()) == len(lines)
    return path


@pytest.mark.parametrize(
    ("row", "column", "text", "fragment"),
    [
        (0, "height", "abc", "'abc' is not an integer"),
        (1, "width", "1e3", "'1e3' is not an integer"),
        (1, "window_y", "", "'' is not an integer"),
        (0, "split", "TEST", "not one of"),
        (1, "image_id", "s2_r00_c00", "duplicates row 0"),
        (0, "image_path", "", "empty value"),
        (0, "image_path", "../outside/secret.png", "leaves the manifest's folder"),
        (1, "label_path", "/etc/passwd", "absolute"),
    ],
)
def test_read_rejects(tmp_path: Path, row: int, column: str, text: str, fragment: str) -> None:
    path = _csv_with(tmp_path, row, column, text)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{path}, row {row} (CSV line {row + 2}), column {column!r}")
    assert fragment in message


def test_read_rejects_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ManifestError, match="empty file"):
        read_manifest(empty)
    short = tmp_path / "short.csv"
    short.write_text("image_id,split\na,train\n")
    with pytest.raises(ManifestError, match=rf"{short}: missing column"):
        read_manifest(short)


def test_read_keeps_na_like_text(tmp_path: Path) -> None:
    """'NA' and 'nan' are ids like any other, not missing values."""
    path = _csv_with(tmp_path, 1, "image_id", "NA")
    assert read_manifest(path).loc[1, "image_id"] == "NA"


def test_empty_manifest(tmp_path: Path) -> None:
    path = write_manifest(pd.DataFrame(columns=list(MANIFEST_COLUMNS)), tmp_path / "m.csv")
    back = read_manifest(path)
    assert len(back) == 0 and tuple(back.columns) == MANIFEST_COLUMNS


def _pathlib_verdict(text: str) -> str | None:
    """The rule on a manifest path, as pathlib states it."""
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).drive:
        return "absolute"
    if ".." in PurePosixPath(text.replace("\\", "/")).parts:
        return "leaves the manifest's folder"
    return None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="a./\\:C ~", min_size=1, max_size=8).filter(str.strip))
def test_path_checks_agree_with_pathlib(text: str) -> None:
    """The checks skip pathlib for plain relative paths; whatever the text, the verdict is pathlib's."""
    expected = _pathlib_verdict(text)
    if expected is None:
        validate_manifest(_set(0, "image_path", text))
    else:
        with pytest.raises(ManifestError, match=expected):
            validate_manifest(_set(0, "image_path", text))


def test_resolve_paths(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    df = read_manifest(write_manifest(_frame(), root / "manifest.csv"))
    out = resolve_paths(df, root)
    assert out.loc[0, "image_path"] == os.fspath(root / "img_dir/train/s2_r00_c00.png")
    assert out.loc[0, "label_path"] == os.fspath(root / "ann_dir/train/s2_r00_c00.png")
    assert out.loc[1, "image_path"] == os.fspath(root / "raw/photo 1.jpg")
    assert out.loc[1, "label_path"] == ""
    assert df.loc[0, "image_path"] == "img_dir/train/s2_r00_c00.png"  # the input is not modified
    with pytest.raises(FileNotFoundError, match=r"row 0 \(image s2_r00_c00\), column 'image_path'"):
        resolve_paths(df, root, must_exist=True)
    for rel in ("img_dir/train/s2_r00_c00.png", "ann_dir/train/s2_r00_c00.png", "raw/photo 1.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    assert resolve_paths(df, root, must_exist=True).loc[1, "label_path"] == ""


def test_resolve_paths_rejects_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    """A manifest names only files inside its folder, also where a symbolic link would lead elsewhere."""
    root = tmp_path / "dataset"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"secret")
    df = read_manifest(write_manifest(_frame(), root / "manifest.csv"))
    (root / "img_dir" / "train").mkdir(parents=True)
    (root / "img_dir/train/s2_r00_c00.png").symlink_to(outside / "secret.png")
    with pytest.raises(ManifestError, match=r"row 0 .*'image_path'.*outside the manifest's folder"):
        resolve_paths(df, root)
    # A linked folder leaving it is refused as well; a link that stays inside is fine.
    (root / "img_dir/train/s2_r00_c00.png").unlink()
    (root / "img_dir/train/s2_r00_c00.png").symlink_to(root / "manifest.csv")
    (root / "raw").symlink_to(outside)
    with pytest.raises(ManifestError, match=r"row 1 .*leads to .*outside"):
        resolve_paths(df, root)
    # The dataset folder itself may be reached through a link (data/ -> a big disk).
    (root / "raw").unlink()
    (root / "raw").mkdir()
    link = tmp_path / "link"
    link.symlink_to(root)
    assert resolve_paths(df, link).loc[1, "image_path"] == os.fspath(link / "raw/photo 1.jpg")
