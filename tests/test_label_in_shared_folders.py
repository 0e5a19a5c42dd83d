"""``alps label`` as a user runs it, against what goes wrong in shared folders.

Each test reproduces one defect through the CLI (``alps.cli.main`` or a real ``alps label`` process) on
small crops of the real Potsdam tile, with the weight-free felzenszwalb masks.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alps.cli import main
from alps.io.atomic import atomic_output
from alps.io.manifest import MANIFEST_COLUMNS
from alps.io.outputs import OutputSet

from conftest import K3, REPO_ROOT, shared_data


@pytest.fixture(scope="module")
def labeled(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished ``alps label`` output folder; tests copy it before changing it."""
    out = tmp_path_factory.mktemp("labeled") / "out"
    assert main(["label", str(images), str(out), *K3]) == 0
    return out


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) -> SHA-256."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".alps-label.lock"
    }


def _copy(labeled: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    subprocess.run(["cp", "-a", str(labeled), str(out)], check=True)
    return out


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_a_rerun_keeps_files_it_did_not_write(labeled, images, tmp_path, capsys):
    """Defect: OUT/labels/my_manual_label.png vanished on a rerun."""
    out = _copy(labeled, tmp_path)
    manual = out / "labels" / "my_manual_label.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(manual)
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    assert main(["label", str(images), str(out), *K3]) == 2
    line = _error_line(capsys)
    assert str(manual) in line and "not written by alps label" in line
    assert _snapshot(out) == before  # nothing replaced, nothing deleted
    # Moved away, the rerun goes through and leaves the user's other file alone.
    manual.rename(tmp_path / manual.name)
    assert main(["label", str(images), str(out), *K3]) == 0
    assert (out / "notes.txt").read_text() == "mine"


def test_a_rerun_refuses_edited_outputs_and_files_of_an_older_version(labeled, images, tmp_path, capsys):
    out = _copy(labeled, tmp_path)
    edited = out / "labels" / "t1.png"
    Image.fromarray(np.full((96, 128), 2, np.uint8)).save(edited)  # a hand-corrected label
    assert main(["label", str(images), str(out), *K3]) == 2
    assert f"{edited} (changed since alps label wrote it)" in _error_line(capsys)
    assert np.all(np.asarray(Image.open(edited)) == 2)
    # Outputs without a record (an older alps, or another tool) are not ours to replace either.
    (out / ".alps-label.json").unlink()
    assert main(["label", str(images), str(out), *K3]) == 2
    assert "features.npz (not written by alps label)" in _error_line(capsys)
    # A forged record naming a path outside OUT is refused, not followed.
    (out / ".alps-label.json").write_text(
        json.dumps({"format": "alps-output-set/1", "entries": ["../victim"], "files": {}})
    )
    assert main(["label", str(images), str(out), *K3]) == 2
    assert "'../victim' is not a top-level output name" in _error_line(capsys)


def test_a_failed_rerun_leaves_the_previous_outputs_whole(labeled, images, tmp_path, capsys):
    """Defect: a rerun with --k too large left new masks/features beside old labels, model and card."""
    out = _copy(labeled, tmp_path)
    before = _snapshot(out)
    finer = ["--masks", "felzenszwalb", "--mask-params", '{"scale": 50}']  # other masks than the first run's
    assert main(["label", str(images), str(out), *finer, "--k", "250"]) == 2
    assert "fewer than k=250" in _error_line(capsys)
    assert _snapshot(out) == before
    assert not (out / ".alps-label.build").exists()


def test_a_rerun_replaces_every_output_and_removes_stale_ones(labeled, images, tmp_path):
    out = _copy(labeled, tmp_path)
    assert main(["label", str(images), str(out), *K3, "--binary"]) == 0
    assert sorted(p.name for p in (out / "binary").iterdir()) == ["t0.png", "t1.png", "t2.png"]
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    (fewer / "t0.png").symlink_to(images / "t0.png")
    assert main(["label", str(fewer), str(out), *K3]) == 0
    # Outputs of images no longer labeled, and the binary variant no longer asked for, are gone.
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["t0.png"]
    assert not (out / "binary").exists()
    card = json.loads((out / "label_card.json").read_text())
    assert card["images"] == 1
    record = json.loads((out / ".alps-label.json").read_text())
    assert set(record["files"]) == {k for k in _snapshot(out) if not k.startswith(".alps-label")}


def test_a_second_run_on_the_same_folder_is_refused(labeled, images, tmp_path, capsys):
    out = _copy(labeled, tmp_path)
    before = _snapshot(out)
    with open(out / ".alps-label.lock", "a+") as held:  # what a running `alps label` holds
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main(["label", str(images), str(out), *K3]) == 2
        line = _error_line(capsys)
    assert "in use by another `alps label` run" in line and "choose another output folder" in line
    assert _snapshot(out) == before


def _start_label(images: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "alps.cli", "label", str(images), str(out), *K3, *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1].decode()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_kill_9_then_a_concurrent_and_a_fresh_run(images, labeled, tmp_path, capsys):
    """A real process killed mid-run; a second run refused while it holds OUT; the next run cleans up."""
    many = tmp_path / "many"  # enough images that the first run is still building when it is stopped
    many.mkdir()
    for i in range(12):
        (many / f"m{i:02d}.png").symlink_to(images / f"t{i % 3}.png")
    out = _copy(labeled, tmp_path)
    before = _snapshot(out)
    first = _start_label(many, out)
    _wait_for(out / ".alps-label.build", first)
    first.send_signal(signal.SIGSTOP)  # holds the lock, mid-build
    try:
        assert main(["label", str(images), str(out), *K3]) == 2
        assert "in use by another `alps label` run" in _error_line(capsys)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # Killed mid-build: the previous outputs are whole; only the hidden build folder is left.
    assert {k: v for k, v in _snapshot(out).items() if not k.startswith(".alps-label.build")} == before
    (out / "labels" / ".t0.png.deadbeef.alps-tmp").write_bytes(b"")  # a temp file of a killed writer
    assert main(["label", str(many), str(out), *K3]) == 0
    hidden = sorted(p.name for p in out.rglob(".*"))
    assert hidden == [".alps-label.json", ".alps-label.lock"]  # build folder and temp file swept
    assert sorted(p.stem for p in (out / "labels").iterdir()) == [f"m{i:02d}" for i in range(12)]
    record = json.loads((out / ".alps-label.json").read_text())
    assert record["files"] == {k: v for k, v in _snapshot(out).items() if not k.startswith(".")}


# The publication's renames into OUT: 1 the journal, 2-8 old outputs aside, 9-16 new ones in, 17 the record.
@pytest.mark.parametrize("dies_at", [1, 2, 5, 9, 13, 16, 17])
def test_a_kill_during_publication(labeled, images, tmp_path, monkeypatch, dies_at):
    """Killed between any two renames, OUT holds the old outputs or (once the next run starts) the new."""
    out = _copy(labeled, tmp_path)
    before = _snapshot(out)
    replace = os.replace
    renames = []

    def dies_at_a_publication_rename(src, dst):
        if Path(dst).parent in (out, out / ".alps-label.old"):
            renames.append(dst)
            if len(renames) == dies_at:
                raise KeyboardInterrupt("killed")  # stands for kill -9: nothing after it runs
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_at_a_publication_rename)
    assert main(["label", str(images), str(out), *K3, "--binary"]) == 130  # Ctrl-C: one line, exit 130
    monkeypatch.setattr(os, "replace", replace)
    if dies_at == 1:  # before the journal: nothing was published
        assert _snapshot(out) == before
        return
    assert (out / ".alps-label.publish.json").exists()  # half published: the journal says what remains
    with OutputSet(out, "alps-label", "alps label"):  # what the next run does first, under the lock
        pass
    record = json.loads((out / ".alps-label.json").read_text())
    assert record["files"] == {k: v for k, v in _snapshot(out).items() if not k.startswith(".")}
    assert sorted(p.name for p in (out / "binary").iterdir()) == ["t0.png", "t1.png", "t2.png"]
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert hidden == [".alps-label.json", ".alps-label.lock"]


def test_temp_files_are_never_data(tmp_path):
    """Defect: a killed writer left `.002.png.<random>.png`, which `*.png` globs read as a label."""
    target = tmp_path / "002.png"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_bytes(b"")
        kept = tmp.with_name(tmp.name + "-copy")
        os.link(tmp, kept)  # what kill -9 would leave (the cleanup below never runs then)
        raise KeyboardInterrupt
    assert kept.exists() and ".alps-tmp" in kept.name
    assert list(tmp_path.glob("*.png")) == []


def test_an_unreadable_image_fails_by_name_or_is_skipped(images, tmp_path, capsys, caplog):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in images.iterdir():
        (folder / path.name).symlink_to(path)
    bad = folder / "t1b.png"
    bad.write_bytes((images / "t1.png").read_bytes()[:200])  # truncated
    (folder / "t9.jpg").write_text("not an image")
    out = tmp_path / "out"
    assert main(["label", str(folder), str(out), *K3]) == 2
    line = _error_line(capsys)
    assert str(bad) in line and "--on-error skip" in line
    assert not (out / "labels").exists()
    assert main(["label", str(folder), str(out), *K3, "--on-error", "skip"]) == 0
    assert "skipped 2 unreadable image(s)" in caplog.text  # the log goes to stderr
    assert f"{bad}: cannot decode image" in caplog.text and "t9.jpg: cannot decode image" in caplog.text
    card = json.loads((out / "label_card.json").read_text())
    assert [s["item"] for s in card["skipped"]] == ["t1b", "t9"] and card["on_error"] == "skip"
    assert sorted(p.stem for p in (out / "labels").iterdir()) == ["t0", "t1", "t2"]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_get_the_umasks_permissions(images, tmp_path, umask):
    """Defect: every output was 0600 (mkstemp), so colleagues could not read them."""
    old = os.umask(umask)
    try:
        assert main(["label", str(images), str(tmp_path / "out"), *K3]) == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.name != ".alps-label.lock"]
    assert len(files) > 10
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o666 & ~umask}


def _geotiff(path: Path, data: np.ndarray, nodata: float) -> None:
    import rasterio
    from rasterio.transform import from_origin

    profile = {"driver": "GTiff", "height": data.shape[1], "width": data.shape[2], "count": data.shape[0]}
    profile.update(dtype=str(data.dtype), nodata=nodata, crs="EPSG:32616", transform=from_origin(0, 0, 1, 1))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def test_nodata_is_left_unlabeled_and_out_of_the_stretch(tmp_path):
    """Defect: -9999 no-data squeezed the valid pixels of an int16 scene into 236-255, 98 % unlabeled."""
    grey = np.asarray(Image.open(shared_data("potsdam", "img_dir", "2_10_0_0_512_512.png")).convert("L"))
    scene = (grey[:120, :160].astype(np.int16) * 8 + 200)[None]
    scene[:, :, :50] = -9999  # a swath edge
    scene[:, 100:, 120:] = -9999
    folder = tmp_path / "scenes"
    folder.mkdir()
    _geotiff(folder / "scene.tif", scene, -9999)
    out = tmp_path / "out"
    assert main(["label", str(folder), str(out), *K3]) == 0
    import rasterio

    # A scene with a CRS gets a GeoTIFF label (alps.geo).
    with rasterio.open(out / "labels" / "scene.tif") as src:
        label = src.read(1)
    nodata = scene[0] == -9999
    assert np.all(label[nodata] == 255)
    assert (label[~nodata] != 255).mean() > 0.3  # the valid pixels are labeled again (was 3 %)
    from alps.io.images import read_image

    valid_values = read_image(folder / "scene.tif")[..., 0][~nodata]
    assert valid_values.min() == 0 and valid_values.max() == 255  # stretched over the valid pixels only


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "x")


def _npy(path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, np.zeros(3))


CRAFTED_CHECKPOINTS = {
    "text": lambda p: p.write_text("hello world\n"),
    "random": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)),
    "empty": lambda p: p.write_bytes(b""),
    "zip": _zip,
    "numpy": _npy,
    "pickle_payload": lambda p: p.write_bytes(pickle.dumps(_Payload())),
    "torch_payload": lambda p: torch.save({"image_encoder.x": _Payload()}, p),
    "list": lambda p: torch.save([torch.zeros(1)], p),
    "wrong_dict": lambda p: torch.save({"model": {"w": torch.zeros(2)}}, p),
}


class _Payload:
    """Unpickling this creates a marker file: the code-execution probe."""

    marker = Path(os.environ.get("ALPS_TEST_MARKER", "/tmp/alps-test-sam-payload-ran"))

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", sorted(CRAFTED_CHECKPOINTS))
def test_a_garbage_sam_checkpoint_is_named_and_never_run(kind, images, tmp_path, capsys):
    """Defect: a garbage --sam-checkpoint printed `error: 174812789`."""
    _Payload.marker.unlink(missing_ok=True)
    checkpoint = tmp_path / "sam_vit_h_4b8939.pth"
    CRAFTED_CHECKPOINTS[kind](checkpoint)
    args = [
        "label",
        str(images),
        str(tmp_path / "out"),
        "--masks",
        "sam",
        "--sam-checkpoint",
        str(checkpoint),
    ]
    assert main([*args, "--sam-model", "vit_tiny"]) == 2
    line = _error_line(capsys)
    assert str(checkpoint) in line
    assert "is not a SAM checkpoint" in line and "official SAM weights" in line
    assert "weights_only=False" not in line
    assert not _Payload.marker.exists()


def test_evaluate_with_class_names_when_the_last_class_is_absent(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    Image.fromarray(np.array([[0, 1], [1, 255]], np.uint8)).save(pred / "a.png")
    Image.fromarray(np.array([[0, 1], [2, 2]], np.uint8)).save(gt / "a.png")
    (pred / ".a.png.0123abcd.alps-tmp").write_bytes(b"")  # never read as a label
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({"classes": ["background", "road", "building", "water"]}))
    out = tmp_path / "q.json"
    args = ["evaluate-labels", str(pred), str(gt), "--class-names", str(classes)]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["num_classes"] == 4 and report["images"] == 1
    assert report["hungarian"]["per_class_iou"]["water"] is None
    capsys.readouterr()
    Image.fromarray(np.array([[0, 1], [5, 2]], np.uint8)).save(gt / "a.png")
    assert main(args) == 2
    assert f"{gt / 'a.png'}: ground truth holds class ids outside 0..3" in _error_line(capsys)


def test_a_manifest_leaving_its_folder_is_refused(images, tmp_path, capsys):
    """Defect: a row `../outside/secret.png` was accepted (and hard-linked into the PL dataset)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").symlink_to(images / "t0.png")
    dataset = tmp_path / "dataset"
    (dataset / "img").mkdir(parents=True)
    (dataset / "img" / "ok.png").symlink_to(images / "t1.png")  # the sample files live elsewhere ...
    header = ",".join(MANIFEST_COLUMNS)

    def manifest(path_text: str) -> Path:
        rows = [f"{i},train,{p},96,128,,0,0,128,96,,," for i, p in (("a", "img/a.png"), ("b", path_text))]
        path = dataset / "manifest.csv"
        path.write_text("\n".join([header, *rows]) + "\n")
        return path

    (dataset / "img" / "a.png").write_bytes((images / "t0.png").read_bytes())  # ... this one is inside
    (dataset / "img" / "link.png").symlink_to(outside / "secret.png")
    for path_text in ("../outside/secret.png", str(outside / "secret.png"), "img/link.png", "img/ok.png"):
        assert main(["label", str(manifest(path_text)), str(tmp_path / "out"), *K3]) == 2
        line = _error_line(capsys)
        assert "row 1 (CSV line 3), column 'image_path'" in line
        assert (
            "absolute" in line or "outside the manifest's folder" in line or "leaves the manifest's" in line
        )
    assert not (tmp_path / "out" / "labels").exists()


def test_shard_size_zero_is_a_clear_error(images, tmp_path, capsys):
    """Defect: --shard-size 0 raised ZeroDivisionError in select_shard."""
    args = [
        "masks",
        str(images),
        str(tmp_path / "m.parquet"),
        "--masks",
        "felzenszwalb",
        "--shard-index",
        "0",
    ]
    assert main([*args, "--shard-size", "0"]) == 2
    assert "shard size is a number of images, at least 1; got 0" in _error_line(capsys)


def test_output_set_refuses_a_symlinked_output(tmp_path):
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.png").write_bytes(b"x")
    out.mkdir()
    (out / "labels").symlink_to(elsewhere)
    with OutputSet(out, "t", "tester") as outputs:
        (outputs.build_dir / "labels").mkdir()
        (outputs.build_dir / "labels" / "a.png").write_bytes(b"y")
        with pytest.raises(ValueError, match="labels .not written by tester"):
            outputs.publish()
    assert (elsewhere / "keep.png").read_bytes() == b"x"


def test_planted_links_are_not_followed(tmp_path):
    """A link in place of the lock or the build folder must not make a run write or delete elsewhere."""
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / ".t.lock").symlink_to(victim)
    with pytest.raises(ValueError, match=r"lock file .*\.t\.lock .*remove whatever is there"):
        OutputSet(out, "t", "tester").__enter__()
    assert victim.read_text() == "precious"
    (out / ".t.lock").unlink()
    victims = tmp_path / "victims"
    victims.mkdir()
    (victims / "keep.txt").write_text("precious")
    (out / ".t.build").symlink_to(victims)
    with OutputSet(out, "t", "tester") as outputs:
        assert outputs.build_dir.is_dir() and not outputs.build_dir.is_symlink()
    assert (victims / "keep.txt").read_text() == "precious"


def test_other_bad_inputs_get_one_clear_line(images, tmp_path, capsys):
    """Inputs that used to end in a traceback, or in silence."""
    dangling = tmp_path / "dangling"
    dangling.mkdir()
    (dangling / "t0.png").symlink_to(images / "t0.png")
    (dangling / "gone.png").symlink_to(tmp_path / "deleted.png")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    listing = tmp_path / "classes.json"
    listing.write_text("[1, 2]")
    cases = [
        (
            ["label", str(images), str(tmp_path / "o"), *K3, "--mask-params", '{"bogus": 1}'],
            "unknown felzenszwalb",
        ),
        (["label", str(dangling), str(tmp_path / "o"), *K3], f"{dangling / 'gone.png'}: no such image file"),
        (["label", str(images), str(a_file), *K3], f"output folder {a_file} exists and is not a folder"),
        (["evaluate-labels", str(images), str(images), "--class-names", str(listing)], "a 'classes' list"),
        (["evaluate-labels", str(images), str(images), "--class-names", str(a_file)], f"{a_file}: not JSON"),
    ]
    for argv, fragment in cases:
        assert main(argv) == 2, argv
        assert fragment in _error_line(capsys)


def test_nodata_stays_unlabeled_in_a_tiled_scene(tmp_path):
    """A scene larger than a tile is read by windows: its no-data is honoured there too (stretch, masks)."""
    import rasterio

    grey = np.asarray(Image.open(shared_data("potsdam", "img_dir", "2_10_0_0_512_512.png")).convert("L"))
    scene = (grey[:200, :240].astype(np.int16) * 8 + 200)[None]
    scene[:, :, :60] = -9999  # a swath edge across several tiles
    scene[:, 150:, 180:] = -9999
    folder = tmp_path / "scenes"
    folder.mkdir()
    _geotiff(folder / "scene.tif", scene, -9999)
    out = tmp_path / "out"
    assert main(["label", str(folder), str(out), *K3, "--tile-size", "96", "--overlap", "16"]) == 0
    card = json.loads((out / "label_card.json").read_text())
    assert card["inputs"][0]["tiles"] > 1
    with rasterio.open(out / "labels" / "scene.tif") as src:
        label = src.read(1)
    nodata = scene[0] == -9999
    assert label.shape == nodata.shape
    assert np.all(label[nodata] == 255)
    assert (label[~nodata] != 255).mean() > 0.3


@pytest.mark.parametrize("tiling", [[], ["--tile-size", "64", "--overlap", "16"]], ids=["whole", "tiled"])
def test_transparent_pixels_stay_unlabeled_in_a_png_as_in_a_tiff(tmp_path, tiling):
    """A PNG's alpha is no-data as an RGBA TIFF's alpha band is (it was labeled in the PNG): the same pixels
    give the same labels, the transparent half unlabeled in both. A named run draws its overlays too."""
    import rasterio

    rgb = np.asarray(Image.open(shared_data("potsdam", "img_dir", "2_10_0_0_512_512.png")).convert("RGB"))
    rgba = np.dstack([rgb[:96, :128], np.full((96, 128), 255, np.uint8)])
    rgba[:, :64, 3] = 0
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(rgba).save(folder / "as_png.png")
    profile = {"driver": "GTiff", "height": 96, "width": 128, "count": 4, "dtype": "uint8"}
    with rasterio.open(folder / "as_tif.tif", "w", **profile, photometric="RGB", alpha="YES") as dst:
        dst.write(np.moveaxis(rgba, -1, 0))
    (tmp_path / "map.yaml").write_text("0: a\n1: b\n2: a\n")
    out = tmp_path / "out"
    assert (
        main(["label", str(folder), str(out), *K3, *tiling, "--class-map", str(tmp_path / "map.yaml")]) == 0
    )
    png = np.asarray(Image.open(out / "labels" / "as_png.png"))
    tif = np.asarray(Image.open(out / "labels" / "as_tif.png"))  # a TIFF without CRS: a PNG label
    assert (png[:, :64] == 255).all() and (png[:, 64:] != 255).any()
    np.testing.assert_array_equal(png, tif)
    assert {p.name for p in (out / "vis").iterdir()} >= {"as_png.overlay.png", "as_tif.overlay.png"}
