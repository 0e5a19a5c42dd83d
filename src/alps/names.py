"""The names each registry accepts, importable without numpy, torch or pandas: the CLI's choice lists.

The registries themselves import heavy libraries (the encoders torch, the converters pandas and rasterio),
which every ``alps --help`` would pay for; they are keyed by these names, and a test keeps each registry
and its names in step (tests/cli/test_defaults.py).
"""

from __future__ import annotations

MASK_BACKENDS: tuple[str, ...] = ("sam", "felzenszwalb", "slic", "coco")
"""Mask backends of ``alps.masks.registry.build_mask_generator``."""

SAM_MODELS: tuple[str, ...] = ("vit_h", "vit_l", "vit_b", "vit_tiny")
"""SAM architectures of ``alps.masks.sam.SAM_ARCHITECTURES`` (``vit_tiny`` for tests: no released weights)."""

ENCODERS: tuple[str, ...] = ("efficientnet-lite0", "sam")
"""Feature encoders of ``alps.features.encoders.build_encoder``."""

CONVERTERS: tuple[str, ...] = ("demo", "isaid", "potsdam", "samrs", "atlas", "folder")
"""Dataset converters of ``alps.datasets.CONVERTERS`` (``alps prepare``)."""

DATASET_KINDS: tuple[str, ...] = ("isaid", "potsdam", "pl", "folder", "medical")
"""Dataset kinds of ``alps.train.configs.dataset_spec`` (``alps finetune --dataset``)."""
