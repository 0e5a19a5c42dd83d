"""`snakemake --lint` prints no finding for the demo and the paper configurations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

BIN = Path(sys.executable).parent
CLEAN = "Congratulations, your workflow is in a good condition!"


def lint(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "snakemake"),
            "--lint",
            "--cores",
            "1",
            "--snakefile",
            str(REPO_ROOT / "workflow/Snakefile"),
            *args,
        ],
        cwd=cwd,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_lint_is_clean_for_the_demo():
    result = lint()
    assert result.returncode == 0 and CLEAN in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.slow
def test_lint_is_clean_for_the_paper_study(tmp_path):
    """On placeholder inputs for the paper's checkpoint and raw data (`alps placeholders`)."""
    config = REPO_ROOT / "config" / "paper.yaml"
    subprocess.run([str(BIN / "alps"), "placeholders", str(config), str(tmp_path)], check=True, timeout=300)
    result = lint("--directory", str(tmp_path), "--configfile", str(config))
    assert result.returncode == 0 and CLEAN in result.stdout + result.stderr, result.stdout + result.stderr


def test_catalog_files_exist():
    """The workflow catalog's layout: the environment every rule names, a license, the catalog file."""
    assert (REPO_ROOT / "envs" / "alps.yaml").is_file()
    assert "Apache License" in (REPO_ROOT / "LICENSE").read_text()
    assert "software-stack-deployment" in (REPO_ROOT / ".snakemake-workflow-catalog.yml").read_text()
