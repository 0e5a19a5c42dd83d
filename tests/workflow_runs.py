"""Snakemake as the tests run it: on a configuration written from the demo's, from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
