"""The Snakemake workflow on the demo configuration: config validation, a full run, resumption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT

BIN = Path(sys.executable).parent


def snakemake(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        # Targets go before --configfile, which would take them for more config files.
        [str(BIN / "snakemake"), *args, "--cores", "2", "--configfile", str(config)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def write_config(tmp_path: Path, **changes: object) -> Path:
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labeling.cluster.k": 1}, "1 is less than the minimum of 2"),
        ({"labeling.bogus": 3}, "'bogus' was unexpected"),
        (
            {"labeling.masks": {"backend": "sam", "sam": {"checkpoint": "nope/sam_vit_h.pth"}}},
            "labeling.masks.sam.checkpoint: nope/sam_vit_h.pth does not exist",
        ),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, change, message):
    result = snakemake("-n", config=write_config(tmp_path, **change))
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_demo_dag_runs_resumes_and_reruns_only_what_changed(tmp_path):
    # Snakemake merges --configfile into config/config.yaml, so training stays: keep it tiny.
    config = write_config(
        tmp_path, **{"training.pretrain_iters": 4, "training.finetune_iters": 4, "training.log_interval": 2}
    )
    first = snakemake(config=config)
    assert first.returncode == 0, first.stderr[-3000:]
    results = tmp_path / "results"
    for path in (
        "pl/demo-pl/dataset_card.json",
        "pl/demo-binary/dataset_card.json",
        "metrics/label_quality.json",
        "labeling/demo/cluster/kmeans.joblib",
        "logs/cluster_demo.log",
        "figures/demo-pl/s2_r00_c00.png",
    ):
        assert (results / path).is_file(), path
    assert len(list((results / "pl/demo-pl/ann_dir/train").glob("*.png"))) == 37

    check_training_outputs(tmp_path)

    dry = snakemake("-n", config=config)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr

    # Losing one feature shard reruns that shard's features and everything downstream, not the masks.
    (results / "labeling/demo/features/shard_0001.npz").unlink()
    plan = snakemake("-n", config=config)
    assert plan.returncode == 0
    assert job_counts(plan.stdout + plan.stderr) == {
        "features": 1,
        "cluster": 1,
        "paint": 2,
        "pl_dataset": 1,
        "pl_dataset_binary": 1,
        "label_quality": 1,
        "figures": 1,
        "pretrain": 1,
        "finetune": 3,  # init "none" does not depend on the pseudo-labels
        "all": 1,
        "total": 13,
    }


def job_counts(output: str) -> dict[str, int]:
    """The job table of a Snakemake dry run (the first one; Snakemake prints it twice)."""
    lines = output[output.index("Job stats:") :].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2:
            break
        counts[parts[0]] = int(parts[1])
    return counts


def check_training_outputs(tmp_path):
    train = tmp_path / "results" / "train"
    pretrain = json.loads((train / "pretrain" / "segformer-b0-demo-pl" / "metrics.json").read_text())
    assert pretrain["role"] == "pretrain" and pretrain["iter"] == 4
    for init in ("none", "overall", "backbone", "head"):
        metrics = json.loads(
            (train / "finetune" / "demo" / f"segformer-b0-demo-pl-{init}" / "metrics.json").read_text()
        )
        assert metrics["init"] == init and metrics["evaluated"] and metrics["split"] == "val"
        assert set(metrics["per_class"]["IoU"]) == {"other", "vegetation", "water"}
        assert 0 <= metrics["metrics"]["mIoU"] <= 100
