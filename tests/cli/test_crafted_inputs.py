"""Every command that writes a folder follows one rule, and crafted inputs end in one line.

Commands run as a user runs them: ``alps.cli.main`` where only the exit status and the message matter,
a real ``alps`` process where a signal, the memory or the time matters. Inputs are small crops of the real
Potsdam tile, labeled with the weight-free felzenszwalb masks.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from alps.cli import main
from alps.io.manifest import MANIFEST_COLUMNS
from alps.masks.shards import MASK_SHARD_SCHEMA

from conftest import K3, REPO_ROOT

GIB = 1 << 30


@pytest.fixture(scope="module")
def run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The inputs of every command: a labeled folder, a painted shard, and a ``prepare folder`` dataset."""
    root = tmp_path_factory.mktemp("run")
    labeled = root / "labeled"
    assert main(["label", str(images), str(labeled), *K3, "--no-gallery"]) == 0
    paint = root / "paint"
    shard = [str(labeled / name) for name in ("masks.parquet", "features.npz", "kmeans.npz")]
    assert main(["paint", *shard, str(paint)]) == 0
    raw = root / "raw"
    raw.mkdir()
    Image.open(images / "t0.png").save(raw / "scene.png")
    dataset = root / "dataset"
    assert (
        main(["prepare", "folder", str(raw), str(dataset), "--options", '{"tile_size": 64, "overlap": 0}'])
        == 0
    )
    tiles = root / "tiles"
    tiles.mkdir()
    manifest = dataset / "manifest.csv"
    for row in _rows(manifest):
        Image.fromarray(np.zeros((int(row["window_h"]), int(row["window_w"])), np.uint8)).save(
            tiles / f"{row['image_id']}.png"
        )
    return {"labeled": labeled, "paint": paint, "manifest": manifest, "tiles": tiles, "images": images}


def _rows(manifest: Path) -> list[dict[str, str]]:
    import csv

    with manifest.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _argv(command: str, run: dict[str, Path], out: Path) -> list[str]:
    labeled = run["labeled"]
    shards = [str(labeled / name) for name in ("masks.parquet", "features.npz", "kmeans.npz")]
    if command == "paint":
        return ["paint", *shards, str(out)]
    if command == "gallery":
        return [
            "gallery",
            str(run["images"]),
            str(out),
            "--mask-shards",
            shards[0],
            "--feature-shards",
            shards[1],
            "--model",
            shards[2],
        ]
    if command == "pl-dataset":
        return ["pl-dataset", str(run["images"]), str(out), "--paint-dirs", str(run["paint"])]
    assert command == "mosaic"
    return ["mosaic", str(run["manifest"]), str(run["tiles"]), str(out)]


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".alps-label.lock"
    }


def _one_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"alps {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


COMMANDS = ["paint", "gallery", "pl-dataset", "mosaic"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_user_file_in_out_is_left_byte_identical(command, run, tmp_path, capsys):
    """Defect: `alps paint ... .` deleted its inputs and a notes.txt beside them, exit 0."""
    out = tmp_path / "out"
    assert main(_argv(command, run, out)) == 0  # a first run: the command's own output
    assert main(_argv(command, run, out)) == 0  # replaced by the same command
    (out / "notes.txt").write_bytes(b"my notes \x00\xff")
    before = _digests(out)
    assert main(_argv(command, run, out)) == 2
    line = _one_line(capsys, command)
    assert f"{out / 'notes.txt'} (not written by alps {command})" in line
    assert _digests(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no build left beside it
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "thesis.tex").write_text("four years")
    assert main(_argv(command, run, fresh)) == 2
    assert "holds thesis.tex and there is no .alps-output.json" in _one_line(capsys, command)
    assert (fresh / "thesis.tex").read_text() == "four years"


@pytest.mark.parametrize(
    ("command", "input_folder"),
    [("paint", "labeled"), ("gallery", "images"), ("pl-dataset", "paint"), ("mosaic", "tiles")],
)
def test_out_equal_to_an_inputs_folder_is_refused(command, input_folder, run, capsys):
    folder = run[input_folder]
    before = _digests(folder.parent)
    assert main(_argv(command, run, folder)) == 2
    line = _one_line(capsys, command)
    assert f"the output {folder} is the input" in line or f"the output {folder} contains the input" in line
    assert _digests(folder.parent) == before


def _alps(
    *args: str, cwd: Path, memory: int | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """A real `alps` process (optionally with its address space limited to ``memory`` bytes)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }

    def limit_memory() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "alps.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit_memory,
    )


def _refused_in_one_line(result: subprocess.CompletedProcess, command: str) -> str:
    assert result.returncode in (1, 2), (
        f"exit {result.returncode} (a negative one is a signal)\n{result.stderr}"
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"alps {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _shard(path: Path, images: list[dict], rows: list[tuple[str, bytes]]) -> Path:
    columns: dict[str, list] = {name: [] for name in MASK_SHARD_SCHEMA.names}
    for mask_id, (image_id, counts) in enumerate(rows):
        values = [image_id, mask_id, counts, 1, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
        for name, value in zip(MASK_SHARD_SCHEMA.names, values, strict=True):
            columns[name].append(value)
    metadata = {b"alps.images": json.dumps({"version": 1, "images": images}).encode()}
    pq.write_table(pa.table(columns, schema=MASK_SHARD_SCHEMA.with_metadata(metadata)), path)
    return path


@pytest.mark.slow
def test_crafted_mask_shards_end_in_one_line_and_write_nothing_outside_out(run, tmp_path):
    """Defect: absolute or `..` image ids made `alps paint` write PNGs there; crafted RLEs crashed
    pycocotools."""
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    work = tmp_path / "work"
    (work / "deep").mkdir(parents=True)
    size = {"height": 4, "width": 4}
    crafted = {
        "dotdot": [{"image_id": "../../victim", **size}],
        "absolute": [{"image_id": str(tmp_path / "victim"), **size}],
        "unterminated rle": [{"image_id": "a", **size}],
        "overlong runs": [{"image_id": "a", **size}],
        "huge image": [{"image_id": "a", "height": 100000, "width": 100000}],
    }
    rles = {"unterminated rle": b"1o", "overlong runs": b"0n5"}
    labeled = run["labeled"]
    for name, images in crafted.items():
        rows = [(images[0]["image_id"], rles.get(name, b"G0"))]
        shard = _shard(work / "deep" / f"{name.replace(' ', '_')}.parquet", images, rows)
        before = _digests(tmp_path)
        result = _alps(
            "paint",
            str(shard),
            str(labeled / "features.npz"),
            str(labeled / "kmeans.npz"),
            "out",
            cwd=work / "deep",
            memory=8 * GIB,  # torch maps a few GiB of address space; the shard may not add gigabytes
        )
        line = _refused_in_one_line(result, "paint")
        assert str(shard) in line, line
        assert _digests(tmp_path) == before, name  # nothing written anywhere, OUT included
        assert victim.read_bytes() == b"precious"


def _coco(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.mark.slow
def test_crafted_coco_files_end_in_one_line(images, tmp_path):
    """Defect: a polygon at 5e8 killed `alps label --masks coco` with SIGSEGV; lists gave tracebacks."""
    image = {"id": 1, "file_name": "t0.png", "height": 96, "width": 128}
    polygon = [0, 0, 5e8, 0, 5e8, 5e8]
    cases = {
        "far polygon": {
            "images": [image],
            "annotations": [{"id": 1, "image_id": 1, "segmentation": [polygon]}],
        },
        "top-level list": [image],
        "list image_id": {"images": [image], "annotations": [{"id": 1, "image_id": [1], "segmentation": []}]},
    }
    one = tmp_path / "one"
    one.mkdir()
    (one / "t0.png").symlink_to(images / "t0.png")
    for name, data in cases.items():
        coco = _coco(tmp_path / f"{name.replace(' ', '_')}.json", data)
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        result = _alps("label", str(one), str(out), "--masks", "coco", "--coco-json", str(coco), cwd=tmp_path)
        line = _refused_in_one_line(result, "label")
        assert str(coco) in line, line
        assert not (out / "labels").exists()


def _sparse_geotiff(path: Path, side: int) -> Path:
    """A tiled, DEFLATE GeoTIFF claiming ``side`` x ``side`` uint8 pixels, with no block written."""
    import rasterio
    from rasterio.transform import from_origin

    profile = {
        "driver": "GTiff",
        "height": side,
        "width": side,
        "count": 1,
        "dtype": "uint8",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "sparse_ok": True,
        "crs": "EPSG:32616",
        "transform": from_origin(500_000, 4_000_000, 1, 1),
    }
    with rasterio.open(path, "w", **profile):
        pass
    return path


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid-looking PNG header that claims ``width`` x ``height`` grey pixels (a few bytes of data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.slow
def test_a_small_file_claiming_a_huge_raster_is_refused_with_little_memory(tmp_path):
    """Defect: a 300 KB TIFF claiming 100000^2 made vectorize and mosaic allocate 9.3 GiB; a sparse
    60000^2 GeoTIFF made `alps label` work through 4,489 tiles. Each command runs with its address space
    limited to 1 GiB (and a generous timeout): the refusal comes from the header, before torch is loaded."""
    side = 100_000
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    tif = _sparse_geotiff(scenes / "huge.tif", side)
    assert tif.stat().st_size < 2_000_000
    labels = tmp_path / "labels"
    labels.mkdir()
    png = _png_claiming(labels / "tile.png", side, side)
    gt = tmp_path / "gt"
    gt.mkdir()
    _png_claiming(gt / "tile.png", side, side)
    manifest = tmp_path / "dataset" / "manifest.csv"
    manifest.parent.mkdir()
    values = {c: "" for c in MANIFEST_COLUMNS}
    values.update(
        image_id="tile", split="train", image_path="tile.png", height=side, width=side, source="s.tif"
    )
    values.update(window_x=0, window_y=0, window_w=side, window_h=side)
    manifest.write_text(
        ",".join(MANIFEST_COLUMNS) + "\n" + ",".join(str(values[c]) for c in MANIFEST_COLUMNS) + "\n"
    )
    runs = {
        "label": ["label", str(scenes), str(tmp_path / "out_label"), *K3],
        "vectorize": ["vectorize", str(tif), str(tmp_path / "out.gpkg")],
        "mosaic": ["mosaic", str(manifest), str(labels), str(tmp_path / "out_mosaic")],
        "evaluate-labels": ["evaluate-labels", str(labels), str(gt)],
    }
    for command, argv in runs.items():
        result = _alps(*argv, cwd=tmp_path, memory=GIB, timeout=120)
        line = _refused_in_one_line(result, command)
        assert f"{side} x {side}" in line and "--max-pixels" in line, line
    assert png.stat().st_size < 200


def test_evaluate_refuses_more_classes_than_it_scores(tmp_path, capsys):
    """Defect: 16-bit ground truth holding 65535 made a 65536-class confusion matrix (26.8 GiB)."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8)).save(pred / "a.png")
    Image.fromarray(np.array([[0, 1], [65535, 0]], np.uint16)).save(gt / "a.png")
    assert main(["evaluate-labels", str(pred), str(gt)]) == 2
    assert "65536 classes" in _one_line(capsys, "evaluate-labels")
    assert main(["evaluate-labels", str(pred), str(gt), "--ignore", "65535"]) == 0
