"""The mask backends by name: ``build_mask_generator("felzenszwalb" | "slic" | "coco" | "sam", ...)``.

Each backend is imported only when asked for (SAM pulls in torch and segment_anything).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from alps.masks.base import MaskGenerator

MASK_BACKENDS = ("sam", "felzenszwalb", "slic", "coco")


def build_mask_generator(
    backend: str,
    params: dict[str, Any] | None = None,
    *,
    coco_json: str | os.PathLike[str] | None = None,
    sam_checkpoint: str | os.PathLike[str] | None = None,
    sam_model: str = "vit_h",
    device: str = "cpu",
    bf16: bool = False,
) -> MaskGenerator:
    """Create a mask backend by name.

    Arguments:
        backend: ``sam``, ``felzenszwalb``, ``slic`` or ``coco``.
        params: backend parameters (AMG parameters for ``sam``; scale/sigma/min_size for
            ``felzenszwalb``; n_segments/compactness/sigma for ``slic``).
        coco_json: the COCO instances file, for ``coco``.
        sam_checkpoint: SAM weights, for ``sam``.
        sam_model: ``vit_h``, ``vit_l`` or ``vit_b`` (``vit_tiny`` for tests).
        device: torch device for SAM.
        bf16: bfloat16 autocast of SAM's image encoder (CUDA only).

    Raises:
        ValueError: unknown backend or a missing backend argument.
    """
    params = dict(params or {})
    if backend == "felzenszwalb":
        from alps.masks.superpixel import FelzenszwalbMaskGenerator

        return FelzenszwalbMaskGenerator(**_known_params(FelzenszwalbMaskGenerator, params, backend))
    if backend == "slic":
        from alps.masks.superpixel import SlicMaskGenerator

        return SlicMaskGenerator(**_known_params(SlicMaskGenerator, params, backend))
    if backend == "coco":
        if coco_json is None:
            raise ValueError("the coco mask backend needs a COCO instances json (--coco-json)")
        from alps.masks.coco import CocoMaskSource

        return CocoMaskSource(coco_json)
    if backend == "sam":
        if sam_checkpoint is None:
            raise ValueError("the sam mask backend needs a checkpoint file (--sam-checkpoint)")
        from alps.masks.sam import SamConfig, SamMaskGenerator

        config = SamConfig(**_known_params(SamConfig, params, backend))
        return SamMaskGenerator.from_checkpoint(
            sam_checkpoint, sam_model, device=device, config=config, bf16=bf16
        )
    raise ValueError(f"unknown mask backend {backend!r}; choose one of {list(MASK_BACKENDS)}")


def _known_params(cls: Any, params: dict[str, Any], backend: str) -> dict[str, Any]:
    """``params`` if they are all fields of the dataclass ``cls`` with values of their type, else a
    ValueError naming the parameter (and the valid ones)."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "name"}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(f"unknown {backend} mask parameter(s) {unknown}; valid: {', '.join(fields)}")
    for name, value in params.items():
        wanted = type(fields[name].default)
        if not _fits(value, wanted):
            kind = "a whole number" if wanted is int else f"a finite {wanted.__name__}"
            raise ValueError(f"{backend} mask parameter {name!r} must be {kind}, got {value!r}")
    return params


def _fits(value: Any, wanted: type) -> bool:
    """Whether a JSON value can stand for a default of type ``wanted`` (a number is not a bool)."""
    if wanted is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if wanted is int:
        return isinstance(value, int)
    if wanted is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, wanted)
