"""The workflow configuration: schema (alps.config, defaults filled) and the checks beyond it."""

from __future__ import annotations

import copy

import pytest
import yaml

from alps.config import SCHEMA_PATH, ConfigError, check_config, config_problems, validate_config

from conftest import REPO_ROOT


@pytest.fixture
def demo_config() -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())


def test_demo_config_is_valid(demo_config):
    validate_config(copy.deepcopy(demo_config))
    check_config(demo_config, REPO_ROOT)


def test_unknown_key_is_named(demo_config):
    demo_config["labeling"]["clusterr"] = {}
    with pytest.raises(ConfigError, match="clusterr"):
        validate_config(demo_config)


def test_k_below_two_is_rejected(demo_config):
    demo_config["labeling"]["cluster"]["k"] = 1
    with pytest.raises(ConfigError, match="1 is less than the minimum of 2"):
        validate_config(demo_config)


def test_sam_backend_requires_checkpoint(demo_config, tmp_path):
    demo_config["labeling"]["masks"] = {"backend": "sam"}
    with pytest.raises(ConfigError, match="'sam' is a required property"):
        validate_config(copy.deepcopy(demo_config))
    demo_config["labeling"]["masks"]["sam"] = {"checkpoint": "weights/sam_vit_h.pth"}
    validate_config(demo_config)  # fills the schema's defaults, as the workflow does before check_config
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


def test_pseudo_label_dataset_must_be_configured(demo_config):
    demo_config["pseudo_labels"]["demo-pl"]["dataset"] = "isaid"
    with pytest.raises(
        ConfigError, match=r"pseudo_labels.demo-pl.dataset: 'isaid' is not one of the configured datasets"
    ):
        check_config(demo_config, REPO_ROOT)


def test_unknown_training_model_is_named(demo_config):
    demo_config["training"]["models"] = {"upernet-r51": "demo"}
    with pytest.raises(ConfigError, match=r"training.models: unknown model 'upernet-r51'"):
        check_config(demo_config, REPO_ROOT)


def test_box_sets_need_sam_and_their_box_folder(demo_config, tmp_path):
    demo_config["pseudo_labels"]["demo-star"] = {
        "dataset": "demo",
        "variant": "boxes",
        "boxes": {"dir": "boxes/demo", "classes": ["ship", "plane"]},
    }
    validate_config(copy.deepcopy(demo_config))
    problems = config_problems(demo_config, tmp_path)
    assert "pseudo_labels.demo-star.boxes.dir: box folder boxes/demo does not exist" in problems
    assert any(p.startswith("pseudo_labels.demo-star: box-prompted labels need SAM") for p in problems)
    del demo_config["pseudo_labels"]["demo-star"]["boxes"]
    with pytest.raises(ConfigError, match="'boxes' is a required property"):
        validate_config(demo_config)


def test_table_keys_are_the_papers(demo_config):
    demo_config["tables"]["7"] = {"finetune_datasets": ["demo"]}
    with pytest.raises(ConfigError, match="'7' is not one of"):
        validate_config(demo_config)


def test_paper_config_is_valid_given_its_inputs(tmp_path):
    from alps.placeholders import write_placeholders

    paper = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())
    validate_config(copy.deepcopy(paper))
    problems = config_problems(paper, tmp_path)
    assert any("datasets.isaid.raw_dir: raw folder data/raw/isaid does not exist" in p for p in problems)
    write_placeholders(paper, tmp_path)
    assert config_problems(paper, tmp_path) == []


def test_raw_dir_and_converter_options_are_checked(demo_config, tmp_path):
    demo_config["datasets"]["isaid"] = {"converter": "isaid", "raw_dir": "raw/isaid", "options": {"patch": 1}}
    validate_config(copy.deepcopy(demo_config))
    problems = config_problems(demo_config, tmp_path)
    assert any(p.startswith("datasets.isaid.raw_dir: raw folder raw/isaid does not exist") for p in problems)
    assert any(p.startswith("datasets.isaid.options: ['patch'] not accepted") for p in problems)
    del demo_config["datasets"]["isaid"]["raw_dir"]
    with pytest.raises(ConfigError, match="'raw_dir' is a required property"):
        validate_config(demo_config)


def _schema_leaves(node: dict, prefix: str) -> list[str]:
    """Dotted names of the schema's leaf keys (``<name>`` for a map's entries)."""
    keys = []
    for name, child in node.get("properties", {}).items():
        dotted = f"{prefix}{name}"
        extra = child.get("additionalProperties")
        if child.get("properties"):
            keys += _schema_leaves(child, f"{dotted}.")
        elif isinstance(extra, dict) and extra.get("properties"):
            keys += _schema_leaves(extra, f"{dotted}.<name>.")
        else:
            keys.append(dotted)
    return keys


def test_every_schema_key_is_documented():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    readme = (REPO_ROOT / "config" / "README.md").read_text()

    # Option blocks are documented as one row (`labeling.masks.felzenszwalb` | `{scale, sigma, ...}`), and
    # rows may name several keys of a parent (`training.batch_size` / `workers`).
    def documented(key: str) -> bool:
        key = key.replace("tables.<name>", "tables.<id>")  # the README names tables by their paper id
        if f"`{key}`" in readme:
            return True
        parent, _, leaf = key.rpartition(".")
        return bool(parent) and f"`{parent}" in readme and leaf in readme

    assert [key for key in _schema_leaves(schema, "") if not documented(key)] == []


def test_area_threshold_default_is_decided_once():
    """The schema's default gate is the library's one constant (the CLI options and the study plan use it)."""
    from alps.config import AREA_THRESHOLD
    from alps.study import plan_study

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert schema["properties"]["labeling"]["properties"]["area_threshold"]["default"] == AREA_THRESHOLD
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    del config["labeling"]["area_threshold"]
    validate_config(config)  # fills the schema's defaults, as the workflow does
    assert plan_study(config).pseudo_labels["demo-pl"].area_threshold == AREA_THRESHOLD
