"""Checkpoints read with ``torch.load(weights_only=True)`` only, and written so that it needs no allow-list.

torch's ``weights_only`` unpickler rebuilds tensors and plain containers and refuses every other global.
mmengine's checkpoints hold two kinds of objects beyond that, both in the message hub:

* ``mmengine.logging.HistoryBuffer`` (the logged loss/lr history), whose pickle calls ``getattr`` to
  restore bound methods;
* numpy arrays and scalars (the buffers' arrays, ``runtime_info``'s ETA).

``PlainHistoryHook`` (in every training config's ``custom_hooks``) turns both into plain Python data (lists,
floats, ints) when a checkpoint is saved, and rebuilds the buffers when one is loaded (resume): every
checkpoint we write loads with stock ``torch.load(path, weights_only=True)`` and no allow-list, so stock
mmsegmentation (``mmseg.apis.init_model``) and any torch tool read it as it is. Reading still allows numpy
data (``SAFE_GLOBALS``, by name), for checkpoints of earlier versions and of other tools.

A file that still needs another global (a foreign pickle, a checkpoint written by plain mmseg tools) fails
with ``UntrustedCheckpointError``, which names the file and the refused global: it is never unpickled.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

_BUFFER_KEY = "__alps_history_buffer__"


def _numpy_globals() -> list[Any]:
    multiarray = getattr(np, "_core", None) or np.core
    dtypes = [
        type(np.dtype(t))
        for t in ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")
    ]
    return [np.ndarray, np.dtype, multiarray.multiarray._reconstruct, multiarray.multiarray.scalar, *dtypes]


SAFE_GLOBALS: tuple[Any, ...] = tuple(_numpy_globals())
"""The only globals a checkpoint may name beyond torch's own: numpy arrays, dtypes and scalars."""


class UntrustedCheckpointError(ValueError):
    """A checkpoint holds more than weights and plain data, so it is not unpickled."""


@contextlib.contextmanager
def numpy_safe_globals() -> Iterator[None]:
    """Let ``torch.load(weights_only=True)`` (also mmengine's, during resume) rebuild numpy data."""
    with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
        yield


def load_checkpoint(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` a checkpoint onto the CPU with ``weights_only=True`` (numpy data allowed).

    Raises:
        FileNotFoundError: no such file.
        UntrustedCheckpointError: the file is not plain weights (it needs an unpickler that can run code),
            or is not a torch checkpoint at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with numpy_safe_globals():
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line), "")
        if not detail:
            raise UntrustedCheckpointError(
                f"{path} is not a torch checkpoint ({str(error).splitlines()[0]})"
            ) from None
        raise UntrustedCheckpointError(
            f"{path} is not plain weights: it needs an object that torch.load(weights_only=True) refuses "
            f"to rebuild ({detail}). It is not unpickled, since a pickle can run "
            "arbitrary code. Use a checkpoint of tensors (a state dict), e.g. re-saved with "
            "torch.save({'state_dict': model.state_dict()}, path) where you trust its source."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise UntrustedCheckpointError(
            f"{path} is not a torch checkpoint ({str(error).splitlines()[0] if str(error) else error!r})"
        ) from None


def plain_data(value: Any) -> Any:
    """``value`` with every ``HistoryBuffer`` as a marked dict of lists and every numpy value as Python's."""
    if isinstance(value, HistoryBuffer):
        return {
            _BUFFER_KEY: {
                "log_history": np.asarray(value._log_history).tolist(),
                "count_history": np.asarray(value._count_history).tolist(),
                "max_length": int(value.max_length),
            }
        }
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((key, plain_data(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(plain_data(item) for item in value)
    return value


def _buffer(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {_BUFFER_KEY}:
        state = value[_BUFFER_KEY]
        return HistoryBuffer(
            list(state["log_history"]), list(state["count_history"]), int(state["max_length"])
        )
    return value


@HOOKS.register_module(force=True)
class PlainHistoryHook(Hook):
    """Saves the message hub and meta data as plain Python data, and rebuilds the history buffers on load."""

    priority = "VERY_HIGH"

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        for key in ("message_hub", "meta"):
            if key in checkpoint:
                checkpoint[key] = plain_data(checkpoint[key])

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        scalars = checkpoint.get("message_hub", {}).get("log_scalars")
        if isinstance(scalars, dict):
            for key in list(scalars):
                scalars[key] = _buffer(scalars[key])


def fetch_pretrained(model: str, location: str) -> Path:
    """The local file of a model's ImageNet backbone checkpoint, downloaded first if it is a URL.

    Called before training, so that a missing or unreachable checkpoint stops the job before any work.
    URLs (and mmengine's ``open-mmlab://`` / ``torchvision://`` names) are downloaded once into torch's hub
    cache (``$TORCH_HOME/hub/checkpoints``, where mmengine would put them); the file must hold plain weights.

    Arguments:
        model: the model it initialises (named in errors).
        location: a URL, an mmengine checkpoint name, or a local path.

    Returns:
        The local checkpoint file.

    Raises:
        FileNotFoundError: a local path that does not exist.
        RuntimeError: a URL that cannot be fetched.
        UntrustedCheckpointError: the file is not plain weights.
    """
    from alps.train.configs import checkpoint_url

    url = checkpoint_url(location)
    if url.startswith(("http://", "https://")):
        from urllib.parse import urlparse

        target = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                # Written beside the target and renamed by torch: a failed download leaves no file.
                torch.hub.download_url_to_file(url, str(target), progress=False)
            except (OSError, ValueError) as error:
                raise RuntimeError(
                    f"{model}: the ImageNet backbone checkpoint {location} cannot be fetched ({error}). "
                    f"Download it where this machine can, and set training.pretrained_backbones.{model} "
                    "(alps --pretrained) to the local file."
                ) from None
        path = target
    else:
        path = Path(url).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{model}: the ImageNet backbone checkpoint {location} does not exist. Download it (config/"
                f"README.md, training.pretrained_backbones) or set training.pretrained_backbones.{model} "
                "to where it lies."
            )
    load_checkpoint(path)  # plain weights only, before mmengine loads it during model initialisation
    return path
