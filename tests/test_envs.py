"""The conda environment for cluster users must pin exactly what pyproject.toml pins."""

from __future__ import annotations

import tomllib

import yaml

from conftest import REPO_ROOT


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return dict(dep.split("==") for dep in project["dependencies"])


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    loose = [dep for dep in project["dependencies"] if "==" not in dep]
    assert not loose, f"unpinned dependencies in pyproject.toml: {loose}"


def test_conda_env_matches_pyproject_pins():
    env = yaml.safe_load((REPO_ROOT / "envs" / "alps.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = dict(dep.split("==") for dep in pip_section if "==" in dep)
    assert conda_pins == _pyproject_pins()
    assert "python=3.11" in env["dependencies"]
