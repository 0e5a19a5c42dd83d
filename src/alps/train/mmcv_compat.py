"""Make mmsegmentation importable with ``mmcv-lite`` (no compiled ops), and nowhere else.

mmsegmentation 1.2.2 needs mmcv>=2.0.0rc4,<2.2.0. The full ``mmcv`` has no wheel for our torch and its
sdist compiles for ~14 minutes (after a C++ standard patch), so CPU installs use ``mmcv-lite``, which has
the Python parts but no ``mmcv._ext``. Four mmseg modules import ``mmcv.ops`` at import time
(``utils/mask_classification``, ``models/utils/point_sample``, ``decode_heads/san_head``,
``losses/focal_loss``), so ``import mmseg.models`` fails outright.

``ensure_mmcv_ops()`` installs, only when the real ``mmcv.ops`` cannot load, a substitute module with:
- ``point_sample``: pure PyTorch (``grid_sample``), numerically what mmcv's own pure-PyTorch version does;
- every other name: a placeholder that raises a clear error when *used* (Criss-Cross attention, PSA masks,
  deformable convolutions, the CUDA focal loss), naming the fix.
With a full mmcv build (GPU users), the real ``mmcv.ops`` imports and this module does nothing.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

import torch
import torch.nn.functional as F

_SUBSTITUTE_NAME = "mmcv.ops"


def point_sample(
    input: torch.Tensor, points: torch.Tensor, align_corners: bool = False, **kwargs: Any
) -> torch.Tensor:
    """Sample ``input`` (N, C, H, W) at ``points`` (N, P, 2) or (N, Hp, Wp, 2) in [0, 1] x [0, 1] coordinates.

    Returns:
        (N, C, P) or (N, C, Hp, Wp) features, as ``mmcv.ops.point_sample``.
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


class _CompiledOpPlaceholder:
    """Stands for a compiled mmcv op that mmcv-lite lacks; fails with the fix when used."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"mmcv.ops.{self._name} needs mmcv's compiled ops, which mmcv-lite does not have. Choose a model "
            "without it, or install the full mmcv 2.1.0 built for your torch/CUDA (see README, GPU install)."
        )

    def __repr__(self) -> str:
        return f"<mmcv-lite placeholder for mmcv.ops.{self._name}>"


def _substitute_module() -> types.ModuleType:
    module = types.ModuleType(_SUBSTITUTE_NAME, "ALPS substitute for mmcv.ops under mmcv-lite")
    module.point_sample = point_sample  # type: ignore[attr-defined]
    module.__alps_substitute__ = True  # type: ignore[attr-defined]

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _CompiledOpPlaceholder(name)

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return module


def has_compiled_mmcv_ops() -> bool:
    """Whether the real, compiled ``mmcv.ops`` imports."""
    existing = sys.modules.get(_SUBSTITUTE_NAME)
    if existing is not None:
        return not getattr(existing, "__alps_substitute__", False)
    try:
        importlib.import_module(_SUBSTITUTE_NAME)
    except (ImportError, OSError):
        sys.modules.pop(_SUBSTITUTE_NAME, None)
        return False
    return True


def ensure_mmcv_ops() -> bool:
    """Install the ``mmcv.ops`` substitute if the compiled ops are missing; idempotent.

    Returns:
        True if the substitute is in use, False if the real mmcv ops are available.
    """
    if has_compiled_mmcv_ops():
        return False
    import mmcv

    module = sys.modules.get(_SUBSTITUTE_NAME) or _substitute_module()
    sys.modules[_SUBSTITUTE_NAME] = module
    mmcv.ops = module  # type: ignore[attr-defined]
    return True


def import_mmseg() -> types.ModuleType:
    """Import ``mmseg`` with its models registered, after ``ensure_mmcv_ops``."""
    ensure_mmcv_ops()
    import mmseg
    import mmseg.models  # registers the model classes

    return mmseg
