"""One definition of each default: the schema's defaults agree with the stages' dataclasses and functions.

Every ``default:`` of the configuration schema is either paired here with the Python value the stage uses
when run by hand (``alps <command>`` without the option), or listed as a workflow-only value; a new
default must be given one of the two, so that the schema and the code cannot drift apart unnoticed.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from alps.box_labels import DEFAULT_BATCH_SIZE, label_box_shard
from alps.cluster import ClusterConfig
from alps.config import SCHEMA_PATH, load_config, validate_config
from alps.defaults import AREA_THRESHOLD, INIT_MODES, SHARD_SIZE
from alps.masks.registry import build_mask_generator
from alps.study import plan_study
from alps.train.configs import build_config

from conftest import REPO_ROOT

SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def _parameter(function: Any, name: str) -> Any:
    return inspect.signature(function).parameters[name].default


CLUSTER = ClusterConfig()

COUNTERPARTS: dict[str, Any] = {
    "labeling.area_threshold": AREA_THRESHOLD,
    "labeling.shard_size": SHARD_SIZE,
    "labeling.cluster.k": CLUSTER.k,
    "labeling.cluster.batch_size": CLUSTER.batch_size,
    "labeling.cluster.epochs": CLUSTER.epochs,
    "labeling.cluster.init_sample": CLUSTER.init_sample,
    "labeling.cluster.normalize": CLUSTER.normalize,
    "labeling.masks.sam.model_type": _parameter(build_mask_generator, "sam_model"),
    "labeling.masks.sam.bf16": _parameter(build_mask_generator, "bf16"),
    "pseudo_labels.*.boxes.batch_size": DEFAULT_BATCH_SIZE,
    "pseudo_labels.*.boxes.skip_unknown": _parameter(label_box_shard, "skip_unknown"),
    "tables.*.inits": list(INIT_MODES[1:]),
    "training.workers": _parameter(build_config, "num_workers"),
    "training.amp": _parameter(build_config, "amp"),
    "training.log_interval": _parameter(build_config, "log_interval"),
    "training.device": _parameter(build_config, "device"),
}
"""Schema default (``*``: any name) -> the value the code uses where the option is not given."""

WORKFLOW_ONLY: dict[str, str] = {
    "datasets.*.options": "converter options: each converter's own defaults apply (converter_options)",
    "labeling.images_split": "which split the workflow fits on; alps.study reads it",
    "labeling.label_val": "whether the workflow paints val too",
    "labeling.masks.sam.device": "the workflow runs SAM on a GPU; `alps masks` by hand defaults to the CPU",
    "labeling.encoder.device": "`alps features` by hand: its own --device",
    "pseudo_labels.*.variant": "how the workflow makes a set",
    "pseudo_labels.*.evaluate": "whether the workflow scores a set",
    "training.reinit_classifier": "a workflow flag passed as --reinit-classifier",
    "training.schedules": "the named iteration counts of the workflow's tables",
    "training.gpus_per_job": "GPUs the workflow gives a training job",
    "training.keep_finetune_checkpoints": "a workflow flag passed as --drop-checkpoints",
    "training.threads": "threads the workflow gives a training job",
    "tables.*.pretrained": "which pre-trainings a table fine-tunes from",
    "tables.*.baseline": "whether a table has its from-scratch rows",
}
"""Schema defaults with no stage counterpart, and why."""


def _defaults(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, Any]]:
    for name, child in (node.get("properties") or {}).items():
        where = f"{path}.{name}" if path else name
        if "default" in child:
            yield where, child["default"]
        yield from _defaults(child, where)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield from _defaults(extra, f"{path}.*" if path else "*")


SCHEMA_DEFAULTS = dict(_defaults(SCHEMA))


def test_every_schema_default_has_a_counterpart_or_a_reason():
    unpaired = sorted(set(SCHEMA_DEFAULTS) - set(COUNTERPARTS) - set(WORKFLOW_ONLY))
    assert not unpaired, f"schema defaults with no Python counterpart and no reason: {unpaired}"
    stale = sorted((set(COUNTERPARTS) | set(WORKFLOW_ONLY)) - set(SCHEMA_DEFAULTS))
    assert not stale, f"listed here but not defaults of the schema: {stale}"


@pytest.mark.parametrize("key", sorted(COUNTERPARTS))
def test_schema_default_agrees_with_the_code(key):
    assert SCHEMA_DEFAULTS[key] == COUNTERPARTS[key]


def test_k_range_default_is_described_as_the_code_has_it():
    # No schema default (the workflow passes --k-range only when given), so the description says it.
    description = SCHEMA["properties"]["labeling"]["properties"]["cluster"]["properties"]["k_range"]
    assert str(list(CLUSTER.k_range)) in " ".join(description["description"].split())


def test_the_plan_of_a_config_does_not_depend_on_its_defaults_being_filled():
    """alps.study falls back to the schema's defaults where a key is absent: the same plan either way."""
    raw = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    filled = copy.deepcopy(raw)
    validate_config(filled)
    assert filled != raw  # the demo leaves some keys to their defaults
    assert plan_study(raw) == plan_study(filled)


def test_loading_fills_the_schema_defaults(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    del config["labeling"]["shard_size"]
    loaded = load_config(config, base_dir=REPO_ROOT)
    assert loaded.config["labeling"]["shard_size"] == SHARD_SIZE
    assert loaded.study.fit_split == SCHEMA_DEFAULTS["labeling.images_split"]


def _readme_defaults() -> dict[str, str]:
    """``config/README.md``'s key table: key (``*`` for ``<name>``/``<id>``) -> the default it states."""
    rows: dict[str, str] = {}
    for line in (REPO_ROOT / "config" / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`") or cells[0].count("`") != 2:
            continue
        key = cells[0].strip("`").replace("<name>", "*").replace("<id>", "*")
        # "type, default" or "choices; default": the default is the last part
        rows[key] = re.split(r";\s|,\s(?![^\[{(]*[\]})])", cells[1])[-1].strip("` ")
    return rows


@pytest.mark.parametrize("key", sorted(k for k, v in SCHEMA_DEFAULTS.items() if not isinstance(v, dict)))
def test_config_readme_states_the_schema_default(key):
    stated = _readme_defaults().get(key)
    if stated is None:
        pytest.skip(f"{key} has no row of its own in config/README.md")
    assert yaml.safe_load(stated) == SCHEMA_DEFAULTS[key], f"config/README.md says {stated!r} for {key}"
