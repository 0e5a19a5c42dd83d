"""Which images a stage works on: a folder or a manifest split, sorted by id and cut into shards.

Kept free of heavy imports (no torch): the Snakemake workflow imports it at parse time, on every job.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

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
        frame = resolve_paths(read_manifest(source), source.parent, must_exist=True)
        return _sorted(_manifest_items(frame, split), source, split)
    items = [ImageItem(p.stem, p) for p in list_images(source)]
    seen: dict[str, Path] = {}
    for item in items:
        if item.image_id in seen:
            raise ValueError(
                f"{source}: {seen[item.image_id].name} and {item.path.name} share the id "
                f"{item.image_id!r}; rename one (outputs are named by file stem)"
            )
        seen[item.image_id] = item.path
    return _sorted(items, source, split)


def _manifest_items(frame: pd.DataFrame, split: str | None) -> list[ImageItem]:
    """The images of a resolved manifest (``resolve_paths``), of one split or all."""
    if split is not None:
        frame = frame[frame["split"] == split]
    return [ImageItem(str(i), Path(p)) for i, p in zip(frame["image_id"], frame["image_path"], strict=True)]


def _sorted(items: list[ImageItem], source: Path, split: str | None) -> list[ImageItem]:
    if not items:
        where = f"split {split!r} of {source}" if split else str(source)
        raise ValueError(f"no images found in {where}")
    return sorted(items, key=lambda item: item.image_id)


def raw_files(raw_dir: str | os.PathLike[str] | None) -> list[str]:
    """Every file under a dataset's raw folder (links followed, hidden files left out), sorted; the
    workflow's ``prepare`` inputs, so that an added, removed or changed raw image reruns the conversion."""
    if not raw_dir:
        return []
    return sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(raw_dir, followlinks=True)
        for name in names
        if not name.startswith(".")
    )


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


_MANIFEST_SHARDS: dict[tuple[str, int, str | None, int, bool], int] = {}
_MANIFEST_FRAMES: dict[tuple[str, int, bool], pd.DataFrame] = {}


def _manifest_frame(manifest: str | os.PathLike[str], *, resolved: bool) -> pd.DataFrame:
    """A manifest as ``read_manifest`` returns it (``resolved``: then ``resolve_paths(must_exist=True)``),
    read and checked once per version (path and modification time) in this process."""
    key = (str(manifest), os.stat(manifest).st_mtime_ns, resolved)
    if key not in _MANIFEST_FRAMES:
        if resolved:
            frame = _manifest_frame(manifest, resolved=False)
            _MANIFEST_FRAMES[key] = resolve_paths(frame, Path(manifest).parent, must_exist=True)
        else:
            _MANIFEST_FRAMES[key] = read_manifest(manifest)
    return _MANIFEST_FRAMES[key]


def manifest_shard_count(
    manifest: str | os.PathLike[str], split: str, shard_size: int, *, required: bool = False
) -> int:
    """Number of shards of one split of a manifest; 0 where the split has no images.

    The workflow asks for every job's inputs, so a manifest (up to 100k images) is read and checked once
    per version, whichever splits are asked for: the count is kept by path, modification time, split and
    shard size.

    Arguments:
        manifest: the manifest CSV.
        split: the split.
        shard_size: images per shard.
        required: the split must have images (the fit split); otherwise an absent split (ATLAS has no
            val) has no shards.

    Raises:
        ValueError / FileNotFoundError: a listed image is missing, two share an id, or a required split
            is empty (as ``images_from_source`` raises them).
    """
    key = (str(manifest), os.stat(manifest).st_mtime_ns, split, shard_size, required)
    if key not in _MANIFEST_SHARDS:
        count = int((_manifest_frame(manifest, resolved=False)["split"] == split).sum())
        if count or required:
            # The images exist and have distinct ids: what images_from_source checks.
            items = _manifest_items(_manifest_frame(manifest, resolved=True), split)
            count = len(_sorted(items, Path(manifest), split))
        _MANIFEST_SHARDS[key] = shard_count(count, shard_size) if count else 0
    return _MANIFEST_SHARDS[key]
