"""One definition of each default: the ``alps`` options' defaults and choice lists are those of the code
they configure (the stage dataclasses and functions, and the registries)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import subprocess
import sys

import pytest

from alps import names
from alps.cli import build_parser
from alps.cluster import ClusterConfig
from alps.config import AREA_THRESHOLD
from alps.datasets import CONVERTERS
from alps.geo.scene import SceneOptions
from alps.label_dataset import TILE_SIZE, VAL_FRACTION
from alps.masks.registry import MASK_BACKENDS
from alps.predict import predict
from alps.train.models import MODEL_NAMES


def _parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return dict(sub.choices)


PARSERS = _parsers()


def _action(command: str, dest: str) -> argparse.Action:
    matches = [a for a in PARSERS[command]._actions if a.dest == dest]
    assert len(matches) == 1, f"alps {command} has no single option {dest!r}"
    return matches[0]


def _default(command: str, dest: str) -> object:
    default = _action(command, dest).default
    return tuple(default) if isinstance(default, list) else default


def _parameter_default(function: object, name: str) -> object:
    return inspect.signature(function).parameters[name].default  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["cluster", "label"])
@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(ClusterConfig)])
def test_clustering_options_default_to_the_cluster_config(command: str, field: str) -> None:
    assert _default(command, field) == getattr(ClusterConfig(), field)


@pytest.mark.parametrize("command", ["cluster", "label"])
def test_the_area_threshold_defaults_to_the_configured_gate(command: str) -> None:
    assert _default(command, "area_threshold") == AREA_THRESHOLD


def test_scene_tiling_of_label_defaults_to_the_scene_options() -> None:
    assert _default("label", "tile_size") == SceneOptions().tile_size
    assert _default("label", "overlap") == SceneOptions().overlap


def test_pl_dataset_tiling_defaults_to_the_label_dataset_module() -> None:
    assert _default("pl-dataset", "tile_size") == TILE_SIZE
    assert _default("pl-dataset", "val_fraction") == VAL_FRACTION


def test_predict_batch_defaults_to_the_predict_function() -> None:
    assert _default("predict", "batch_size") == _parameter_default(predict, "batch_size")
    assert _default("predict", "device") == _parameter_default(predict, "device")


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_training_options_default_to_the_config_builder(command: str) -> None:
    from alps.train.configs import build_config  # mmengine: only this test pays for it

    for dest, parameter in (
        ("workers", "num_workers"),
        ("keep_checkpoints", "max_keep_ckpts"),
        ("log_interval", "log_interval"),
        ("seed", "seed"),
        ("device", "device"),
        ("launcher", "launcher"),
    ):
        assert _default(command, dest) == _parameter_default(build_config, parameter), dest


def test_choice_lists_are_the_registries_names() -> None:
    from alps.features.encoders import available_encoders  # torch
    from alps.masks.sam import SAM_ARCHITECTURES  # segment_anything

    assert tuple(_action("masks", "backend").choices) == MASK_BACKENDS == names.MASK_BACKENDS
    assert tuple(_action("label", "sam_model").choices) == tuple(SAM_ARCHITECTURES) == names.SAM_MODELS
    assert tuple(_action("box-labels", "sam_model").choices) == names.SAM_MODELS
    assert sorted(_action("label", "encoder").choices) == available_encoders() == sorted(names.ENCODERS)
    assert tuple(_action("prepare", "dataset").choices) == tuple(CONVERTERS) == names.CONVERTERS
    for command in ("pretrain", "finetune"):
        assert tuple(_action(command, "model").choices) == MODEL_NAMES
        assert _default(command, "model") in MODEL_NAMES


def test_every_training_dataset_kind_is_one_the_config_builder_knows(tmp_path) -> None:
    from alps.train.configs import dataset_spec

    assert tuple(_action("finetune", "dataset").choices) == names.DATASET_KINDS
    (tmp_path / "classes.json").write_text('{"classes": ["a", "b"]}')
    (tmp_path / "dataset_card.json").write_text('{"num_classes": 2}')
    for kind in names.DATASET_KINDS:
        assert dataset_spec(kind, tmp_path).kind == kind
    with pytest.raises(ValueError, match="unknown dataset kind"):
        dataset_spec("nonsense", tmp_path)


def test_the_parser_is_built_without_numpy_pandas_or_torch() -> None:
    """``alps --help`` and every refusal of an option stay fast: the defaults' sources are light modules."""
    code = (
        "import sys; from alps.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('numpy', 'pandas', 'torch', 'sklearn', 'rasterio') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
