"""`dvc repro` on a fresh copy of the repository: runs the pipeline, then has nothing to do; metrics show.

The copy is the working tree as git sees it (tracked and untracked-but-not-ignored files), committed into a
new repository, with the demo's training shortened to 4 iterations and its tables cut to Table 3b (two
pre-trainings and two fine-tunings; every pseudo-label set is still labeled and scored, as dvc.yaml's
metrics name them), so that the test takes minutes: what is under test is DVC around the workflow, which
tests/workflow/test_dag.py runs at more length.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT

BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path, timeout: int = 1500) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def fresh_copy(target: Path) -> Path:
    listed = run("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=REPO_ROOT)
    assert listed.returncode == 0, listed.stderr
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    config_path = target / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["training"]["schedules"] = {"demo": 4}
    config["training"]["log_interval"] = 2
    config["tables"] = {"3b": config["tables"]["3b"]}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    for command in (
        ("git", "init", "-q"),
        ("git", "add", "-A"),
        ("git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "copy"),
    ):
        result = run(*command, cwd=target)
        assert result.returncode == 0, result.stderr
    return target


@pytest.mark.slow
def test_dvc_repro_runs_then_does_nothing_and_shows_metrics(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = fresh_copy(tmp_path / "repo")

    first = run("dvc", "repro", cwd=repo)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = repo / "results" / "demo"
    assert (results / "tables" / "table3b.md").is_file()
    assert (results / "pl" / "demo-binary" / "dataset_card.json").is_file()
    assert (repo / "dvc.lock").is_file()

    second = run("dvc", "repro", cwd=repo)
    assert second.returncode == 0, second.stderr[-3000:]
    output = second.stdout + second.stderr
    assert "up to date" in output and "Running stage" not in output

    metrics = run("dvc", "metrics", "show", cwd=repo)
    assert metrics.returncode == 0, metrics.stderr
    for expected in ("label_quality/demo-pl.json", "metrics/tables.json", "hungarian", "mIoU"):
        assert expected in metrics.stdout, expected


# --------------------------------------------------------------------------------------------------------
# The paper's study as DVC stages (dvc.yaml's paper_* stages), checked on the placeholder plan
# --------------------------------------------------------------------------------------------------------

PAPER_CONFIG = "config/paper.yaml"
STUDY_DVC = "study/dvc.yaml"
PAPER_STAGES = ("paper_pseudo_labels", "paper_pretrain", "paper_finetune")


def _stage(name: str) -> str:
    """A study stage's address: its dvc.yaml lies in study/ (a plain `dvc repro` runs only the demo)."""
    return f"{STUDY_DVC}:{name}"


def _paper() -> tuple[dict, object]:
    from alps.study import plan_study

    config = yaml.safe_load((REPO_ROOT / PAPER_CONFIG).read_text())
    config["tables"] = {str(k): v for k, v in config["tables"].items()}
    return config, plan_study(config)


def _dig(mapping: dict, dotted: str) -> object:
    for part in dotted.split("."):
        assert isinstance(mapping, dict) and part in mapping, f"{dotted} is not a key of {PAPER_CONFIG}"
        mapping = mapping[part]
    return mapping


def _dvc_json(*args: str, cwd: Path) -> object:
    import json

    result = run("dvc", *args, "--json", cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def placeholder_repo(tmp_path_factory) -> Path:
    """A fresh copy of the repository with `alps placeholders` written for config/paper.yaml (no run)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = fresh_copy(tmp_path_factory.mktemp("paper") / "repo")
    made = run("alps", "placeholders", PAPER_CONFIG, ".", cwd=repo, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    return repo


def test_paper_stages_follow_the_study_dag(placeholder_repo):
    config, study = _paper()
    dag = run("dvc", "dag", "--dot", _stage("paper_finetune"), cwd=placeholder_repo, timeout=300)
    assert dag.returncode == 0, dag.stderr[-3000:]
    pairs = set(re.findall(r'^"([^"]+)" -> "([^"]+)";$', dag.stdout, flags=re.MULTILINE))
    labeled = {s.dataset for s in study.pseudo_labels.values()}
    finetuned = {run.dataset for run in study.finetune_runs}
    for name in config["datasets"]:
        if name in labeled:
            assert (_stage(f"paper_dataset@{name}"), _stage("paper_pseudo_labels")) in pairs, name
        if name in finetuned:
            assert (_stage(f"paper_dataset@{name}"), _stage("paper_finetune")) in pairs, name
    assert (_stage("paper_pseudo_labels"), _stage("paper_pretrain")) in pairs
    assert (_stage("paper_pretrain"), _stage("paper_finetune")) in pairs
    # The root dvc.yaml, which a plain `dvc repro` runs, is the demo's alone.
    root = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert root.keys() == {"demo_dataset", "demo_pipeline"}


def test_paper_stages_outputs_metrics_and_params_match_the_config(placeholder_repo):
    config, study = _paper()
    dvc_yaml = yaml.safe_load((REPO_ROOT / STUDY_DVC).read_text())["stages"]
    results = config["results_dir"]
    # Every configured dataset has its stage, its raw folder as dependency and its prepared folder as output.
    for name, dataset in config["datasets"].items():
        stage = _stage(f"paper_dataset@{name}")
        changed = _dvc_json("status", stage, cwd=placeholder_repo)[stage]
        deps = {path for entry in changed if "changed deps" in entry for path in entry["changed deps"]}
        outs = {path for entry in changed if "changed outs" in entry for path in entry["changed outs"]}
        assert dataset["raw_dir"] in deps and f"{results}/datasets/{name}" in outs
    # Metrics: the label quality of every evaluated set and every table's numbers.
    status = _dvc_json("status", *map(_stage, PAPER_STAGES), cwd=placeholder_repo)
    outs = {
        path
        for stage in PAPER_STAGES
        for entry in status[_stage(stage)]
        if "changed outs" in entry
        for path in entry["changed outs"]
    }
    evaluated = [name for name, s in study.pseudo_labels.items() if s.evaluate]
    assert evaluated and {f"{results}/metrics/label_quality/{n}.json" for n in evaluated} <= outs
    assert f"{results}/metrics/tables.json" in outs
    # Outputs: datasets, pseudo-label sets, checkpoints (pre-trainings) and fine-tunings with the tables.
    for folder in ("pl", "labeling", "pseudo_labels", "train/pretrain", "train/finetune", "tables"):
        assert f"{results}/{folder}" in outs, folder
    # Each stage's params are keys of config/paper.yaml (the datasets' templated per dataset).
    for stage in ("paper_pseudo_labels", "paper_pretrain", "paper_finetune"):
        for entry in dvc_yaml[stage]["params"]:
            for key in entry[PAPER_CONFIG]:
                _dig(config, key)


@pytest.mark.slow
def test_paper_stage_commands_plan_their_part_of_the_study(placeholder_repo):
    """The commands `dvc repro` would run, dry-run by Snakemake on the placeholders: each plans its part."""
    from dvc.repo import Repo

    _, study = _paper()
    with Repo(str(placeholder_repo)) as repo:
        commands = {stage.name: stage.cmd for stage in repo.index.stages}
        # The study's stages run in the repository root, where their paths and Snakemake's lie.
        assert {Path(s.wdir) for s in repo.index.stages if s.name.startswith("paper_")} == {placeholder_repo}
    assert {"paper_pseudo_labels", "paper_pretrain", "paper_finetune", "paper_dataset@isaid"} <= set(commands)

    def planned(command: str) -> dict[str, int]:
        result = run(*command.split(), "-n", "--quiet", "rules", cwd=placeholder_repo, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        counts: dict[str, int] = {}
        table = result.stdout.split("Job stats:", 1)[1].split("total", 1)[0]
        for line in table.splitlines()[3:]:
            if line.split():
                counts[line.split()[0]] = int(line.split()[1])
        return counts

    labeling = planned(commands["paper_pseudo_labels"])
    assert labeling["pl_dataset"] == len(study.pseudo_labels)
    assert "pretrain" not in labeling and "finetune" not in labeling
    pretraining = planned(commands["paper_pretrain"])
    assert pretraining["pretrain"] == len(study.pretrain_runs)
    assert "finetune" not in pretraining
