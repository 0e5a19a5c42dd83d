"""Reruns that see every change, and values that reach the shell quoted (issue #14), on a tiny folder dataset.

Each test runs the real Snakemake workflow (real rules, real `alps` commands) on a few 64 px images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import REPO_ROOT
from test_workflow import job_counts, snakemake


def write_images(folder: Path, names: list[str], seed: int = 0) -> None:
    """Smooth synthetic scenes (a few coloured blocks) that felzenszwalb cuts into a handful of masks."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        image = np.zeros((64, 64, 3), np.uint8)
        for _ in range(4):
            y, x = rng.integers(0, 48, 2)
            image[y : y + 24, x : x + 24] = rng.integers(0, 255, 3)
        Image.fromarray(image).save(folder / f"{name}.png")


def tiny_config(tmp_path: Path, raw_dir: Path, **labeling: object) -> Path:
    """One folder dataset, one pseudo-label set, no training: the labeling half of the DAG."""
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    config["datasets"] = {
        "tiny": {"converter": "folder", "raw_dir": str(raw_dir), "options": {"tile_size": 64, "overlap": 0}}
    }
    config["labeling"].update({"shard_size": 2, **labeling})
    config["labeling"]["cluster"].update({"k": 2, "init_sample": 200})
    config["pseudo_labels"] = {"tiny-pl": {"dataset": "tiny"}}
    for key in ("training", "tables"):
        config.pop(key, None)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def pl_images(tmp_path: Path, split: str = "train") -> list[str]:
    return sorted(p.stem for p in (tmp_path / "results/pl/tiny-pl/img_dir" / split).glob("*.png"))


def test_quoted_raw_dir_with_a_space_works_and_a_crafted_one_runs_nothing(tmp_path):
    spaced = tmp_path / "raw dir"
    crafted = tmp_path / "x; touch INJECTED;"
    write_images(spaced, ["a"])
    write_images(crafted, ["b"])
    config = yaml.safe_load(tiny_config(tmp_path, spaced).read_text())
    config["datasets"]["crafted"] = {"converter": "folder", "raw_dir": str(crafted), "options": {}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    targets = [str(tmp_path / f"results/datasets/{name}/manifest.csv") for name in ("tiny", "crafted")]
    result = snakemake(*targets, config=config_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name, image in (("tiny", "a"), ("crafted", "b")):
        manifest = (tmp_path / f"results/datasets/{name}/manifest.csv").read_text()
        assert f"{image}," in manifest, name
    # Unquoted, the crafted raw_dir ran `touch INJECTED` in the working directory (the repository root).
    assert not (REPO_ROOT / "INJECTED").exists()
    assert not list(tmp_path.rglob("INJECTED"))


@pytest.mark.slow
def test_shard_size_change_and_added_raw_images_end_in_a_complete_pl_dataset(tmp_path):
    raw = tmp_path / "raw"
    write_images(raw, ["a", "b", "c", "d"])
    target = str(tmp_path / "results/pl/tiny-pl/dataset_card.json")
    first = snakemake(target, config=tiny_config(tmp_path, raw, shard_size=2))
    assert first.returncode == 0, first.stderr[-3000:]
    assert pl_images(tmp_path) == ["a", "b", "c", "d"]

    # shard_size 2 -> 4: shard 0 must be made again (it held 2 images), not kept.
    changed = tiny_config(tmp_path, raw, shard_size=4)
    second = snakemake(target, config=changed)
    assert second.returncode == 0, second.stderr[-3000:]
    assert pl_images(tmp_path) == ["a", "b", "c", "d"]
    card = json.loads((tmp_path / "results/pl/tiny-pl/dataset_card.json").read_text())
    assert card["images"] == 4

    # An image added to raw_dir reruns `prepare` and everything after it.
    write_images(raw, ["e"], seed=1)
    plan = snakemake(target, "-n", config=changed)
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    assert job_counts(plan.stdout)["prepare_dataset"] == 1
    third = snakemake(target, config=changed)
    assert third.returncode == 0, third.stderr[-3000:]
    assert pl_images(tmp_path) == ["a", "b", "c", "d", "e"]
    done = snakemake(target, "-n", config=changed)
    assert "Nothing to be done" in done.stdout + done.stderr


def test_bands_reach_every_job_that_reads_images(tmp_path):
    """labeling.bands goes to masks, features and pl-dataset (a dry run of the whole labeling half)."""
    raw = tmp_path / "raw"
    write_images(raw, ["a", "b", "c"])
    config = tiny_config(tmp_path, raw, bands=[3, 2, 1])
    prepared = snakemake(str(tmp_path / "results/datasets/tiny/manifest.csv"), config=config)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    plan = snakemake(str(tmp_path / "results/pl/tiny-pl/dataset_card.json"), "-n", "-p", config=config)
    assert plan.returncode == 0, plan.stderr[-3000:]
    commands = [line for line in plan.stdout.splitlines() if line.startswith("Shell command: alps ")]
    by_command = {}
    for line in commands:
        by_command.setdefault(line.split()[3], []).append(line)
    assert set(by_command) >= {"masks", "features", "pl-dataset"}
    for command in ("masks", "features", "pl-dataset"):
        assert all("--bands 3,2,1" in line for line in by_command[command]), command


@pytest.mark.slow
def test_label_val_paints_val_with_the_train_model(tmp_path):
    """label_val: one k-means model (fitted on train features) paints train and val."""
    config = yaml.safe_load(tiny_config(tmp_path, tmp_path, label_val=True).read_text())
    # The demo converter at 512 px tiles: a few train and val tiles of the real Sentinel-2 scene.
    config["datasets"] = {"tiny": {"converter": "demo", "options": {"tile_size": 512, "block_size": 1}}}
    config["labeling"]["shard_size"] = 4
    # Fewer, coarser masks and a smaller encoder input: the test is about splits, not label quality.
    config["labeling"]["masks"]["felzenszwalb"]["min_size"] = 400
    config["labeling"]["encoder"]["max_side"] = 128
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = snakemake(str(tmp_path / "results/pl/tiny-pl/dataset_card.json"), config=config_path)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = pd.read_csv(tmp_path / "results/datasets/tiny/manifest.csv")
    for split in ("train", "val"):
        expected = sorted(manifest.loc[manifest["split"] == split, "image_id"])
        assert expected and pl_images(tmp_path, split) == expected, split
        labels = tmp_path / "results/pl/tiny-pl/ann_dir" / split
        assert sorted(p.stem for p in labels.glob("*.png")) == expected, split
    card = json.loads((tmp_path / "results/pl/tiny-pl/dataset_card.json").read_text())
    assert card["split"] == "train" and card["images_per_split"] == {
        split: int((manifest["split"] == split).sum()) for split in ("train", "val")
    }
    # One model: the cluster job read the train features only (Snakemake prints each shell command).
    output = (result.stdout + result.stderr).splitlines()
    (cluster,) = [line for line in output if "alps cluster " in line]
    assert "/features/train/shard_" in cluster and "/features/val/" not in cluster
    stats = [
        json.loads(p.read_text())
        for p in (tmp_path / "results/pseudo_labels/tiny-pl/paint").glob("*/shard_*/paint_stats.json")
    ]
    assert {s["k"] for s in stats} == {2}
