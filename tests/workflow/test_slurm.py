"""The labeling DAG as real Slurm batch jobs, on a one-node cluster on loopback (scripts/local-slurm.sh).

Run by `.ci/run` after the unit tests (`make test-slurm`). Skips where it cannot run as root or apt is
unavailable; always stops the daemons it started.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from workflow_runs import snakemake, write_config

from conftest import REPO_ROOT

pytestmark = pytest.mark.slurm

SCRIPT = REPO_ROOT / "scripts" / "local-slurm.sh"
# What a cluster without accounting needs (workflow/profiles/slurm/config.yaml), plus this node's partition.
SLURM_ARGS = (
    "--profile",
    "workflow/profiles/slurm",
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--default-resources",
    "slurm_partition=debug",
    "runtime=20",
    "mem_mb=1000",
)
LABELED_PARTS = ("datasets", "labeling", "pseudo_labels", "pl")


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("the local Slurm cluster needs root (it installs packages and starts daemons)")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("Slurm is not installed and apt-get is unavailable to install it")
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=600)
    try:
        if started.returncode != 0:
            pytest.skip(f"could not start the local Slurm cluster: {started.stderr.strip()[-500:]}")
        yield
    finally:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


def _config(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    # 37 training tiles in shards of 20: two mask, feature and paint jobs that run in parallel.
    return write_config(
        folder,
        **{
            "labeling.shard_size": 20,
            "pseudo_labels": {"demo-pl": {"dataset": "demo", "label": "Demo-PL"}},
            "tables": {},
        },
    )


def _target(config: Path) -> str:
    return str(config.parent / "results" / "pl" / "demo-pl" / "dataset_card.json")


def _digests(results: Path) -> dict[str, str]:
    return {
        str(path.relative_to(results)): hashlib.sha256(path.read_bytes()).hexdigest()
        for part in LABELED_PARTS
        for path in sorted((results / part).rglob("*"))
        if path.is_file()
    }


def test_labeling_dag_runs_as_slurm_jobs(cluster, tmp_path):
    on_slurm = _config(tmp_path, "slurm")
    result = snakemake(_target(on_slurm), *SLURM_ARGS, config=on_slurm)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    # (1) every job ran under a Slurm job id, written by `alps` into the rule's log
    log_root = on_slurm.parent / "results" / "logs"
    logs = sorted(log_root.rglob("*.log"))
    # Rules log into a folder named after the rule; prepare into prepare_<dataset>.log.
    ran = {log.parent.name if log.parent != log_root else log.stem.rsplit("_", 1)[0] for log in logs}
    assert ran == {"prepare", "masks", "features", "cluster", "paint", "pl_dataset"}
    job_ids = set()
    for log in logs:
        found = re.findall(r"running as Slurm job (\d+)", log.read_text())
        assert found, f"{log} was not written inside a Slurm job"
        job_ids.add(found[0])
    assert len(job_ids) == len(logs) == 9  # prepare, 2 masks, 2 features, cluster, 2 paint, pl_dataset

    # (2) byte-identical to a local run of the same targets
    local = _config(tmp_path, "local")
    result = snakemake(_target(local), config=local)
    assert result.returncode == 0, result.stderr[-3000:]
    slurm_files = _digests(on_slurm.parent / "results")
    assert slurm_files == _digests(local.parent / "results")
    assert any(name.startswith("pl/demo-pl/ann_dir/") for name in slurm_files)


def test_a_failing_job_fails_the_workflow(cluster, tmp_path):
    config = _config(tmp_path, "failing")
    results = config.parent / "results"
    prepared = snakemake(str(results / "datasets" / "demo" / "manifest.csv"), config=config)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    # Inject a failure: the last training tile (shard 1) becomes an undecodable file.
    tiles = sorted((results / "datasets" / "demo" / "img_dir" / "train").glob("*.png"))
    tiles[-1].write_bytes(b"not a png")
    result = snakemake(_target(config), *SLURM_ARGS, config=config)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule masks" in output
    assert not (results / "pl" / "demo-pl" / "dataset_card.json").exists()
    assert "cannot decode image" in (results / "logs" / "masks" / "demo_train_shard_0001.log").read_text()
