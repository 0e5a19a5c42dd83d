"""Detection boxes: DOTA box files (real samples), Task1 submissions, windows, and the image matching rule."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from alps.boxes import (
    Box,
    BoxFileError,
    BoxSource,
    boxes_in_window,
    format_dota_line,
    parse_dota_line,
    read_dota_boxes,
    read_task1_boxes,
    task1_to_dota,
    write_dota_boxes,
)

from conftest import shared_data

DOTA = ("unlabeled", "dota")


def _dota(name: str) -> Path:
    return shared_data(*DOTA, f"{name}.txt")


def test_real_dota_files_parse_with_headers_and_difficult_flags() -> None:
    boxes = read_dota_boxes(_dota("DOTA_P0706"))
    # PROVENANCE.md: 531 ships and 5 harbours, behind the imagesource/gsd header lines.
    assert len(boxes) == 536
    assert sum(b.class_name == "ship" for b in boxes) == 531
    assert sum(b.class_name == "harbor" for b in boxes) == 5
    first = boxes[0]  # "1054 1028 1063 1011 1111 1040 1112 1062 ship 1" on line 3
    np.testing.assert_array_equal(first.polygon, [[1054, 1028], [1063, 1011], [1111, 1040], [1112, 1062]])
    assert first.hbb == (1054.0, 1011.0, 1112.0, 1062.0)
    assert (first.difficult, first.score, first.line) == (1, None, 3)
    assert first.origin.endswith("DOTA_P0706.txt")
    assert {b.difficult for b in boxes} == {0, 1}
    for box in boxes:
        np.testing.assert_array_equal(box.hbb, [*box.polygon.min(axis=0), *box.polygon.max(axis=0)])
        assert not box.polygon.flags.writeable
    vehicles = read_dota_boxes(_dota("DOTA_P1888"))
    assert len(vehicles) == 64
    assert {b.class_name for b in vehicles} == {"large-vehicle", "small-vehicle"}
    # mmrotate's test file: no header, float coordinates, the box on line 1.
    planes = read_dota_boxes(_dota("DOTA_P2805__1024__0___0"))
    assert [b.class_name for b in planes] == ["plane"] * 4
    assert planes[0].hbb == (359.0, 497.0, 543.0, 677.0) and planes[0].line == 1


def test_horizontal_boxes_scores_and_text_variants(tmp_path: Path) -> None:
    path = tmp_path / "img.txt"
    text = (
        "\ufeffimagesource:GoogleEarth\r\n"
        "gsd:null\r\n"
        "\r\n"
        "10 20 30 40 car\r\n"
        "10 20 30 40 car 1\r\n"
        "10 20 30 40 car 0.75\r\n"
        "10.5 20 30 40 car 0 0.5\r\n"
        "0 0 8 0 8 6 0 6 boat 0 0.9\r\n"
        "0 0 8 0 8 6 0 6 boat 2e-1\r\n"
    )
    path.write_bytes(text.encode("utf-8"))
    boxes = read_dota_boxes(path)
    assert [(b.difficult, b.score) for b in boxes] == [
        (0, None),
        (1, None),
        (0, 0.75),
        (0, 0.5),
        (0, 0.9),
        (0, 0.2),
    ]
    assert [b.line for b in boxes] == [4, 5, 6, 7, 8, 9]
    horizontal = boxes[0]
    np.testing.assert_array_equal(horizontal.polygon, [[10, 20], [30, 20], [30, 40], [10, 40]])
    assert horizontal.hbb == (10.0, 20.0, 30.0, 40.0)
    assert boxes[3].hbb == (10.5, 20.0, 30.0, 40.0)
    assert boxes[4].hbb == (0.0, 0.0, 8.0, 6.0) and boxes[4].class_name == "boat"
    assert parse_dota_line("   ") is None and parse_dota_line("GSD: 0.5") is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1 2 3 car", "3 number\\(s\\) before the class name 'car', need 8 or 4"),
        ("1 2 3 4 5 6 7 8", "no class name after the 8 number"),
        ("1 2 3 4 5 6 car", "6 number\\(s\\) before the class name 'car'"),
        ("P0706 0.9 1 2 3 4 5 6 7 8", "0 number.* \\(a Task1 submission line"),
        ("1 2 3 4 car 1 0.5 extra", "3 tokens after the class name, at most 2"),
        ("1 2 3 4 car x", "score 'x' is not a finite number"),
        ("1 2 3 4 car 0.5 1", "difficult flag '0.5' is not an integer"),
        ("1 2 3 4 5 6 7 8 car -1", "difficult flag '-1' is not an integer >= 0"),
        ("1 2 nan 4 car", "coordinate 'nan' is not a finite number"),
        ("30 2 10 4 car", "horizontal box with xmin > xmax"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "P9.txt"
    path.write_text(f"gsd:0.3\n1 2 3 4 car\n{line}\n")
    with pytest.raises(BoxFileError, match=f"P9.txt, line 3: {message}"):
        read_dota_boxes(path)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    binary = tmp_path / "img.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(BoxFileError, match="img.txt: not a UTF-8 text file"):
        read_dota_boxes(binary)
    with pytest.raises(FileNotFoundError, match="box file .*nothing.txt does not exist"):
        read_dota_boxes(tmp_path / "nothing.txt")


def test_write_and_read_back_exactly(tmp_path: Path) -> None:
    boxes = read_dota_boxes(_dota("DOTA_P1888"))
    scored = [
        Box.from_polygon(b.polygon + 0.1, b.class_name, b.difficult, score=0.1 * (i % 10))
        for i, b in enumerate(boxes)
    ]
    path = write_dota_boxes(tmp_path / "out" / "P1888.txt", scored)
    again = read_dota_boxes(path)
    assert again == scored  # floats round-trip exactly; provenance is not compared
    assert again[0].origin == str(path) and scored[0].origin == ""
    with pytest.raises(ValueError, match="has whitespace"):
        format_dota_line(Box.from_hbb((0, 0, 1, 1), "Passenger Ship"))


def test_boxes_in_window_shift_clip_and_drop() -> None:
    inside = Box.from_hbb((110, 120, 130, 140), "car", origin="f.txt", line=4)
    crossing = Box.from_polygon([95, 150, 105, 140, 115, 150, 105, 160], "ship")
    outside = Box.from_hbb((0, 0, 50, 50), "car")
    touching = Box.from_hbb((90, 120, 100, 140), "car")  # ends exactly at the window's left edge
    kept = boxes_in_window([inside, crossing, outside, touching], 100, 100, 64, 48)
    assert [b.class_name for b in kept] == ["car", "ship"]
    assert kept[0].hbb == (10.0, 20.0, 30.0, 40.0) and (kept[0].origin, kept[0].line) == ("f.txt", 4)
    # The polygon is only shifted; the horizontal box is shifted and clipped (window: x < 64, y < 48).
    np.testing.assert_array_equal(kept[1].polygon, [[-5, 50], [5, 40], [15, 50], [5, 60]])
    assert kept[1].hbb == (0.0, 40.0, 15.0, 48.0)


def _task1(folder: Path, per_class: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in per_class.items():
        (folder / f"Task1_{name}.txt").write_text("".join(line + "\n" for line in lines))
    return folder


def _as_task1_lines(image_id: str, boxes: list[Box], class_name: str) -> list[str]:
    return [
        " ".join([image_id, "0.9", *(f"{v:.2f}" for v in b.polygon.ravel())])
        for b in boxes
        if b.class_name == class_name
    ]


def test_task1_submission_folder_and_zip_match_the_per_image_files(tmp_path: Path) -> None:
    ships = read_dota_boxes(_dota("DOTA_P0706"))
    vehicles = read_dota_boxes(_dota("DOTA_P1888"))
    per_class = {
        name: _as_task1_lines("DOTA_P0706", ships, name) + _as_task1_lines("DOTA_P1888", vehicles, name)
        for name in ("harbor", "large-vehicle", "ship", "small-vehicle")
    }
    per_class["plane"] = []  # mmrotate writes a file for every class, empty ones too
    folder = _task1(tmp_path / "Task1", per_class)
    read = read_task1_boxes(folder)
    assert sorted(read) == ["DOTA_P0706", "DOTA_P1888"]
    assert len(read["DOTA_P0706"]) == 536 and len(read["DOTA_P1888"]) == 64
    # Class files in sorted order (harbor before ship), lines in order within each.
    assert [b.class_name for b in read["DOTA_P0706"][:6]] == ["harbor"] * 5 + ["ship"]
    expected = sorted((b.class_name, b.hbb) for b in ships)
    assert sorted((b.class_name, b.hbb) for b in read["DOTA_P0706"]) == expected
    assert all(b.score == 0.9 and b.difficult == 0 for b in read["DOTA_P1888"])
    assert read["DOTA_P1888"][0].origin.endswith("Task1_large-vehicle.txt")

    archive = tmp_path / "Task1.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(folder.iterdir()):
            zf.write(file, file.name)
    assert read_task1_boxes(archive) == read
    assert BoxSource(archive).layout == "task1"

    # Converted to per-image files, with an empty file for an image that had no detection.
    written = task1_to_dota(folder, tmp_path / "labelTxt", image_ids=["DOTA_P2805__1024__0___0"])
    assert [p.name for p in written] == ["DOTA_P0706.txt", "DOTA_P1888.txt", "DOTA_P2805__1024__0___0.txt"]
    assert read_dota_boxes(written[1]) == read["DOTA_P1888"]
    assert read_dota_boxes(written[2]) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("P1 0.9 1 2 3 4 5 6 7", "9 tokens, expected 10"),
        ("P1 high 1 2 3 4 5 6 7 8", "score and 8 coordinates must be numbers"),
        ("P1 0.9 1 2 3 4 5 6 7 inf", "coordinate 'inf' is not a finite number"),
    ],
)
def test_malformed_task1_lines(tmp_path: Path, line: str, message: str) -> None:
    folder = _task1(tmp_path / "sub", {"ship": ["P1 0.5 1 2 3 4 5 6 7 8", line]})
    with pytest.raises(BoxFileError, match=f"Task1_ship.txt, line 2: {message}"):
        read_task1_boxes(folder)


def test_box_source_layouts_are_told_apart(tmp_path: Path) -> None:
    mixed = _task1(tmp_path / "mixed", {"ship": []})
    (mixed / "P0706.txt").write_text("")
    with pytest.raises(BoxFileError, match="both Task1 submission files .* and per-image box files"):
        BoxSource(mixed)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BoxFileError, match="no box file"):
        BoxSource(empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BoxSource(tmp_path / "absent")
    with pytest.raises(BoxFileError, match="not a single file"):
        BoxSource(mixed / "P0706.txt")
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(BoxFileError, match="not a readable zip"):
        BoxSource(tmp_path / "bad.zip")


def test_matching_rule_image_id_then_source_stem(tmp_path: Path) -> None:
    folder = tmp_path / "labelTxt"
    folder.mkdir()
    (folder / "P0706.txt").write_bytes(_dota("DOTA_P0706").read_bytes())
    (folder / "P0706_0_1024_0_1024.txt").write_text("5 5 10 10 tile-own\n")
    source = BoxSource(folder)
    assert source.layout == "dota" and source.names() == ["P0706", "P0706_0_1024_0_1024"]

    # A tile named by its own id: its own file, in its own coordinates (clipped, not shifted).
    own = source.boxes_for_image("P0706_0_1024_0_1024", "P0706.png", (0, 0, 1024, 1024), (1024, 1024))
    assert (own.rule, own.matched, own.listed) == ("image", "P0706_0_1024_0_1024", 1)
    assert own.boxes[0].class_name == "tile-own"

    # Another tile: the source's boxes, shifted by the window and clipped to it.
    all_boxes = read_dota_boxes(_dota("DOTA_P0706"))
    window = (87, 158, 1024, 1024)
    found = source.boxes_for_image("P0706_158_1182_87_1111", "sub/P0706.png", window, (1024, 1024))
    assert (found.rule, found.matched, found.listed) == ("source", "P0706", 536)
    expected = [
        b
        for b in all_boxes
        if b.hbb[2] > 87 and b.hbb[0] < 87 + 1024 and b.hbb[3] > 158 and b.hbb[1] < 158 + 1024
    ]
    assert 0 < len(found.boxes) == len(expected) < 536
    for got, raw in zip(found.boxes, expected, strict=True):
        assert got.line == raw.line
        np.testing.assert_array_equal(got.polygon, raw.polygon - [87, 158])
        x0, y0, x1, y1 = raw.hbb
        assert got.hbb == (max(x0 - 87, 0), max(y0 - 158, 0), min(x1 - 87, 1024), min(y1 - 158, 1024))

    # iSAID-style padded patch: the window is smaller than the image; boxes are clipped to the window.
    padded = source.boxes_for_image("P0706_0_896_896_1792", "P0706", (896, 0, 215, 896), (896, 896))
    assert padded.boxes and max(b.hbb[2] for b in padded.boxes) <= 215
    with pytest.raises(BoxFileError, match="larger than the image"):
        source.boxes_for_image("P0706_small", "P0706", (0, 0, 1024, 1024), (512, 512))
    with pytest.raises(BoxFileError, match=r"no box file for image P1 \(looked for P1.txt or P9.txt\)"):
        source.boxes_for_image("P1", "P9.png", (0, 0, 10, 10), (10, 10))

    # In a Task1 submission an image without detections simply has none.
    task1 = BoxSource(_task1(tmp_path / "Task1", {"ship": ["P0706 0.8 1 1 9 1 9 9 1 9"]}))
    assert task1.boxes_for_image("P1", "P1.png", (0, 0, 10, 10), (10, 10)).rule == "none"
    assert len(task1.boxes_for_image("P0706", "", (0, 0, 10, 10), (10, 10)).boxes) == 1
