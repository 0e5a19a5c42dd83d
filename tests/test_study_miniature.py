"""The study's executed miniature (.test/config.yaml, `make test-study`): its shape and its plan.

`make test-study` runs the miniature to the end (minutes); these tests check, faster, that it stays the
miniature of config/paper.yaml (same datasets, pseudo-label sets, pre-trainings and tables) and that its
inputs, built from ../shared/data, make Snakemake plan every rule and every table of the study.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from alps.study import SCRATCH, plan_study

from conftest import REPO_ROOT, shared_data
from test_workflow import job_counts

BIN = Path(sys.executable).parent
MINIATURE = REPO_ROOT / ".test" / "config.yaml"


def load(path: Path) -> dict:
    config = yaml.safe_load(path.read_text())
    config["tables"] = {str(k): v for k, v in config["tables"].items()}
    return config


def run(*args: str, cwd: Path = REPO_ROOT, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_miniature_has_the_papers_shape():
    paper, mini = load(REPO_ROOT / "config" / "paper.yaml"), load(MINIATURE)
    assert mini["datasets"].keys() == paper["datasets"].keys()
    for name, dataset in paper["datasets"].items():
        assert mini["datasets"][name]["converter"] == dataset["converter"]  # the real converters
    assert mini["pseudo_labels"].keys() == paper["pseudo_labels"].keys()
    for name, pl_set in paper["pseudo_labels"].items():
        for key in ("dataset", "variant", "of", "area_threshold", "label"):
            assert mini["pseudo_labels"][name].get(key) == pl_set.get(key), (name, key)
        assert mini["pseudo_labels"][name].get("boxes", {}).get("classes") == pl_set.get("boxes", {}).get(
            "classes"
        )
    assert mini["pretrainings"] == paper["pretrainings"]
    assert mini["labeling"]["masks"]["backend"] == paper["labeling"]["masks"]["backend"] == "sam"
    assert mini["labeling"]["encoder"]["name"] == paper["labeling"]["encoder"]["name"]
    # Tables 1-6 with the same datasets, pre-trainings, inits, baselines and schedules; fewer methods.
    assert mini["tables"].keys() == paper["tables"].keys()
    for table, spec in paper["tables"].items():
        small = mini["tables"][table]
        for key in ("finetune_datasets", "pretrained", "inits", "baseline", "schedules"):
            assert small.get(key) == spec.get(key), (table, key)
        assert set(small["models"]) <= set(spec["models"]) and small["models"]
    # One CNN and one transformer of the paper's eight, with their own schedules, and the medical UNet.
    models = mini["training"]["models"]
    assert models.keys() == {"upernet-r50", "segformer-b5", "unet-s5-d16"}
    assert all(paper["training"]["models"][m] == schedule for m, schedule in models.items())
    assert mini["training"]["schedules"].keys() == paper["training"]["schedules"].keys()
    # Seeds: the paper's three; the miniature one, and two for Table 1 (docs/study.md).
    assert paper["training"]["seeds"] == [0, 1, 2] and "seeds" not in mini["training"]
    assert [t for t, spec in mini["tables"].items() if "seeds" in spec] == ["1"]


def test_the_miniature_plans_every_init_variant_and_table():
    study = plan_study(load(MINIATURE))
    assert {s.variant for s in study.pseudo_labels.values()} == {"alps", "binary", "boxes"}
    assert {run.init for run in study.finetune_runs} == {"none", "overall", "backbone", "head"}
    assert {run.pretraining for run in study.finetune_runs} >= {*study.pretrainings, SCRATCH}
    assert {run.schedule for run in study.pretrain_runs} >= {"80k", "160k", "40k", "320k"}
    assert {row.table for row in study.rows if row.runs} == {"1", "2", "3a", "3b", "4", "5", "6"}
    # Table 1 runs two seeds, so CI aggregates seeds and gives verdicts; the rest one (the paper: three).
    assert {row.seeds for row in study.rows if row.runs and row.table == "1"} == {(0, 1)}
    assert {row.seeds for row in study.rows if row.runs and row.table != "1"} == {(0,)}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The miniature's inputs built from ../shared/data, and its datasets prepared by the real converters."""
    samples = shared_data()
    work = tmp_path_factory.mktemp("study") / "work"
    built = run(sys.executable, "scripts/test-study-inputs.py", str(work), "--samples", str(samples))
    assert built.returncode == 0, built.stderr[-3000:]
    return work


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(
        str(BIN / "snakemake"),
        *args,
        "--cores",
        "2",
        "--snakefile",
        "workflow/Snakefile",
        "--directory",
        str(work),
        "--configfile",
        str(MINIATURE),
    )


def test_the_inputs_are_the_download_layouts(work):
    config = load(MINIATURE)
    for dataset in config["datasets"].values():
        assert any((work / dataset["raw_dir"]).iterdir())
    assert (work / config["labeling"]["masks"]["sam"]["checkpoint"]).is_file()
    boxes = work / config["pseudo_labels"]["samrs-star"]["boxes"]["dir"]
    texts = {p.stem: p.read_text() for p in boxes.glob("*.txt")}
    assert "small-vehicle" in texts["sota_P1888"]  # DOTA's own labels of P1888
    assert texts["sior_nwpu_060"].count(" plane 0") == 2  # NWPU's two airplanes, by their DOTA name
    # Every SAMRS image has its label, as SAMRS's images do.
    samrs = work / config["datasets"]["samrs"]["raw_dir"]
    sota = sorted(p.stem for p in (samrs / "SOTA/images").iterdir())
    assert (
        sota
        == sorted(p.stem for p in (samrs / "SOTA/labels").iterdir())
        == ["P0003", "P0004", "P0005", "P1888"]
    )
    # Built once: a second call leaves the complete set as it is.
    again = run(sys.executable, "scripts/test-study-inputs.py", str(work))
    assert again.returncode == 0 and "already built" in again.stdout


@pytest.mark.slow
def test_the_miniature_dag_plans_every_rule_and_table(work):
    config = load(MINIATURE)
    manifests = [f"{config['results_dir']}/datasets/{name}/manifest.csv" for name in config["datasets"]]
    prepared = snakemake(work, *manifests)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    dry = snakemake(work, "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = job_counts(dry.stdout)
    os.chdir(work)  # plan_study's paths are relative to the working directory, like the workflow's
    try:
        study = plan_study(config)
    finally:
        os.chdir(REPO_ROOT)
    labeled = len(study.pseudo_labels)
    for rule in ("masks_and_features", "cluster", "paint", "box_labels", "label_quality"):
        assert counts.get(rule, 0) > 0, rule
    assert counts["pl_dataset"] == counts["figures"] == labeled
    assert counts["pretrain"] == len(study.pretrain_runs)
    assert counts["finetune"] == len(study.finetune_runs)
    assert counts["tables"] == 1


def test_the_table_check_names_every_missing_table(tmp_path):
    result = run(sys.executable, "scripts/check-study-tables.py", str(MINIATURE), str(tmp_path))
    assert result.returncode == 1
    for table in load(MINIATURE)["tables"]:
        assert f"MISSING table {table}: results/tables/table{table}.csv was not written" in result.stderr


def test_the_table_check_wants_every_seed_and_a_verdict(tmp_path, monkeypatch):
    """SYNTHETIC metrics for every fine-tuning the miniature plans but seed 1 of one Table 1 row: its tables
    are written by the tables rule's function, and the check names that row's n (1, not the 2 planned)."""
    import json

    from alps.datasets import isaid, potsdam
    from alps.study import iter_table_rows
    from alps.tables import write_study_tables

    classes = {"isaid": isaid.CLASSES, "potsdam": potsdam.CLASSES, "medical": ("liver", "tumour")}

    config = load(MINIATURE)
    validate(config, str(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    study = plan_study(config)
    skipped = None
    for row, paths in iter_table_rows(study):
        for seed, path in paths.items():
            if row.table == "1" and seed == 1 and row.keys["type"] == "Head" and skipped is None:
                skipped = path
            if path == skipped or (tmp_path / path).exists():
                continue
            kind = row.dataset_kind
            values = dict.fromkeys(classes[kind], 50.0 + seed)
            record = {
                "synthetic": True,
                "role": "finetune",
                "dataset": {"kind": kind},
                "evaluated": True,
                "seed": seed,
                "metrics": {"mIoU": 40.0 + seed, "mAcc": 50.0},
                "per_class": {"IoU": values, "Dice": values},
            }
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(json.dumps(record))
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)  # the configuration's paths are relative to its working directory
        write_study_tables(config, study.tables_dir(), study.tables_metrics())
    result = run(sys.executable, "scripts/check-study-tables.py", str(MINIATURE), str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{skipped}: mIoU, mAcc over n = 1, 1 seeds, not the 2 planned" in result.stderr
    assert result.stderr.count("MISSING") == 1
    assert "table 1: 13 of 14 planned rows run with seeds 0, 1" in result.stdout
    assert "verdicts: " in result.stdout and "baseline" in result.stdout
