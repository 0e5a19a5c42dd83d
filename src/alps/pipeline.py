"""The labeling stages as library functions: masks -> features -> cluster -> paint (-> PL dataset).

Each stage reads and writes the file sets of ``docs/architecture.md``; the ``alps`` CLI and the Snakemake
rules call these functions, and ``label`` runs them all in one process (the SAM embedding then goes from
the mask generator to the feature encoder in memory, so the image encoder runs once per image).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from alps import __version__
from alps.cluster import ClusterConfig, ClusterModel, batches_from_arrays, fit_kmeans
from alps.config import AREA_THRESHOLD
from alps.features.encoders import FeatureEncoder, build_encoder
from alps.features.shards import iter_feature_batches, read_feature_shard, write_feature_shard
from alps.io.atomic import atomic_directory, atomic_output, atomic_write_text, replace_directory
from alps.io.images import read_image
from alps.masks.base import MaskGenerator, MaskSet
from alps.masks.shards import read_mask_shard, write_mask_shard
from alps.paint import UNLABELED, colorize, paint_binary, paint_labels
from alps.pl_dataset import CLUSTER_LABELER, assemble_pl_dataset
from alps.sharding import ImageItem, images_from_source, select_shard, shard_count

log = logging.getLogger(__name__)

MASK_BACKENDS = ("sam", "felzenszwalb", "slic", "coco")


def seed_everything(seed: int) -> None:
    """Seed torch and make its CPU kernels deterministic (numpy RNGs are passed explicitly)."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


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

        return FelzenszwalbMaskGenerator(**params)
    if backend == "slic":
        from alps.masks.superpixel import SlicMaskGenerator

        return SlicMaskGenerator(**params)
    if backend == "coco":
        if coco_json is None:
            raise ValueError("the coco mask backend needs a COCO instances json (--coco-json)")
        from alps.masks.coco import CocoMaskSource

        return CocoMaskSource(coco_json)
    if backend == "sam":
        if sam_checkpoint is None:
            raise ValueError("the sam mask backend needs a checkpoint file (--sam-checkpoint)")
        from alps.masks.sam import SamConfig, SamMaskGenerator

        return SamMaskGenerator.from_checkpoint(
            sam_checkpoint, sam_model, device=device, config=SamConfig(**params), bf16=bf16
        )
    raise ValueError(f"unknown mask backend {backend!r}; choose one of {list(MASK_BACKENDS)}")


def _progress(items: Sequence[Any], desc: str) -> Any:
    return tqdm(items, desc=desc, unit="img", disable=None, mininterval=2.0)


def _concat_rows(rows: list[np.ndarray], width: int) -> np.ndarray:
    return np.concatenate(rows) if rows else np.zeros((0, width), np.float32)


def _feature_records(
    mask_sets: Sequence[MaskSet], vectors: Sequence[np.ndarray], encoder_name: str
) -> dict[str, Any]:
    dim = next((v.shape[1] for v in vectors if v.ndim == 2), 0)
    return {
        "vectors": _concat_rows(list(vectors), dim),
        "image_ids": np.array([m.image_id for m in mask_sets for _ in range(len(m))], dtype=str),
        "mask_ids": np.concatenate([np.arange(len(m), dtype=np.int32) for m in mask_sets])
        if mask_sets
        else np.zeros(0, np.int32),
        "area_fraction": np.concatenate([m.area_fraction for m in mask_sets]).astype(np.float32)
        if mask_sets
        else np.zeros(0, np.float32),
        "encoder": encoder_name,
    }


def run_masks(
    items: Sequence[ImageItem],
    generator: MaskGenerator,
    out_shard: str | os.PathLike[str],
    *,
    encoder: FeatureEncoder | None = None,
    features_out: str | os.PathLike[str] | None = None,
    bands: Sequence[int] | None = None,
) -> list[MaskSet]:
    """Generate the masks of ``items`` into one mask shard (and, optionally, their feature shard).

    With ``encoder`` and ``features_out``, features are computed while each image's masks (and SAM's
    embedding) are still in memory: this is how the ``sam`` encoder avoids a second encoder pass.

    Returns:
        The mask sets, in item order (embeddings dropped).
    """
    if (encoder is None) != (features_out is None):
        raise ValueError("pass both `encoder` and `features_out`, or neither")
    mask_sets: list[MaskSet] = []
    vectors: list[np.ndarray] = []
    for item in _progress(items, f"masks ({generator.name})"):
        image = read_image(item.path, bands=bands)
        mask_set = generator.generate(image, item.image_id)
        if encoder is not None:
            vectors.append(_features(encoder, image, mask_set))
        mask_set.embedding = None
        mask_sets.append(mask_set)
        log.info("%s: %d masks", item.image_id, len(mask_set))
    write_mask_shard(out_shard, mask_sets)
    if encoder is not None and features_out is not None:
        write_feature_shard(features_out, **_feature_records(mask_sets, vectors, encoder.name))
    return mask_sets


def _features(encoder: FeatureEncoder, image: np.ndarray, mask_set: MaskSet) -> np.ndarray:
    if len(mask_set) == 0:
        return np.zeros((0, encoder.feature_dim), np.float32)
    return encoder.features_for(image, mask_set)


def run_features(
    items: Sequence[ImageItem],
    mask_shard: str | os.PathLike[str],
    encoder: FeatureEncoder,
    out_shard: str | os.PathLike[str],
    *,
    bands: Sequence[int] | None = None,
) -> None:
    """Compute the PFL of every mask of a mask shard into a feature shard.

    Raises:
        ValueError: the mask shard holds an image that ``items`` lacks.
    """
    if encoder.name == "sam":
        raise ValueError(
            "the sam encoder reuses SAM's embedding from mask generation: compute sam features in the "
            "masks stage (`alps masks ... --encoder sam --features-out FILE`) or with `alps label`"
        )
    paths = {item.image_id: item.path for item in items}
    mask_sets = read_mask_shard(mask_shard)
    vectors = []
    for mask_set in _progress(mask_sets, f"features ({encoder.name})"):
        if mask_set.image_id not in paths:
            raise ValueError(f"{mask_shard}: image {mask_set.image_id!r} is not in the image source")
        image = read_image(paths[mask_set.image_id], bands=bands)
        vectors.append(_features(encoder, image, mask_set))
    write_feature_shard(out_shard, **_feature_records(mask_sets, vectors, encoder.name))


def run_cluster(
    feature_shards: Sequence[str | os.PathLike[str]],
    config: ClusterConfig,
    area_threshold: float,
    out_model: str | os.PathLike[str],
) -> ClusterModel:
    """Fit online k-means on the gated vectors of ``feature_shards`` and save the model."""

    def source(epoch: int) -> Any:
        return iter_feature_batches(
            list(feature_shards), config.batch_size, seed=config.seed + epoch, area_threshold=area_threshold
        )

    model = fit_kmeans(source, config)
    model.card.update(
        {"area_threshold": area_threshold, "feature_shards": [Path(p).name for p in feature_shards]}
    )
    model.save(out_model)
    return model


def split_per_image(mask_sets: Sequence[MaskSet], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Split per-mask ``rows`` (in shard order: image after image) into one block per image id."""
    bounds = np.cumsum([0] + [len(m) for m in mask_sets])
    if bounds[-1] != len(rows):
        raise ValueError(f"{len(rows)} rows for {bounds[-1]} masks")
    return {m.image_id: rows[bounds[i] : bounds[i + 1]] for i, m in enumerate(mask_sets)}


def assign_clusters(
    model: ClusterModel, vectors: np.ndarray, area_fraction: np.ndarray, area_threshold: float
) -> np.ndarray:
    """Cluster id of every mask, or -1 where the gate (area fraction > threshold) drops the mask."""
    ids = model.predict(vectors)
    return np.where(area_fraction <= area_threshold, ids, -1)


def _write_png(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def paint_mask_sets(
    mask_sets: Sequence[MaskSet],
    cluster_ids: dict[str, np.ndarray],
    out_dir: str | os.PathLike[str],
    *,
    k: int,
    binary_dir: str | os.PathLike[str] | None = None,
    labeler: str = CLUSTER_LABELER,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write ``labels/<id>.png``, ``vis/<id>.png`` (and the binary variant) for each image.

    Arguments:
        mask_sets: the images' masks.
        cluster_ids: per image id, one label id per mask (0..k-1; negative: not painted).
        out_dir: the painted shard folder.
        k: the number of label ids (clusters, or classes of a vocabulary).
        binary_dir: where to write the binary variant, if wanted.
        labeler: what made the label ids: ``"alps"`` (k-means clusters) or ``"samrs-star"`` (detector
            classes); ``assemble_pl_dataset`` copies it into the dataset card.
        classes: the names of label ids 0..k-1, where they have names (a detector's vocabulary).

    Returns:
        Statistics: images, per-cluster pixel histogram, coverage, labeler (and classes).
    """
    if classes is not None and len(classes) != k:
        raise ValueError(f"{len(classes)} class names for k={k} label ids")
    out = Path(out_dir)
    histogram = np.zeros(k, dtype=np.int64)
    covered = total = 0
    for mask_set in mask_sets:
        ids = cluster_ids[mask_set.image_id]
        label = paint_labels(mask_set, ids)
        _write_png(out / "labels" / f"{mask_set.image_id}.png", label)
        _write_png(out / "vis" / f"{mask_set.image_id}.png", colorize(label))
        if binary_dir is not None:
            binary = paint_binary(mask_set, ids >= 0)
            _write_png(Path(binary_dir) / f"{mask_set.image_id}.png", binary)
        counts = np.bincount(label.ravel(), minlength=256)
        histogram += counts[:k]
        covered += int(label.size - counts[UNLABELED])
        total += int(label.size)
    stats: dict[str, Any] = {
        "images": len(mask_sets),
        "k": k,
        "class_pixels": histogram.tolist(),
        "coverage": covered / total if total else 0.0,
        "labeler": labeler,
    }
    if classes is not None:
        stats["classes"] = list(classes)
    return stats


def run_paint(
    mask_shard: str | os.PathLike[str],
    feature_shard: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    area_threshold: float,
    *,
    binary: bool = False,
) -> dict[str, Any]:
    """Assign clusters to the masks of one shard and paint its pseudo-labels.

    Writes ``labels/``, ``vis/`` (and with ``binary``, ``binary/``) and ``paint_stats.json`` in ``out_dir``.
    """
    model = ClusterModel.load(model_path)
    mask_sets = read_mask_shard(mask_shard)
    features = read_feature_shard(feature_shard)
    expected = sum(len(m) for m in mask_sets)
    if len(features.vectors) != expected:
        raise ValueError(
            f"{feature_shard} holds {len(features.vectors)} vectors but {mask_shard} holds {expected} masks; "
            "the feature shard is stale: delete it and rerun"
        )
    ids = assign_clusters(model, features.vectors, features.area_fraction, area_threshold)
    per_image = split_per_image(mask_sets, ids)
    # Built beside out_dir and swapped in whole: a killed job leaves no half-painted shard that a rerun
    # (or Snakemake, which sees the folder) would take for a finished one.
    with atomic_directory(out_dir) as built:
        binary_dir = built / "binary" if binary else None
        stats = paint_mask_sets(mask_sets, per_image, built, k=model.k, binary_dir=binary_dir)
        atomic_write_text(built / "paint_stats.json", json.dumps(stats, indent=2) + "\n")
    return stats


def label(
    items: Sequence[ImageItem],
    out_dir: str | os.PathLike[str],
    generator: MaskGenerator,
    encoder: FeatureEncoder,
    cluster_config: ClusterConfig,
    *,
    area_threshold: float = AREA_THRESHOLD,
    bands: Sequence[int] | None = None,
    binary: bool = False,
) -> dict[str, Any]:
    """All labeling stages in one process (the ``alps label`` command).

    Writes ``masks.parquet``, ``features.npz``, ``kmeans.joblib`` (+ card), ``labels/<id>.png``,
    ``vis/<id>.png`` (and ``binary/<id>.png``) and ``label_card.json`` under ``out_dir``.

    Returns:
        The label card (K, counts, class pixel histogram, coverage).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cluster_config.seed)
    mask_sets = run_masks(
        items,
        generator,
        out / "masks.parquet",
        encoder=encoder,
        features_out=out / "features.npz",
        bands=bands,
    )
    features = read_feature_shard(out / "features.npz")
    gate = features.area_fraction <= area_threshold
    vectors = split_per_image(mask_sets, features.vectors)
    kept = split_per_image(mask_sets, gate)
    per_image_vectors = [vectors[m.image_id][kept[m.image_id]] for m in mask_sets]
    model = fit_kmeans(
        batches_from_arrays(per_image_vectors, cluster_config.batch_size, cluster_config.seed), cluster_config
    )
    model.card["area_threshold"] = area_threshold
    model.save(out / "kmeans.joblib")
    ids = assign_clusters(model, features.vectors, features.area_fraction, area_threshold)
    per_image = split_per_image(mask_sets, ids)
    # Paint into a staging folder and swap it in whole: a failed run leaves the previous labels intact, and
    # images removed since a previous run do not leave their old labels behind.
    staging = out / ".paint.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    stats = paint_mask_sets(
        mask_sets, per_image, staging, k=model.k, binary_dir=staging / "binary" if binary else None
    )
    for name in ("labels", "vis", "binary"):
        if (staging / name).exists():
            replace_directory(staging / name, out / name)
        elif (out / name).exists():
            shutil.rmtree(out / name)
    shutil.rmtree(staging)
    card = {
        **stats,
        "masks": len(features.vectors),
        "masks_kept": int(gate.sum()),
        "mask_backend": generator.name,
        "encoder": encoder.name,
        "area_threshold": area_threshold,
        "seed": cluster_config.seed,
        "alps_version": __version__,
    }
    atomic_write_text(out / "label_card.json", json.dumps(card, indent=2) + "\n")
    return card


__all__ = [
    "MASK_BACKENDS",
    "ImageItem",
    "assemble_pl_dataset",
    "assign_clusters",
    "build_encoder",
    "build_mask_generator",
    "images_from_source",
    "label",
    "paint_mask_sets",
    "run_cluster",
    "run_features",
    "run_masks",
    "run_paint",
    "select_shard",
    "shard_count",
]
