"""`dvc repro` on a fresh copy of the repository: runs the pipeline, then has nothing to do; metrics show.

The copy is the working tree as git sees it (tracked and untracked-but-not-ignored files), committed into a
new repository, with the demo's training shortened to 4 iterations so that the test takes minutes.
"""

from __future__ import annotations

import os
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
