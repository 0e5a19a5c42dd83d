"""What a label card records of how ``alps label`` ran: bands, the mask and encoder settings, the k-means
config, the tiling.

Generators and encoders are described by their public, plain settings (dataclass fields, else public
attributes), so the card stays JSON and never holds a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from alps.cluster import ClusterConfig
from alps.geo.scene import SceneOptions


def _parameters(obj: Any) -> dict[str, Any]:
    """The public settings of a generator/encoder: dataclass fields, else plain public attributes."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        values = dataclasses.asdict(obj)
    else:
        values = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
        config = values.pop("config", None)
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            values.update(dataclasses.asdict(config))
    plain = (str, int, float, bool, type(None))
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, plain):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, plain) for v in value):
            out[key] = list(value)
        elif type(value).__name__ == "device":
            out[key] = str(value)
    return out


def run_parameters(
    generator: Any,
    encoder: Any,
    cluster_config: ClusterConfig,
    bands: Sequence[int] | None,
    options: SceneOptions | None,
) -> dict[str, Any]:
    """What the label card records of how ``alps label`` ran: bands, mask, encoder, cluster, tiling."""
    options = options or SceneOptions()
    cluster = dataclasses.asdict(cluster_config)
    cluster["k_range"] = list(cluster["k_range"])
    return {
        "bands": list(bands) if bands is not None else None,
        "mask_params": _parameters(generator),
        "encoder_params": _parameters(encoder),
        "cluster_params": cluster,
        "tiling": {
            "tile_size": options.tile_size,
            "overlap": options.overlap,
            "mosaic": "nearest tile centre",
        },
    }
