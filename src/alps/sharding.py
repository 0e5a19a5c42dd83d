"""Which images a stage works on: a folder or a manifest split, sorted by id and cut into shards.

Kept free of heavy imports (no torch): the Snakemake workflow imports it at parse time, on every job.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alps.io.images import list_images
from alps.io.manifest import read_manifest, resolve_paths


@dataclass(frozen=True)
class ImageItem:
    """One image to label: its id (file stem or manifest id) and its file."""

    image_id: str
    path: Path


def images_from_source(source: str | os.PathLike[str], split: str | None = None) -> list[ImageItem]:
    """List the images of a folder, or of a manifest CSV (optionally one split), sorted by id.

    Raises:
        FileNotFoundError / ValueError: the source does not exist, is empty, or has duplicate ids.
    """
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        df = resolve_paths(read_manifest(source), source.parent, must_exist=True)
        if split is not None:
            df = df[df["split"] == split]
        items = [ImageItem(str(i), Path(p)) for i, p in zip(df["image_id"], df["image_path"], strict=True)]
    else:
        items = [ImageItem(p.stem, p) for p in list_images(source)]
        seen: dict[str, Path] = {}
        for item in items:
            if item.image_id in seen:
                raise ValueError(
                    f"{source}: {seen[item.image_id].name} and {item.path.name} share the id "
                    f"{item.image_id!r}; rename one (outputs are named by file stem)"
                )
            seen[item.image_id] = item.path
    if not items:
        where = f"split {split!r} of {source}" if split else str(source)
        raise ValueError(f"no images found in {where}")
    return sorted(items, key=lambda item: item.image_id)


def _check_shard_size(shard_size: int) -> None:
    if isinstance(shard_size, bool) or not isinstance(shard_size, numbers.Integral) or shard_size < 1:
        raise ValueError(f"the shard size is a number of images, at least 1; got {shard_size!r}")


def shard_count(num_items: int, shard_size: int) -> int:
    """Number of shards of ``shard_size`` images (the last may be smaller).

    Raises:
        ValueError: ``shard_size`` is not a positive integer.
    """
    _check_shard_size(shard_size)
    return max(1, -(-num_items // shard_size))


def select_shard(items: Sequence[ImageItem], shard_index: int, shard_size: int) -> list[ImageItem]:
    """Shard ``shard_index`` (0-based): a contiguous run of ``shard_size`` items of the sorted list."""
    count = shard_count(len(items), shard_size)
    if not 0 <= shard_index < count:
        raise ValueError(f"shard index {shard_index} out of range: {len(items)} images make {count} shard(s)")
    return list(items[shard_index * shard_size : (shard_index + 1) * shard_size])
