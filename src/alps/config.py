"""The workflow configuration, loaded once: size-checked, schema-validated with defaults, checked, planned.

``load_config`` is the one way in: the Snakemake workflow (``workflow/rules/common.smk``),
``scripts/check-study-tables.py`` and ``alps tables --config`` call it. It refuses a configuration file
over the size limits (``alps.io.yamlfile``), validates against the schema shipped in the package
(``alps/schemas/config.schema.yaml``: types, ranges, unknown keys) while filling its defaults, as
Snakemake's ``validate`` does, runs the checks a schema cannot express (files exist, options agree) and
plans the study (``alps.study.plan_study``) once. A bad configuration fails in the first second with a
message naming every offending key, instead of hours later on a cluster node.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, validators

from alps.classmap import load_class_map
from alps.datasets import converter_options
from alps.defaults import AREA_THRESHOLD, INIT_MODES
from alps.io.yamlfile import YamlLimitError, load_yaml
from alps.study import Study, StudyError, plan_study
from alps.train.models import MODEL_NAMES

__all__ = [
    "AREA_THRESHOLD",
    "INIT_MODES",
    "SCHEMA_PATH",
    "ConfigError",
    "LoadedConfig",
    "check_config",
    "config_problems",
    "load_config",
    "validate_config",
]

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"
"""The configuration's JSON schema (YAML), shipped as package data."""


class ConfigError(ValueError):
    """The configuration is invalid; the message names every offending key."""


@dataclass(frozen=True)
class LoadedConfig:
    """A configuration with the schema's defaults filled, every check passed, and its study plan."""

    config: dict[str, Any]
    study: Study


def load_config(
    source: str | os.PathLike[str] | dict[str, Any],
    *,
    config_files: Sequence[str | os.PathLike[str]] = (),
    base_dir: str | os.PathLike[str] = ".",
    check_files: bool = True,
) -> LoadedConfig:
    """Load, validate, check and plan a workflow configuration.

    Arguments:
        source: a configuration file, or a configuration already read (Snakemake's ``config``), which is
            filled with the schema's defaults in place, as Snakemake's ``validate`` does.
        config_files: the files ``source`` was read from (Snakemake's ``--configfile``), checked against
            the size limits before anything walks the mapping (an alias bomb would make the validation run
            for ever).
        base_dir: folder that relative paths in the configuration are relative to.
        check_files: also check that the files the jobs read exist (raw folders, checkpoints, class maps);
            off where only the plan is needed (``alps tables --config`` away from the raw data).

    Returns:
        The filled configuration and its study plan.

    Raises:
        ConfigError: a file over the limits, a schema violation, or a failed check, naming the key(s).
    """
    where = ""
    try:
        for path in config_files:
            load_yaml(path)
        if isinstance(source, dict):
            config = source
        else:
            where = f"{source}: "
            config = load_yaml(source)
    except YamlLimitError as error:
        raise ConfigError(str(error)) from None
    if not isinstance(config, dict):
        raise ConfigError(f"{where}a workflow configuration is a mapping of keys")
    validate_config(config)
    problems, study = _problems_and_study(config, Path(base_dir), check_files)
    if problems or study is None:
        raise ConfigError(f"{where}invalid configuration:\n  - " + "\n  - ".join(problems))
    return LoadedConfig(config, study)


@functools.cache
def _schema() -> dict[str, Any]:
    return load_yaml(SCHEMA_PATH)


def _extend_with_default(validator_class: Any) -> Any:
    """A validator that fills every absent property that has a ``default`` (jsonschema's FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Mapping[str, Any], instance: Any, schema: Any) -> Iterator:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_FillingValidator = _extend_with_default(Draft202012Validator)


def validate_config(config: dict[str, Any]) -> None:
    """Validate against the schema, filling its defaults in place.

    Table ids are the paper's (``"1"``, ``"3a"``); YAML reads an unquoted ``1`` as a number, so the ids
    of ``tables`` are made strings first.

    Raises:
        ConfigError: one line per violation, each naming the key.
    """
    if isinstance(config.get("tables"), dict):
        config["tables"] = {str(k): v for k, v in config["tables"].items()}
    errors = sorted(_FillingValidator(_schema()).iter_errors(config), key=lambda e: list(map(str, e.path)))
    if errors:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(map(_describe, errors)))


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(part) for part in error.absolute_path)
    return f"{key or '(top level)'}: {error.message}"


def config_problems(config: dict[str, Any], base_dir: str | Path = ".") -> list[str]:
    """List what is wrong with a schema-valid configuration (empty when it is fine).

    Arguments:
        config: the configuration dictionary (after schema validation and defaults).
        base_dir: folder that relative paths in the configuration are relative to.

    Returns:
        One message per problem, each naming the key.
    """
    return _problems_and_study(config, Path(base_dir), check_files=True)[0]


def check_config(config: dict[str, Any], base_dir: str | Path = ".") -> None:
    """Raise ``ConfigError`` listing every problem of ``config_problems``."""
    problems = config_problems(config, base_dir)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def _problems_and_study(
    config: dict[str, Any], base: Path, check_files: bool
) -> tuple[list[str], Study | None]:
    """Every problem of a schema-valid configuration, and its plan (None where it cannot be planned)."""
    problems = _dataset_problems(config, base, check_files) + _labeling_problems(config, base, check_files)
    problems += _training_problems(config)
    try:
        study = plan_study(config)
    except StudyError as error:
        return [*problems, str(error)], None
    problems += _num_classes_problems(study)
    if check_files:
        problems += _class_map_problems(study, config, base)
    return problems, study


def _num_classes_problems(study: Study) -> list[str]:
    """A set's declared label ids must cover its K (a set's ``k: null`` inherits ``labeling.cluster.k``)."""
    problems: list[str] = []
    for name, pl_set in study.pseudo_labels.items():
        k = study.cluster_k(name)
        if pl_set.num_classes is not None and k is not None and pl_set.num_classes < k:
            problems.append(f"pseudo_labels.{name}.num_classes: {pl_set.num_classes} is fewer than its k {k}")
    return problems


def _dataset_problems(config: Mapping[str, Any], base: Path, check_files: bool) -> list[str]:
    problems: list[str] = []
    for name, dataset in config.get("datasets", {}).items():
        raw_dir = dataset.get("raw_dir")
        if check_files and raw_dir and not (base / raw_dir).is_dir():
            problems.append(f"datasets.{name}.raw_dir: raw folder {raw_dir} does not exist")
        if dataset.get("converter"):
            accepted = set(converter_options(dataset["converter"])) | {"seed"}
            unknown = sorted(set(dataset.get("options", {})) - accepted)
            if unknown:
                problems.append(
                    f"datasets.{name}.options: {unknown} not accepted by the {dataset['converter']} "
                    f"converter (it takes {sorted(accepted - {'seed'})})"
                )
    return problems


def _labeling_problems(config: Mapping[str, Any], base: Path, check_files: bool) -> list[str]:
    problems: list[str] = []
    labeling = config.get("labeling", {})
    masks = labeling.get("masks", {})
    backend = masks.get("backend")
    if backend == "sam" and check_files:
        checkpoint = masks.get("sam", {}).get("checkpoint")
        if not checkpoint:
            problems.append("labeling.masks.sam.checkpoint: the sam backend needs a SAM checkpoint path")
        elif not (base / checkpoint).is_file():
            problems.append(
                f"labeling.masks.sam.checkpoint: {checkpoint} does not exist; download the official "
                "weights (sam_vit_h_4b8939.pth, sam_vit_l_0b3195.pth or sam_vit_b_01ec64.pth) and give "
                "their path"
            )
    if backend == "coco" and check_files:
        coco_json = masks.get("coco", {}).get("json")
        if not coco_json or not (base / coco_json).is_file():
            problems.append(f"labeling.masks.coco.json: COCO instances file {coco_json} does not exist")
    encoder = labeling.get("encoder", {}).get("name")
    if encoder == "sam" and backend != "sam":
        problems.append(
            "labeling.encoder.name: the sam encoder reuses SAM's embedding from mask generation, so it "
            f"needs labeling.masks.backend: sam (got {backend})"
        )
    k_range = labeling.get("cluster", {}).get("k_range")
    if k_range is not None and k_range[0] > k_range[1]:
        problems.append(f"labeling.cluster.k_range: minimum {k_range[0]} exceeds maximum {k_range[1]}")
    for name, pl_set in (config.get("pseudo_labels") or {}).items():
        boxes = pl_set.get("boxes") or {}
        if pl_set.get("variant") == "boxes":
            if check_files and boxes.get("dir") and not (base / boxes["dir"]).is_dir():
                problems.append(f"pseudo_labels.{name}.boxes.dir: box folder {boxes['dir']} does not exist")
            if backend != "sam":
                problems.append(
                    f"pseudo_labels.{name}: box-prompted labels need SAM; set labeling.masks.backend: sam "
                    "with its checkpoint"
                )
    return problems


def _training_problems(config: Mapping[str, Any]) -> list[str]:
    training = config.get("training")
    if training is None:
        return []
    return [
        f"training.models: unknown model {model!r}; use one of {MODEL_NAMES}"
        for model in training.get("models", {})
        if model not in MODEL_NAMES
    ]


def _class_map_problems(study: Study, config: Mapping[str, Any], base: Path) -> list[str]:
    """A bad class map fails when the configuration is loaded, before any job runs."""
    problems: list[str] = []
    for name in study.mapped_sets():
        where = f"pseudo_labels.{name}.class_map"
        pl_set = study.pseudo_labels[name]
        if pl_set.variant == "binary":
            problems.append(
                f"{where}: a binary set has no clusters to name; give the map to the set `{pl_set.of}` it "
                "is painted from"
            )
            continue
        try:
            load_class_map(base / str(pl_set.class_map), study.cluster_count(name))
        except ValueError as error:
            problems.append(f"{where}: {error}")
    return problems
