"""Feature shards: the pseudo feature labels (PFLs) of many masks, stored for the clustering stage.

One shard is one ``.npz`` file (no pickle: ``np.load(path, allow_pickle=False)`` reads it) holding:

=================  ===========  ===========================================================
array              dtype        meaning
=================  ===========  ===========================================================
``vectors``        float16      ``(N, D)`` PFLs
``image_ids``      unicode      ``(N,)`` id of each mask's image
``mask_ids``       int32        ``(N,)`` index of the mask in its image's mask set
``area_fraction``  float32      ``(N,)`` the mask's share of its image (the paper's Eq. 2)
``encoder``        unicode      0-d: name of the encoder that produced the vectors
``feature_dim``    int64        0-d: ``D``
=================  ===========  ===========================================================

float16 halves the disk and I/O of the clustering stage's many passes; k-means does not need more than
its ~3 significant digits. Its range ends at ±65504: larger magnitudes are clipped to that bound (with a
warning) rather than stored as ±inf, which would poison every centroid they touch. The encoders here
never come near it (EfficientNet-Lite's activations are ReLU6-bounded, SAM's embedding is O(1), and
per-scale L2-normalised vectors are at most 1); non-finite input is an error.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from alps.cluster import FeatureBlock
from alps.io.atomic import atomic_output
from alps.limits import check_archive

FLOAT16_MAX = float(np.finfo(np.float16).max)
_ARRAYS = ("vectors", "image_ids", "mask_ids", "area_fraction", "encoder", "feature_dim")


@dataclass(frozen=True)
class FeatureShard:
    """The contents of one feature shard (see the module docstring for the format).

    Attributes:
        vectors: ``(N, D)`` float16 PFLs.
        image_ids: ``(N,)`` unicode image ids.
        mask_ids: ``(N,)`` int32 mask indices within their image.
        area_fraction: ``(N,)`` float32 mask areas as a share of their image.
        encoder: the encoder's name.
        feature_dim: ``D``.
    """

    vectors: NDArray[np.float16]
    image_ids: NDArray[np.str_]
    mask_ids: NDArray[np.int32]
    area_fraction: NDArray[np.float32]
    encoder: str
    feature_dim: int

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def write_feature_shard(
    path: str | os.PathLike[str],
    vectors: ArrayLike,
    image_ids: str | Sequence[str] | NDArray[np.str_],
    mask_ids: ArrayLike,
    area_fraction: ArrayLike,
    encoder: str,
) -> Path:
    """Write one feature shard atomically (a reader never sees a partial file).

    Arguments:
        path: the ``.npz`` file to write (written through a file handle, so numpy adds no suffix).
        vectors: ``(N, D)`` finite floats; stored as float16, magnitudes above 65504 clipped (warned).
        image_ids: one id per row, or a single id for every row.
        mask_ids: ``(N,)`` integer index of each mask in its image's mask set.
        area_fraction: ``(N,)`` each mask's share of its image, in ``[0, 1]``.
        encoder: the encoder's name (``FeatureEncoder.name``).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: inconsistent lengths, wrong dimensions, non-finite vectors, mask ids outside int32,
            or area fractions outside ``[0, 1]``.
    """
    path = Path(path)
    vec = np.asarray(vectors)
    if vec.ndim != 2 or not np.issubdtype(vec.dtype, np.number):
        raise ValueError(f"{path}: vectors must be a numeric (N, D) array, got {vec.dtype} {vec.shape}")
    n, dim = vec.shape
    if not np.isfinite(vec).all():
        raise ValueError(f"{path}: vectors contain NaN or infinity")
    too_big = np.abs(vec) > FLOAT16_MAX
    if too_big.any():
        warnings.warn(
            f"{path}: {int(too_big.sum())} vector value(s) exceed the float16 range; "
            f"clipped to ±{FLOAT16_MAX:g}",
            stacklevel=2,
        )
        vec = np.clip(vec, -FLOAT16_MAX, FLOAT16_MAX)
    vec16 = vec.astype(np.float16)

    ids = np.full(n, image_ids) if isinstance(image_ids, str) else np.asarray(image_ids)
    if n == 0 and ids.size == 0:
        ids = np.zeros(0, dtype="<U1")
    if ids.dtype.kind != "U":
        raise ValueError(f"{path}: image_ids must be strings, got dtype {ids.dtype}")
    masks = np.asarray(mask_ids)
    if masks.size and not np.issubdtype(masks.dtype, np.integer):
        raise ValueError(f"{path}: mask_ids must be integers, got dtype {masks.dtype}")
    if masks.size and (masks.min() < np.iinfo(np.int32).min or masks.max() > np.iinfo(np.int32).max):
        raise ValueError(f"{path}: mask_ids do not fit in int32")
    area = np.asarray(area_fraction, dtype=np.float64)
    for name, arr in (("image_ids", ids), ("mask_ids", masks), ("area_fraction", area)):
        if arr.shape != (n,):
            raise ValueError(f"{path}: {name} must have shape ({n},) to match vectors, got {arr.shape}")
    if n and not (np.isfinite(area).all() and area.min() >= 0 and area.max() <= 1):
        raise ValueError(f"{path}: area_fraction must lie in [0, 1]")

    arrays = {
        "vectors": vec16,
        "image_ids": ids,
        "mask_ids": masks.astype(np.int32),
        "area_fraction": area.astype(np.float32),
        "encoder": np.asarray(str(encoder), dtype=np.str_),
        "feature_dim": np.asarray(dim, dtype=np.int64),
    }
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def read_feature_shard(path: str | os.PathLike[str]) -> FeatureShard:
    """Read and validate one feature shard.

    Arguments:
        path: a file written by ``write_feature_shard``.

    Returns:
        The shard, fully loaded in memory.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable ``.npz``, a pickled array, a missing array, or an array of the wrong
            dtype or shape; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such feature shard")
    check_archive(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError("not an .npz archive")
        with loaded as npz:
            missing = [name for name in _ARRAYS if name not in npz.files]
            if missing:
                raise ValueError(f"missing array(s) {missing}")
            data = {name: npz[name] for name in _ARRAYS}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path}: not a valid feature shard ({exc})") from exc

    def fail(message: str) -> ValueError:
        return ValueError(f"{path}: not a valid feature shard ({message})")

    vectors = data["vectors"]
    if vectors.dtype != np.float16 or vectors.ndim != 2:
        raise fail(f"vectors must be a float16 (N, D) array, got {vectors.dtype} {vectors.shape}")
    n, dim = vectors.shape
    encoder, feature_dim = data["encoder"], data["feature_dim"]
    if encoder.shape != () or encoder.dtype.kind != "U":
        raise fail(f"encoder must be a 0-d string, got {encoder.dtype} {encoder.shape}")
    if feature_dim.shape != () or not np.issubdtype(feature_dim.dtype, np.integer):
        raise fail(f"feature_dim must be a 0-d integer, got {feature_dim.dtype} {feature_dim.shape}")
    if int(feature_dim) != dim:
        raise fail(f"feature_dim {int(feature_dim)} does not match vectors of width {dim}")
    expected = {"image_ids": "U", "mask_ids": np.dtype(np.int32), "area_fraction": np.dtype(np.float32)}
    for name, kind in expected.items():
        arr = data[name]
        ok_dtype = arr.dtype.kind == kind if isinstance(kind, str) else arr.dtype == kind
        if not ok_dtype or arr.shape != (n,):
            want = "unicode" if isinstance(kind, str) else kind
            raise fail(f"{name} must be {want} of shape ({n},), got {arr.dtype} {arr.shape}")
    if not np.isfinite(vectors).all():
        # NaN rows would all be assigned cluster 0 (every distance NaN): refused, never clustered.
        rows = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        raise fail(f"{len(rows)} vector(s) hold NaN or infinity, the first in row {int(rows[0])}")
    area = data["area_fraction"]
    if n and not (np.isfinite(area).all() and area.min() >= 0 and area.max() <= 1):
        raise fail("area_fraction must lie in [0, 1]")
    return FeatureShard(
        vectors=vectors,
        image_ids=data["image_ids"],
        mask_ids=data["mask_ids"],
        area_fraction=data["area_fraction"],
        encoder=str(encoder),
        feature_dim=dim,
    )


def iter_feature_blocks(
    paths: Sequence[str | os.PathLike[str]],
    area_threshold: float | None = None,
    *,
    block_size: int | None = None,
) -> Iterator[FeatureBlock]:
    """Stream the gated vectors of many shards with their ids, one shard in memory at a time.

    This is the one stream the clustering reads, in ``alps cluster``, in ``alps label`` and in the
    workflow. Its order (shards sorted by path, rows in shard order) does not matter to the fit, which is
    order-invariant (``alps.cluster``); nothing here is random.

    Arguments:
        paths: feature shard files (all from the same encoder).
        area_threshold: the filtering gate of the paper's Eqs. 2-3: only masks with
            ``area_fraction <= area_threshold`` are kept; ``None`` keeps all.
        block_size: cut each shard into blocks of at most this many rows (``None``: one block per shard).

    Returns:
        An iterator of ``FeatureBlock`` (float16 vectors, image ids, mask ids).

    Raises:
        ValueError: a bad block size or threshold, an invalid shard, or shards whose encoder or feature
            size differ from the first shard's.
    """
    if block_size is not None and block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    if area_threshold is not None and not np.isfinite(area_threshold):
        raise ValueError(f"area_threshold must be a finite number or None, got {area_threshold}")
    first: FeatureShard | None = None
    first_path: Path | None = None
    for path in sorted((Path(p) for p in paths), key=str):
        shard = read_feature_shard(path)
        if first is None:
            first, first_path = shard, path
        elif (shard.encoder, shard.feature_dim) != (first.encoder, first.feature_dim):
            raise ValueError(
                f"{path}: encoder {shard.encoder!r} with {shard.feature_dim} features differs from "
                f"{first_path}: {first.encoder!r} with {first.feature_dim} features"
            )
        rows = np.arange(len(shard))
        if area_threshold is not None:
            rows = rows[shard.area_fraction <= area_threshold]
        step = max(len(rows), 1) if block_size is None else block_size
        for start in range(0, len(rows), step):
            chosen = rows[start : start + step]
            yield FeatureBlock(shard.vectors[chosen], shard.image_ids[chosen], shard.mask_ids[chosen])
