"""A trained model for inference: its config read as data, its weights as plain tensors, mmseg's own API.

``load_segmentor`` takes a work dir of ``alps pretrain``/``alps finetune`` (its ``config.py``, the stock
inference config of ``configs.inference_config``, and the checkpoint its ``metrics.json`` evaluated) or
any mmseg config file with a checkpoint, and builds the model with ``mmseg.apis.init_model``; ``Segmentor``
labels tiles through ``mmseg.apis.inference_model`` (the config's ``test_pipeline`` and ``test_cfg``, whole
or sliding-window).

Trust: an mmengine ``.py`` config is Python that ``Config.fromfile`` executes. A config is therefore read
as data (``read_plain_config``: assignments of literals and ``dict(...)`` only, as ``alps`` and mmengine
dump them) unless it lies in the installed mmseg's own configs or the caller trusts it (``trust_config``:
``alps predict --trust-config``). Weights are read with ``torch.load(weights_only=True)``
(``alps.train.checkpoints.load_checkpoint``).
"""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from alps.paint import UNLABELED, make_palette
from alps.train.checkpoints import load_checkpoint
from alps.train.mmcv_compat import import_mmseg
from alps.train.runner import CONFIG_NAME, run_checkpoint

log = logging.getLogger(__name__)

CONFIG_LIMIT = 4 << 20
"""The largest config file read (bytes); ours are a few kB."""
DEFAULT_TILE = 512
"""Tile side when a config's test pipeline does not say one (mmseg's usual test crop)."""


class PlainConfigError(ValueError):
    """A config that is more than data (imports, ``_base_``, expressions): reading it would run it."""


def _literal(node: ast.AST, where: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_literal(item, where) for item in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k, where): _literal(v, where) for k, v in zip(node.keys, node.values, strict=True)}
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(keyword.arg is not None for keyword in node.keywords)
    ):
        return {keyword.arg: _literal(keyword.value, where) for keyword in node.keywords}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, where)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    raise PlainConfigError(f"{where}, line {getattr(node, 'lineno', '?')}: not a plain value")


def read_plain_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``.py`` config's assignments, read as data (nothing in it runs).

    Raises:
        PlainConfigError: the file holds anything but ``name = <literal or dict(...)>`` lines (imports,
            ``_base_`` inheritance, function calls, expressions), or is too large or not Python.
    """
    path = Path(path)
    if path.stat().st_size > CONFIG_LIMIT:
        raise PlainConfigError(f"{path}: larger than {CONFIG_LIMIT} bytes; not a model config")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise PlainConfigError(f"{path}: not a Python config ({exc})") from None
    config: dict[str, Any] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        if not (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            raise PlainConfigError(f"{path}, line {statement.lineno}: not a plain assignment")
        try:
            config[statement.targets[0].id] = _literal(statement.value, str(path))
        except RecursionError:
            raise PlainConfigError(f"{path}, line {statement.lineno}: nested too deeply") from None
    if "_base_" in config:
        raise PlainConfigError(f"{path} inherits other files (_base_); they are Python that would run")
    return config


def _mmseg_configs() -> Path:
    import mmseg

    return (Path(mmseg.__file__).parent / ".mim" / "configs").resolve()


def load_config(path: str | os.PathLike[str], trust: bool = False) -> Any:
    """An mmengine ``Config``: read as data, or run where it is mmseg's own or ``trust`` is set.

    Raises:
        FileNotFoundError: no such file.
        PlainConfigError: a config that would run code, neither mmseg's own nor trusted.
    """
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model config {path} does not exist")
    try:
        return Config(read_plain_config(path))
    except PlainConfigError as exc:
        if trust or _mmseg_configs() in path.resolve().parents:
            return Config.fromfile(str(path))
        raise PlainConfigError(
            f"{exc}. Loading this config would run its Python code; alps reads only plain configs (as "
            "alps pretrain/finetune write them) or mmseg's own. Pass --trust-config if you trust it"
        ) from None


def _tile_size(cfg: Any) -> int:
    """The side at which the test pipeline leaves a tile unscaled (its ``Resize``'s shorter side)."""
    for step in cfg.get("test_pipeline", []):
        if step.get("type") == "Resize" and step.get("scale") is not None:
            scale = step["scale"]
            return int(min(scale)) if isinstance(scale, (list, tuple)) else int(scale)
    size = cfg.model.get("data_preprocessor", {}).get("size")
    return int(min(size)) if size else DEFAULT_TILE


def _state_dict(checkpoint: Any, path: Path) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} holds no state dict of tensors")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _metainfo(checkpoint: Any, cfg: Any, num_classes: int) -> tuple[list[str], list[list[int]]]:
    """Class names and palette: the checkpoint's ``dataset_meta``, else the config's ``metainfo``."""
    meta = (checkpoint.get("meta") or {}) if isinstance(checkpoint, dict) else {}
    info = meta.get("dataset_meta") or cfg.get("metainfo") or {}
    names = [str(name) for name in (info.get("classes") or [])][:num_classes]
    names += [f"class_{i:02d}" for i in range(len(names), num_classes)]
    palette = make_palette(max(num_classes, 1))[:num_classes].tolist()
    for i, colour in enumerate((info.get("palette") or [])[:num_classes]):
        palette[i] = [int(c) for c in colour[:3]]
    return names, palette


@dataclass
class Segmentor:
    """An mmseg model ready to label tiles.

    Attributes:
        model: the mmseg segmentor (eval mode, on its device).
        classes: the names of its label values 0..N-1.
        palette: their colours.
        tile_size: the tile side its test pipeline leaves unscaled.
        config: the config file it was built from.
        checkpoint: the weights file.
        device: the torch device.
    """

    model: Any
    classes: list[str]
    palette: list[list[int]]
    tile_size: int
    config: Path
    checkpoint: Path
    device: str

    def predict(self, tiles: Sequence[NDArray[np.uint8]]) -> list[NDArray[np.uint8]]:
        """The label of each RGB tile (tiles of one size), through ``mmseg.apis.inference_model``."""
        from mmseg.apis import inference_model

        if not tiles:
            return []
        # BGR, as mmseg's LoadImageFromFile gives it to the model (its preprocessor turns it into RGB).
        batch = [np.ascontiguousarray(tile[..., ::-1]) for tile in tiles]
        with torch.no_grad():
            results = inference_model(self.model, batch)
        return [result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8) for result in results]


def resolve_model(
    model: str | os.PathLike[str], checkpoint: str | os.PathLike[str] | None
) -> tuple[Path, Path]:
    """``(config, checkpoint)`` of a work dir (its ``config.py`` and final checkpoint) or a config file.

    Raises:
        FileNotFoundError: no config or checkpoint where they should be.
        ValueError: a config file without ``checkpoint``.
    """
    model = Path(model)
    if model.is_dir():
        config = model / CONFIG_NAME
        if not config.is_file():
            raise FileNotFoundError(
                f"{model} has no {CONFIG_NAME} (the inference config alps pretrain/finetune write); pass an "
                "mmseg config file and --checkpoint"
            )
        return config, Path(checkpoint) if checkpoint is not None else run_checkpoint(model)
    if checkpoint is None:
        raise ValueError(f"{model} is a config file: pass its weights with --checkpoint")
    return model, Path(checkpoint)


def device_name(device: str) -> str:
    """``auto`` -> ``cuda`` where torch sees a GPU, else ``cpu``; anything else as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_segmentor(
    model: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    trust_config: bool = False,
) -> Segmentor:
    """Build a trained model with ``mmseg.apis.init_model`` and load its weights (plain tensors only).

    Arguments:
        model: a work dir of ``alps pretrain``/``alps finetune``, or an mmseg config file.
        checkpoint: the weights (default for a work dir: the checkpoint its ``metrics.json`` evaluated).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        trust_config: run a config that is not plain data (``load_config``).

    Raises:
        FileNotFoundError, ValueError: a missing file, a config that is not plain (and not trusted), a
            checkpoint that is not plain weights or does not fit the config.
    """
    config_path, checkpoint_path = resolve_model(model, checkpoint)
    cfg = load_config(config_path, trust_config)
    if "test_pipeline" not in cfg:
        pipeline = cfg.get("test_dataloader", {}).get("dataset", {}).get("pipeline")
        if not pipeline:
            raise ValueError(f"{config_path} has no test_pipeline (and no test_dataloader pipeline)")
        cfg.test_pipeline = pipeline
    raw = load_checkpoint(checkpoint_path)
    state = _state_dict(raw, checkpoint_path)
    import_mmseg()
    from mmseg.apis import init_model

    device = device_name(device)
    segmentor = init_model(cfg, None, device="cpu")
    missing, unexpected = segmentor.load_state_dict(state, strict=False)
    if missing or unexpected:
        detail = f"{len(missing)} weights missing (e.g. {missing[:2]}), {len(unexpected)} unexpected"
        raise ValueError(f"{checkpoint_path} does not fit {config_path}: {detail} (e.g. {unexpected[:2]})")
    num_classes = int(segmentor.decode_head.num_classes)
    if num_classes >= UNLABELED:
        raise ValueError(f"{config_path}: {num_classes} classes do not fit a uint8 label (255 = unlabeled)")
    classes, palette = _metainfo(raw, cfg, num_classes)
    segmentor.dataset_meta = {"classes": classes, "palette": palette}
    segmentor.to(device).eval()
    log.info("model %s (%d classes) with %s on %s", config_path, num_classes, checkpoint_path.name, device)
    return Segmentor(segmentor, classes, palette, _tile_size(cfg), config_path, checkpoint_path, device)
