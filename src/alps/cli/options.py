"""What several ``alps`` commands share: argument types, option groups and the help format.

Defaults of stage settings come from the stage's own definition (``ClusterConfig``, ``alps.train.runtime``,
``alps.config``) and choice lists from ``alps.names``, so the command line cannot drift from the code it
calls (tests/cli/test_defaults.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from alps import limits
from alps.cluster_config import MAX_K, ClusterConfig
from alps.defaults import AREA_THRESHOLD, SHARD_SIZE
from alps.names import ENCODERS, MASK_BACKENDS, SAM_MODELS

CLUSTER_DEFAULTS = ClusterConfig()
"""The defaults of the clustering options."""


def json_object(text: str) -> dict[str, Any]:
    """A JSON object argument (``--mask-params``, ``--options``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object such as '{\"scale\": 200}'")
    return value


def bands(text: str) -> list[int]:
    """``--bands``: 1 or 3 band numbers, counted from 1."""
    try:
        numbers = [int(b) for b in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bands must be comma-separated band numbers, got {text!r}") from exc
    if len(numbers) not in (1, 3) or min(numbers) < 1:
        raise argparse.ArgumentTypeError("give 1 or 3 band numbers, counted from 1 (e.g. 4,3,2)")
    return numbers


def k_value(text: str) -> int | None:
    """``--k``: a number of pseudo-classes, or ``auto`` (None: estimated)."""
    if text.lower() in ("auto", "none"):
        return None
    value = int(text)
    if not 2 <= value <= MAX_K:
        raise argparse.ArgumentTypeError(f"k must be between 2 and 255 (255 marks unlabeled), got {value}")
    return value


def fraction(text: str) -> float:
    """``--area-threshold``: a fraction in (0, 1]."""
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"the area threshold is a fraction in (0, 1], got {value}")
    return value


def layers(text: str) -> tuple[str, ...]:
    """``--encoder-layers``: comma-separated stage names."""
    return tuple(layer.strip() for layer in text.split(",") if layer.strip())


def positive(text: str) -> int:
    """A positive whole number (``_`` separators allowed: 1_000_000)."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def add_mask_options(parser: argparse.ArgumentParser) -> None:
    """The mask backend and its settings (``alps masks``, ``alps label``)."""
    group = parser.add_argument_group("masks")
    group.add_argument(
        "--masks",
        "--backend",
        dest="backend",
        default="felzenszwalb",
        choices=MASK_BACKENDS,
        help="mask backend",
    )
    group.add_argument(
        "--mask-params",
        type=json_object,
        default={},
        help="backend parameters as JSON (AMG parameters for sam)",
    )
    group.add_argument("--coco-json", type=Path, help="COCO instances file (coco backend)")
    group.add_argument("--sam-checkpoint", type=Path, help="SAM weights (sam backend)")
    group.add_argument("--sam-model", default="vit_h", choices=SAM_MODELS)
    group.add_argument("--bf16", action="store_true", help="bfloat16 autocast of SAM's encoder (CUDA)")
    group.add_argument("--device", default="cpu", help="torch device for SAM and the encoder")
    group.add_argument("--bands", type=bands, help="1-based bands used as RGB, e.g. 4,3,2")


def add_encoder_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    """The feature encoder (``alps masks``, ``alps features``, ``alps label``)."""
    group = parser.add_argument_group("features")
    group.add_argument(
        "--encoder",
        default=default,
        choices=ENCODERS,
        help="feature encoder for the PFL",
    )
    group.add_argument(
        "--encoder-layers",
        type=layers,
        help="efficientnet-lite0 stages pooled and concatenated, e.g. stage5,stage7 (the default)",
    )
    group.add_argument(
        "--max-side", type=int, help="efficientnet-lite0: shrink larger images to this longest side first"
    )


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """The k-means settings (``ClusterConfig``) and the filtering gate (``alps cluster``, ``alps label``)."""
    low, high = CLUSTER_DEFAULTS.k_range
    group = parser.add_argument_group("clustering")
    group.add_argument(
        "--k",
        type=k_value,
        default=CLUSTER_DEFAULTS.k,
        help="number of pseudo-classes, or 'auto' to pick it by BIC (--k-range)",
    )
    group.add_argument(
        "--k-range",
        type=int,
        nargs=2,
        default=CLUSTER_DEFAULTS.k_range,
        metavar=("MIN", "MAX"),
        help=f"candidate K values for --k auto (inclusive; default: {low} {high})",
    )
    group.add_argument(
        "--area-threshold",
        type=fraction,
        default=AREA_THRESHOLD,
        help="filtering gate: drop masks covering more than this fraction of the image",
    )
    group.add_argument("--seed", type=int, default=CLUSTER_DEFAULTS.seed)
    group.add_argument("--batch-size", type=int, default=CLUSTER_DEFAULTS.batch_size)
    group.add_argument(
        "--epochs", type=int, default=CLUSTER_DEFAULTS.epochs, help="Lloyd passes over all vectors"
    )
    group.add_argument("--init-sample", type=int, default=CLUSTER_DEFAULTS.init_sample)
    group.add_argument("--normalize", choices=["none", "l2"], default=CLUSTER_DEFAULTS.normalize)
    group.add_argument("--pca-dim", type=int, help="cluster on this many principal components (default: all)")


def add_source(parser: argparse.ArgumentParser) -> None:
    """The images a shard command reads (``alps masks``, ``alps features``)."""
    parser.add_argument("source", type=Path, help="a folder of images or a manifest CSV")
    parser.add_argument("--split", help="manifest split to use (train/val/test)")
    parser.add_argument("--shard-index", type=int, help="0-based shard of the sorted images")
    parser.add_argument("--shard-size", type=int, default=SHARD_SIZE, help="images per shard")
    parser.add_argument("--seed", type=int, default=0)


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except ``None`` (no default) and where the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or "default" in text:
            return text
        return super()._get_help_string(action) or text


def finish(parser: argparse.ArgumentParser) -> None:
    """What every sub-command has: the input size limits (``alps.limits``, so that a workflow can pass
    them to any command) and a --help that shows each option's default."""
    group = parser.add_argument_group("input limits")
    group.add_argument(
        "--max-pixels",
        type=positive,
        help=f"largest image, label or scene read, in pixels (default: from {limits.PIXELS_ENV}, "
        "else what fits this machine's memory)",
    )
    group.add_argument(
        "--max-tiles",
        type=positive,
        help=f"most tiles of one scene in `alps label` (default: {limits.TILES_ENV}, else "
        f"{limits.DEFAULT_MAX_TILES})",
    )
    parser.formatter_class = DefaultsFormatter
    for action in parser._actions:
        if action.help is None and action.option_strings and action.default is not None:
            action.help = "default: %(default)s"
