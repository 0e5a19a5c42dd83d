"""Sub-model initialisation for fine-tuning (the paper's "overall", "backbone" and "head" sub-models).

A model pre-trained on K pseudo-classes initialises a model fine-tuned on C classes (iSAID 16, Potsdam 6,
the demo 3). Modes (``--init``):

* ``none``: nothing is loaded (the baseline: the model's own initialisation, ImageNet backbone if given);
* ``overall``: every weight whose name and shape fit;
* ``backbone``: ``backbone.*`` only;
* ``head``: ``decode_head.*`` and ``auxiliary_head.*`` only.

In every mode a weight loads only if the fine-tuned model has a parameter/buffer of the same name and
shape. The classifier (``conv_seg``) of a K-class head does not fit a C-class one when K != C and keeps
its fresh initialisation; when K == C (iSAID-PL's 16 clusters, iSAID's 16 classes) it fits, and
``overall``/``head`` load it: output k, trained to mean pseudo-class k, starts as class k, an arbitrary
pairing that fine-tuning has to undo. ``reinit`` (``alps finetune --reinit-classifier``) names the
weights to leave at their initialisation instead. A neck (ViT-B's ``MultiLevelNeck``) is neither backbone
nor head: only ``overall`` loads it. Every decision is recorded: ``loaded``, ``skipped`` (checkpoint keys
not loaded, with the reason) and ``kept_init`` (model keys left at their initialisation), returned and
written as JSON.

ViT position embeddings (``pos_embed``, ``(1, 1 + h*w, C)``) are resized when the pre-training and
fine-tuning crops differ (512 px pseudo-labels, 896 px iSAID), by the bicubic interpolation that mmseg's
``VisionTransformer.resize_pos_embed`` applies to ImageNet weights; ``resized`` in the report names them.

Trust: every checkpoint is read with ``torch.load(weights_only=True)`` (``alps.train.checkpoints``), which
rebuilds tensors, plain containers and numpy data only; a file that needs more is refused with a clear
error, whoever wrote it and whatever lies beside it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from alps.config import INIT_MODES
from alps.io.atomic import atomic_output, atomic_write_text
from alps.io.digest import file_sha256
from alps.train.checkpoints import UntrustedCheckpointError, load_checkpoint

RUN_MARKER = "alps_run.json"
"""Written by ``alps.train.runner`` into every work dir it trains in (what wrote it; it grants no trust)."""

_SCOPES: dict[str, tuple[str, ...]] = {
    "overall": ("",),
    "backbone": ("backbone.",),
    "head": ("decode_head.", "auxiliary_head."),
    "none": (),
}

__all__ = [
    "INIT_MODES",
    "RUN_MARKER",
    "UntrustedCheckpointError",
    "init_model",
    "load_state_dict",
    "resize_pos_embed",
    "select_weights",
    "write_init_checkpoint",
]


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read the model weights of a checkpoint onto the CPU, with ``torch.load(weights_only=True)``.

    Accepts mmengine checkpoints (``{"state_dict": ..., "meta": ...}``), ``{"model": ...}`` wrappers and bare
    state dicts; strips a DDP ``module.`` prefix.

    Arguments:
        path: the checkpoint file.

    Returns:
        Parameter/buffer name -> tensor.

    Raises:
        FileNotFoundError: no such file.
        UntrustedCheckpointError: the file is not plain weights (``alps.train.checkpoints``).
        ValueError: the file holds no tensors.
    """
    path = Path(path)
    state: Any = load_checkpoint(path)
    if isinstance(state, Mapping):
        for key in ("state_dict", "model"):
            if key in state and isinstance(state[key], Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds no state dict")
    out = {
        (k[len("module.") :] if k.startswith("module.") else k): v
        for k, v in state.items()
        if isinstance(v, torch.Tensor)
    }
    if not out:
        raise ValueError(f"{path} holds no tensors")
    return out


def _square_grid(tokens: int) -> tuple[int, int] | None:
    side = math.isqrt(tokens)
    return (side, side) if side * side == tokens else None


def resize_pos_embed(
    value: torch.Tensor, target_shape: tuple[int, ...], grid: tuple[int, int] | None = None
) -> torch.Tensor | None:
    """A ViT ``pos_embed`` (1, 1 + h*w, C) resized to ``target_shape``, as mmseg's ViT does it, or None.

    Arguments:
        value: the checkpoint's embedding (class token first, then a square grid).
        target_shape: the model's ``(1, 1 + H*W, C)``.
        grid: the model's ``(H, W)``; default: square.

    Returns:
        The bicubically resized embedding, or None if the shapes are not two position grids of one width.
    """
    if value.ndim != 3 or len(target_shape) != 3 or value.shape[0] != 1 or value.shape[2] != target_shape[2]:
        return None
    source_grid = _square_grid(value.shape[1] - 1)
    grid = grid or _square_grid(target_shape[1] - 1)
    if source_grid is None or grid is None or grid[0] * grid[1] != target_shape[1] - 1:
        return None
    from alps.train.mmcv_compat import import_mmseg

    import_mmseg()
    from mmseg.models.backbones.vit import VisionTransformer

    return VisionTransformer.resize_pos_embed(value.float(), grid, source_grid, "bicubic")


def _in_scope(key: str, mode: str) -> bool:
    return any(key.startswith(prefix) for prefix in _SCOPES[mode])


def _shape(tensor: torch.Tensor) -> list[int]:
    return list(tensor.shape)


def select_weights(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    mode: str,
    pos_grids: Mapping[str, tuple[int, int]] | None = None,
    reinit: Collection[str] = (),
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Choose the checkpoint weights that initialise the fine-tuned model in ``mode``.

    Arguments:
        source: the pre-trained state dict.
        target: the fine-tuned model's state dict (names and shapes).
        mode: one of ``INIT_MODES``.
        pos_grids: ``pos_embed`` key -> the model's patch grid ``(H, W)`` (``img_size // patch_size``);
            default: square grids.
        reinit: model keys never loaded (the classifiers, with ``--reinit-classifier``); they keep their
            initialisation, reported as such.

    Returns:
        ``(weights, report)``: the weights to load, and ``{"mode", "loaded": [keys], "resized": {key:
        how}, "skipped": {key: reason}, "kept_init": {key: reason}, "counts": {...}}``, keys sorted.
        ``loaded`` includes the ``resized`` keys.

    Raises:
        ValueError: unknown mode, or a mode other than ``none`` that loads nothing (wrong checkpoint).
    """
    if mode not in INIT_MODES:
        raise ValueError(f"init mode must be one of {', '.join(INIT_MODES)}, got {mode!r}")
    loaded: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    resized: dict[str, str] = {}
    for key in sorted(source):
        value = source[key]
        if not _in_scope(key, mode):
            skipped[key] = f"outside the {mode} sub-model" if mode != "none" else "init none loads nothing"
        elif key not in target:
            skipped[key] = "not in the model"
        elif key in reinit:
            skipped[key] = "classifier re-initialised (--reinit-classifier): pseudo-class k is not class k"
        elif tuple(value.shape) != tuple(target[key].shape):
            fitted = (
                resize_pos_embed(value, tuple(target[key].shape), (pos_grids or {}).get(key))
                if key.endswith("pos_embed")
                else None
            )
            if fitted is not None:
                loaded[key] = fitted.to(dtype=target[key].dtype)
                resized[key] = (
                    f"position embedding resized bicubically from {_shape(value)} to {_shape(target[key])} "
                    "(pre-training and fine-tuning crops differ; mmseg's ViT resize_pos_embed)"
                )
                continue
            skipped[key] = (
                f"shape mismatch: {_shape(value)} in the checkpoint, {_shape(target[key])} in the model"
                + (" (classifier of a different class count)" if ".conv_seg." in key else "")
            )
        else:
            loaded[key] = value.detach().clone().to(dtype=target[key].dtype)
    kept_init: dict[str, str] = {}
    for key in sorted(target):
        if key in loaded:
            continue
        if key in skipped:
            kept_init[key] = skipped[key]
        elif _in_scope(key, mode):
            kept_init[key] = "not in the checkpoint"
        else:
            kept_init[key] = f"outside the {mode} sub-model" if mode != "none" else "init none loads nothing"
    if mode != "none" and not loaded:
        raise ValueError(
            f"init {mode}: no weight of the checkpoint fits the model (name and shape); is it a checkpoint "
            "of the same architecture?"
        )
    report = {
        "mode": mode,
        "loaded": sorted(loaded),
        "resized": resized,
        "skipped": skipped,
        "kept_init": kept_init,
        "counts": {
            "checkpoint_keys": len(source),
            "model_keys": len(target),
            "loaded": len(loaded),
            "resized": len(resized),
            "skipped": len(skipped),
            "kept_init": len(kept_init),
            "loaded_elements": int(sum(v.numel() for v in loaded.values())),
        },
    }
    return loaded, report


def _finish_report(
    report: dict[str, Any], checkpoint: Path, report_path: str | os.PathLike[str] | None
) -> dict[str, Any]:
    report = {"checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint), **report}
    if report_path is not None:
        atomic_write_text(Path(report_path), json.dumps(report, indent=2) + "\n")
    return report


def init_model(
    model: nn.Module,
    checkpoint: str | os.PathLike[str],
    mode: str,
    report_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Initialise ``model`` in place from a pre-trained checkpoint (see the module docstring).

    Arguments:
        model: the fine-tuned model, already initialised (its weights stay where nothing loads).
        checkpoint: the pre-trained checkpoint.
        mode: one of ``INIT_MODES``.
        report_path: where to write the report as JSON (optional).

    Returns:
        The report of ``select_weights``, with ``checkpoint`` and ``checkpoint_sha256``.
    """
    checkpoint = Path(checkpoint)
    target = model.state_dict()
    source = load_state_dict(checkpoint) if mode != "none" else {}
    weights, report = select_weights(source, target, mode)
    with torch.no_grad():
        for key, value in weights.items():
            target[key].copy_(value)
    return _finish_report(report, checkpoint, report_path)


def write_init_checkpoint(
    checkpoint: str | os.PathLike[str],
    target: nn.Module | Mapping[str, torch.Tensor],
    mode: str,
    out_path: str | os.PathLike[str],
    report_path: str | os.PathLike[str] | None = None,
    pos_grids: Mapping[str, tuple[int, int]] | None = None,
    reinit: Collection[str] = (),
) -> dict[str, Any]:
    """Write the weights ``mode`` selects as a plain-tensor checkpoint for mmengine's ``load_from``.

    The file holds ``{"state_dict": {...}, "meta": {...}}`` with tensors and strings only, so mmengine
    reads it with ``weights_only=True``; the keys it lacks keep the model's initialisation (mmengine's
    non-strict load).

    Arguments:
        checkpoint: the pre-trained checkpoint.
        target: the fine-tuned model (or its state dict).
        mode: ``overall``, ``backbone`` or ``head``.
        out_path: the file to write.
        report_path: where to write the report as JSON (optional).
        pos_grids: see ``select_weights``.
        reinit: see ``select_weights``.

    Returns:
        The report (see ``init_model``).

    Raises:
        ValueError: ``mode`` is ``none`` (nothing to write) or unknown.
    """
    if mode == "none":
        raise ValueError("init none loads nothing: train without load_from instead")
    checkpoint = Path(checkpoint)
    target_state = target.state_dict() if isinstance(target, nn.Module) else target
    weights, report = select_weights(load_state_dict(checkpoint), target_state, mode, pos_grids, reinit)
    meta = {"alps_init": mode, "source": str(checkpoint)}
    with atomic_output(Path(out_path)) as tmp:
        torch.save({"state_dict": weights, "meta": meta}, tmp)
    return _finish_report(report, checkpoint, report_path)
