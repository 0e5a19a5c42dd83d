"""Inputs that ended in a traceback, a signal or a silently wrong result now end in one line.

Each case is run through the ``alps`` command as a user meets it; small crops of the real Potsdam tile are
labeled with the weight-free felzenszwalb masks where a labeling is needed.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from alps.cli import main
from alps.cluster import ClusterModel
from alps.config import ConfigError, validate_config
from alps.features.shards import read_feature_shard, write_feature_shard

from conftest import K3, REPO_ROOT


@pytest.fixture(scope="module")
def labeled(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("labeled") / "out"
    assert main(["label", str(images), str(out), *K3, "--no-gallery"]) == 0
    return out


@pytest.fixture(scope="module")
def pl(labeled: Path, images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pl")
    shard = [str(labeled / name) for name in ("masks.parquet", "features.npz", "kmeans.npz")]
    assert main(["paint", *shard, str(root / "paint")]) == 0
    assert main(["pl-dataset", str(images), str(root / "pl"), "--paint-dirs", str(root / "paint")]) == 0
    return root / "pl"


def _line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"alps {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "unexpected" not in lines[0], lines[0]  # a foreseen refusal, not the safety net
    return lines[0]


def test_on_error_skip_skips_a_tif_whose_georeference_cannot_be_read(images, tmp_path, caplog):
    """Defect: the georeference of a .tif was read outside the skip: a traceback instead of a skip."""
    folder = tmp_path / "images"
    folder.mkdir()
    for path in images.iterdir():
        (folder / path.name).symlink_to(path)
    (folder / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    out = tmp_path / "out"
    assert main(["label", str(folder), str(out), *K3, "--no-gallery", "--on-error", "skip"]) == 0
    card = json.loads((out / "label_card.json").read_text())
    assert [s["item"] for s in card["skipped"]] == ["broken"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--mask-params", '{"scale": "abc"}'], "felzenszwalb mask parameter 'scale' must be a finite float"),
        (["--mask-params", '{"min_size": 2.5}'], "'min_size' must be a whole number, got 2.5"),
        (["--masks", "slic", "--mask-params", '{"n_segments": 0}'], "slic needs n_segments >= 1"),
        (["--mask-params", '{"scale": -1}'], "felzenszwalb needs scale > 0"),
    ],
)
def test_bad_mask_parameters_are_one_line(images, tmp_path, capsys, options, fragment):
    argv = ["label", str(images), str(tmp_path / "out"), "--k", "3", *options]
    assert main(argv) == 2
    assert fragment in _line(capsys, "label")


def _card(path: Path, value: object) -> None:
    path.write_text(json.dumps(value))


@pytest.mark.parametrize(
    ("card", "fragment"),
    [
        ([1, 2], "a dataset card is a JSON object, this one is a list"),
        ({"num_classes": None}, "'num_classes' must be an integer, got None"),
        ({"num_classes": 300}, "'num_classes' is 300, expected 1..255"),  # ids >= 256 with a 300-class card
    ],
)
def test_broken_dataset_cards_are_one_line(pl, tmp_path, capsys, card, fragment):
    source = tmp_path / "pl"
    subprocess.run(["cp", "-a", str(pl), str(source)], check=True)
    _card(source / "dataset_card.json", card)
    (tmp_path / "map.yaml").write_text("0: a\n1: b\n2: c\n")
    argv = [
        "apply-class-map",
        str(source),
        str(tmp_path / "named"),
        "--class-map",
        str(tmp_path / "map.yaml"),
    ]
    assert main(argv) == 2
    assert fragment in _line(capsys, "apply-class-map")
    assert not (tmp_path / "named").exists()


def test_a_class_list_that_is_a_list_is_one_line(labeled, tmp_path, capsys):
    out = tmp_path / "labeled"
    subprocess.run(["cp", "-a", str(labeled), str(out)], check=True)
    _card(out / "classes.json", ["not", "an", "object"])  # what vectorize reads beside labels/
    assert main(["vectorize", str(out / "labels" / "t0.png"), str(tmp_path / "p.gpkg")]) == 2
    assert "a class list is a JSON object, this one is a list" in _line(capsys, "vectorize")


def test_a_paint_card_with_k_null_is_one_line(pl, labeled, images, tmp_path, capsys):
    paint = tmp_path / "paint"
    shard = [str(labeled / name) for name in ("masks.parquet", "features.npz", "kmeans.npz")]
    assert main(["paint", *shard, str(paint)]) == 0
    stats = json.loads((paint / "paint_stats.json").read_text())
    _card(paint / "paint_stats.json", {**stats, "k": None})
    assert main(["pl-dataset", str(images), str(tmp_path / "pl"), "--paint-dirs", str(paint)]) == 2
    assert "'k' must be an integer, got None" in _line(capsys, "pl-dataset")


def test_nan_features_are_refused_with_the_file_named(labeled, tmp_path, capsys):
    """Defect: NaN feature rows were all assigned cluster 0, silently."""
    shard = read_feature_shard(labeled / "features.npz")
    vectors = shard.vectors.astype(np.float32)
    vectors[1] = np.nan
    path = tmp_path / "features.npz"
    # Written as a file someone else made: write_feature_shard itself refuses NaN.
    np.savez(
        path,
        vectors=vectors.astype(np.float16),
        image_ids=shard.image_ids,
        mask_ids=shard.mask_ids,
        area_fraction=shard.area_fraction,
        encoder=np.asarray(shard.encoder),
        feature_dim=np.asarray(shard.feature_dim),
    )
    assert main(["cluster", str(path), "--out", str(tmp_path / "km.npz"), "--k", "3"]) == 2
    line = _line(capsys, "cluster")
    assert str(path) in line and "1 vector(s) hold NaN or infinity, the first in row 1" in line
    with pytest.raises(ValueError, match="NaN or infinity"):
        write_feature_shard(
            tmp_path / "w.npz", vectors, shard.image_ids, shard.mask_ids, shard.area_fraction, "x"
        )


def test_a_model_card_with_a_nan_threshold_is_refused(labeled, tmp_path, capsys):
    """Defect: `area_threshold: NaN` in a model card painted everything unlabeled, exit 0."""
    model = ClusterModel.load(labeled / "kmeans.npz")
    model.card["area_threshold"] = float("nan")
    model.save(tmp_path / "kmeans.npz")
    argv = [
        "paint",
        str(labeled / "masks.parquet"),
        str(labeled / "features.npz"),
        str(tmp_path / "kmeans.npz"),
    ]
    assert main([*argv, str(tmp_path / "painted")]) == 2
    assert "area_threshold nan is not a fraction in (0, 1]" in _line(capsys, "paint")
    assert not (tmp_path / "painted").exists()


def test_ctrl_c_is_one_line_and_stops_the_shell_loop_it_runs_in(images, labeled, tmp_path):
    """Defect: Ctrl-C printed a KeyboardInterrupt traceback; then its exit status was 130 or a SIGINT death
    by timing, and a shell loop over runs went on to the next run after an exit of 130."""
    many = tmp_path / "many"
    many.mkdir()
    # Enough images (~50 ms each) that the run is still going when the signal comes, even when this test
    # process is starved of CPU for a second or two; interrupted, the run stops after one or two.
    for i in range(60):
        (many / f"m{i:02d}.png").symlink_to(images / f"t{i % 3}.png")
    out = tmp_path / "out"
    subprocess.run(["cp", "-a", str(labeled), str(out)], check=True)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if ".alps-label.lock" not in p.name)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "OMP_NUM_THREADS": "1"}
    label = [sys.executable, "-m", "alps.cli", "label", str(many), str(out), *K3]
    # Ctrl-C at a terminal signals the foreground process group: the shell and the run in it. So the loop
    # gets a session of its own, and Ctrl-C's default action whatever this test inherited (a shell starts
    # background jobs, `make test &`, with SIGINT ignored, and a Python started so keeps ignoring it).
    shell = subprocess.Popen(
        ["bash", "-c", 'for run in 1 2; do "$@"; done; echo "went on"', "loop", *label],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 180
    while not (out / ".alps-label.build").exists():
        assert shell.poll() is None and time.monotonic() < deadline, shell.communicate()
        time.sleep(0.05)
    os.killpg(shell.pid, signal.SIGINT)
    stdout, err = shell.communicate(timeout=120)
    # An exit status of 130 would let the loop start its second run.
    assert "went on" not in stdout and shell.returncode == -signal.SIGINT, (shell.returncode, stdout, err)
    assert "labeled 60 images" not in err, "the run ended before the signal came (or ignored it)"
    lines = [line for line in err.splitlines() if line.startswith("alps label: interrupted")]
    assert len(lines) == 1 and "Traceback" not in err, err
    after = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if ".alps-label.lock" not in p.name)
    assert after == before  # the build was dropped, the previous outputs are whole


@pytest.mark.parametrize("name", ["..", "a/b", "", ".hidden", "x y"])
@pytest.mark.parametrize("where", ["datasets", "pseudo_labels", "pretrainings"])
def test_workflow_names_that_cannot_be_folders_fail_the_schema(name, where):
    """Defect: dataset and set names `..`, `a/b` or "" passed the schema and failed later, confusingly."""
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    if where == "datasets":
        config["datasets"][name] = copy.deepcopy(config["datasets"]["demo"])
    elif where == "pseudo_labels":
        config["pseudo_labels"][name] = {"dataset": "demo"}
    else:
        config["pretrainings"] = {name: {"pseudo_labels": "demo-pl"}}
    with pytest.raises(ConfigError, match="does not match|is too short|should be non-empty"):
        validate_config(config)


def test_a_link_in_a_dataset_is_not_copied_through(pl, tmp_path, capsys):
    """Defect: apply-class-map copied what a link in img_dir pointed to into the new dataset."""
    source = tmp_path / "pl"
    subprocess.run(["cp", "-a", str(pl), str(source)], check=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not for the dataset")
    image = next((source / "img_dir" / "train").iterdir())
    image.unlink()
    image.symlink_to(secret)
    (tmp_path / "map.yaml").write_text("0: a\n1: b\n2: c\n")
    argv = [
        "apply-class-map",
        str(source),
        str(tmp_path / "named"),
        "--class-map",
        str(tmp_path / "map.yaml"),
    ]
    assert main(argv) == 2
    assert f"{image} is a symbolic link" in _line(capsys, "apply-class-map")
    assert not (tmp_path / "named").exists()


def test_size_options_reach_every_command(images, labeled, tmp_path, capsys):
    shards = [str(labeled / name) for name in ("masks.parquet", "features.npz", "kmeans.npz")]
    assert main(["paint", *shards, str(tmp_path / "p"), "--max-pixels", "1000"]) == 2
    assert "image 't0': the mask image claims 128 x 96 = 12,288 pixels" in _line(capsys, "paint")
    assert (
        main(
            [
                "label",
                str(images),
                str(tmp_path / "o"),
                *K3,
                "--tile-size",
                "32",
                "--overlap",
                "0",
                "--max-tiles",
                "5",
            ]
        )
        == 2
    )
    assert "the scene makes 12 tiles, over the limit of 5 (--max-tiles" in _line(capsys, "label")
    gallery = ["gallery", str(images), str(tmp_path / "g"), "--mask-shards", shards[0], "--feature-shards"]
    assert main([*gallery, shards[1], "--model", shards[2], "--tile", "60000"]) == 2
    assert "16 <= tile <= 1024, got 12 and 60000" in _line(capsys, "gallery")


@pytest.mark.parametrize(
    ("card", "fragment"), [([1, 2], "this one is a list"), ({"num_classes": None}, "got None")]
)
def test_pretraining_on_a_broken_dataset_card_is_one_line(tmp_path, capsys, card, fragment):
    (tmp_path / "pl").mkdir()
    _card(tmp_path / "pl" / "dataset_card.json", card)
    assert main(["pretrain", str(tmp_path / "pl"), str(tmp_path / "work"), "--iters", "1"]) == 2
    assert fragment in _line(capsys, "pretrain")


@pytest.mark.parametrize("source", ["/abs/scene.tif", "a/../../x.tif"])
def test_a_manifest_source_never_names_a_file_outside_out(tmp_path, capsys, source):
    """Defect: `alps mosaic` with an absolute `source` in a manifest wrote at the filesystem root."""
    from alps.io.manifest import MANIFEST_COLUMNS

    dataset = tmp_path / "dataset"
    (dataset / "img").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(dataset / "img" / "t.png")
    row = {c: "" for c in MANIFEST_COLUMNS}
    row.update(image_id="t", split="train", image_path="img/t.png", height=8, width=8, source=source)
    row.update(window_x=0, window_y=0, window_w=8, window_h=8)
    manifest = dataset / "manifest.csv"
    manifest.write_text(
        ",".join(MANIFEST_COLUMNS) + "\n" + ",".join(str(row[c]) for c in MANIFEST_COLUMNS) + "\n"
    )
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(labels / "t.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    status = main(["mosaic", str(manifest), str(labels), str(tmp_path / "out")])
    if source.startswith("/"):
        assert status == 2
        assert "scene name (its 'source') '/__abs__scene'" in _line(capsys, "mosaic")
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    else:  # `..` only ever joins the parts of one name: "a__..__..__x", inside OUT
        assert status == 0
        assert [p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".png"] == ["a__..__..__x.png"]
