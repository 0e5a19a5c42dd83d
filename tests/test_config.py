"""The workflow configuration: schema (via Snakemake's validate) and the checks beyond it."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from alps.config import ConfigError, check_config, config_problems

from conftest import REPO_ROOT

SCHEMA = str(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture
def demo_config() -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())


def test_demo_config_is_valid(demo_config):
    validate(copy.deepcopy(demo_config), SCHEMA)
    check_config(demo_config, REPO_ROOT)


def test_unknown_key_is_named(demo_config):
    demo_config["labeling"]["clusterr"] = {}
    with pytest.raises(WorkflowError, match="clusterr"):
        validate(demo_config, SCHEMA)


def test_k_below_two_is_rejected(demo_config):
    demo_config["labeling"]["cluster"]["k"] = 1
    with pytest.raises(WorkflowError, match="1 is less than the minimum of 2"):
        validate(demo_config, SCHEMA)


def test_sam_backend_requires_checkpoint(demo_config, tmp_path):
    demo_config["labeling"]["masks"] = {"backend": "sam"}
    with pytest.raises(WorkflowError, match="'sam' is a required property"):
        validate(copy.deepcopy(demo_config), SCHEMA)
    demo_config["labeling"]["masks"]["sam"] = {"checkpoint": "weights/sam_vit_h.pth"}
    validate(copy.deepcopy(demo_config), SCHEMA)
    message = r"labeling.masks.sam.checkpoint: weights/sam_vit_h.pth does not exist"
    with pytest.raises(ConfigError, match=message):
        check_config(demo_config, tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "sam_vit_h.pth").write_bytes(b"x")
    assert config_problems(demo_config, tmp_path) == []


def test_sam_encoder_needs_sam_masks(demo_config):
    demo_config["labeling"]["encoder"]["name"] = "sam"
    with pytest.raises(ConfigError, match="labeling.encoder.name: the sam encoder reuses"):
        check_config(demo_config, REPO_ROOT)


def test_labeling_dataset_must_be_configured(demo_config):
    demo_config["labeling"]["dataset"] = "isaid"
    with pytest.raises(ConfigError, match=r"labeling.dataset: 'isaid' is not one of the configured datasets"):
        check_config(demo_config, REPO_ROOT)


def test_raw_dir_and_converter_options_are_checked(demo_config, tmp_path):
    demo_config["datasets"]["isaid"] = {"converter": "isaid", "raw_dir": "raw/isaid", "options": {"patch": 1}}
    validate(copy.deepcopy(demo_config), SCHEMA)
    problems = config_problems(demo_config, tmp_path)
    assert any(p.startswith("datasets.isaid.raw_dir: raw folder raw/isaid does not exist") for p in problems)
    assert any(p.startswith("datasets.isaid.options: ['patch'] not accepted") for p in problems)
    del demo_config["datasets"]["isaid"]["raw_dir"]
    with pytest.raises(WorkflowError, match="'raw_dir' is a required property"):
        validate(demo_config, SCHEMA)
