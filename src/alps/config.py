"""Checks of a workflow configuration that a JSON schema cannot express (files exist, options agree).

``workflow/schemas/config.schema.yaml`` validates types, ranges and unknown keys through Snakemake's
``validate``; ``check_config`` runs right after it, before any job starts, so that a run fails in the first
second with a message naming the key instead of hours later on a cluster node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AREA_THRESHOLD = 0.3
"""The paper's filtering gate (masks covering more than this fraction of the image are not clustered):
the default of ``labeling.area_threshold`` in the schema and of the ``--area-threshold`` options
(``tests/test_config.py`` checks that the schema says the same)."""

INIT_MODES: tuple[str, ...] = ("none", "overall", "backbone", "head")
"""How a training run is initialised from a pre-training (the paper's sub-models; ``none``: from scratch):
the ``--init`` choices of ``alps pretrain`` / ``alps finetune`` and what ``alps.train.surgery`` loads."""


class ConfigError(ValueError):
    """The configuration is invalid; the message names every offending key."""


def config_problems(config: dict[str, Any], base_dir: str | Path = ".") -> list[str]:
    """List what is wrong with a schema-valid configuration (empty when it is fine).

    Arguments:
        config: the configuration dictionary (after schema validation and defaults).
        base_dir: folder that relative paths in the configuration are relative to.

    Returns:
        One message per problem, each naming the key.
    """
    base = Path(base_dir)
    problems: list[str] = []
    labeling = config.get("labeling", {})
    datasets = config.get("datasets", {})
    for name, dataset in datasets.items():
        raw_dir = dataset.get("raw_dir")
        if raw_dir and not (base / raw_dir).is_dir():
            problems.append(f"datasets.{name}.raw_dir: raw folder {raw_dir} does not exist")
        if dataset.get("converter"):
            from alps.datasets import converter_options

            accepted = set(converter_options(dataset["converter"])) | {"seed"}
            unknown = sorted(set(dataset.get("options", {})) - accepted)
            if unknown:
                problems.append(
                    f"datasets.{name}.options: {unknown} not accepted by the {dataset['converter']} "
                    f"converter (it takes {sorted(accepted - {'seed'})})"
                )
    masks = labeling.get("masks", {})
    backend = masks.get("backend")
    if backend == "sam":
        checkpoint = masks.get("sam", {}).get("checkpoint")
        if not checkpoint:
            problems.append("labeling.masks.sam.checkpoint: the sam backend needs a SAM checkpoint path")
        elif not (base / checkpoint).is_file():
            problems.append(
                f"labeling.masks.sam.checkpoint: {checkpoint} does not exist; download the official "
                "weights (sam_vit_h_4b8939.pth, sam_vit_l_0b3195.pth or sam_vit_b_01ec64.pth) and give "
                "their path"
            )
    if backend == "coco":
        coco_json = masks.get("coco", {}).get("json")
        if not coco_json or not (base / coco_json).is_file():
            problems.append(f"labeling.masks.coco.json: COCO instances file {coco_json} does not exist")
    encoder = labeling.get("encoder", {}).get("name")
    if encoder == "sam" and backend != "sam":
        problems.append(
            "labeling.encoder.name: the sam encoder reuses SAM's embedding from mask generation, so it "
            f"needs labeling.masks.backend: sam (got {backend})"
        )
    cluster = labeling.get("cluster", {})
    k_range = cluster.get("k_range")
    if k_range is not None and k_range[0] > k_range[1]:
        problems.append(f"labeling.cluster.k_range: minimum {k_range[0]} exceeds maximum {k_range[1]}")
    for name, pl_set in (config.get("pseudo_labels") or {}).items():
        boxes = pl_set.get("boxes") or {}
        if pl_set.get("variant") == "boxes":
            if boxes.get("dir") and not (base / boxes["dir"]).is_dir():
                problems.append(f"pseudo_labels.{name}.boxes.dir: box folder {boxes['dir']} does not exist")
            if backend != "sam":
                problems.append(
                    f"pseudo_labels.{name}: box-prompted labels need SAM; set labeling.masks.backend: sam "
                    "with its checkpoint"
                )
        k = pl_set.get("k", labeling.get("cluster", {}).get("k"))
        if pl_set.get("num_classes") is not None and k is not None and pl_set["num_classes"] < k:
            problems.append(
                f"pseudo_labels.{name}.num_classes: {pl_set['num_classes']} is fewer than its k {k}"
            )
    training = config.get("training")
    if training is not None:
        from alps.train.models import MODEL_NAMES

        for model in training.get("models", {}):
            if model not in MODEL_NAMES:
                problems.append(f"training.models: unknown model {model!r}; use one of {MODEL_NAMES}")
    from alps.study import StudyError, plan_study

    try:
        plan_study(config)
    except StudyError as error:
        problems.append(str(error))
    return problems


def check_config(config: dict[str, Any], base_dir: str | Path = ".") -> None:
    """Raise ``ConfigError`` listing every problem of ``config_problems``."""
    problems = config_problems(config, base_dir)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
