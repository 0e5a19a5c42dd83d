"""The labeling stages as library functions: masks -> features -> cluster -> paint (-> PL dataset).

Each stage reads and writes the file sets of ``docs/architecture.md``; the ``alps`` CLI and the Snakemake
rules call these functions, and ``label`` runs them all in one process (the SAM embedding then goes from
the mask generator to the feature encoder in memory, so the image encoder runs once per image).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from alps import __version__
from alps.classmap import CLASS_MAP_COPY, CLASSES_JSON
from alps.cluster import DEFAULT_MODEL_NAME, ClusterConfig, ClusterModel, fit_kmeans
from alps.config import AREA_THRESHOLD
from alps.features.encoders import ENCODER_THREADS, FeatureEncoder, build_encoder
from alps.features.shards import FeatureShard, iter_feature_blocks, read_feature_shard, write_feature_shard
from alps.geo.scene import (
    WHOLE_IMAGE_TILE,
    Scene,
    SceneOptions,
    iter_tiles_with_valid,
    open_scenes,
    paint_scenes,
    run_parameters,
)
from alps.io.atomic import atomic_write_text
from alps.io.images import ImageReadError, read_image, read_image_with_valid
from alps.io.outputs import output_folder
from alps.label_folder import label_output_set, repair_label_output
from alps.masks.base import MaskGenerator, MaskSet, encode_masks
from alps.masks.registry import MASK_BACKENDS, build_mask_generator
from alps.masks.shards import read_mask_shard, write_mask_shard
from alps.paint import paint_mask_sets
from alps.pl_dataset import assemble_pl_dataset
from alps.progress import track
from alps.sharding import ImageItem, images_from_source, select_shard, shard_count

log = logging.getLogger(__name__)


ON_ERROR_CHOICES = ("fail", "skip")
"""What ``label`` does with an image it cannot read: stop naming it, or leave it out and report it."""

# Masks are restricted to valid pixels this many pixels at a time (bool bytes: 128 MB).
_RESTRICT_PIXELS = 1 << 27


def seed_everything(seed: int) -> None:
    """Seed torch and make its CPU kernels deterministic (numpy RNGs are passed explicitly)."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _progress(items: Sequence[Any], desc: str) -> Any:
    return track(items, desc, "img")


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


def _restrict_to_valid(mask_set: MaskSet, valid: np.ndarray | None) -> MaskSet:
    """Cut the image's no-data pixels out of every mask (dropping masks left empty).

    No mask then covers no-data: it is painted unlabeled (255), its pixels count in no feature, and the
    mask shard carries this to every later stage.
    """
    if valid is None or len(mask_set) == 0:
        return mask_set
    rles: list[dict[str, Any]] = []
    kept: list[int] = []
    step = max(1, _RESTRICT_PIXELS // max(1, mask_set.height * mask_set.width))
    for start in range(0, len(mask_set), step):
        index = np.arange(start, min(len(mask_set), start + step))
        masks = mask_set.decode(index) & valid
        nonempty = masks.reshape(len(index), -1).any(axis=1)
        if nonempty.any():
            rles += encode_masks(masks[nonempty])
            kept += index[nonempty].tolist()
    return MaskSet(
        mask_set.image_id,
        mask_set.height,
        mask_set.width,
        rles,
        mask_set.predicted_iou[kept],
        mask_set.stability_score[kept],
        mask_set.embedding,
    )


def _masks_and_features(
    items: Sequence[ImageItem],
    generator: MaskGenerator,
    encoder: FeatureEncoder | None,
    bands: Sequence[int] | None,
    on_error: str,
    scenes: Sequence[Scene] | None = None,
) -> tuple[list[MaskSet], list[np.ndarray], list[dict[str, str]]]:
    """The per-image loop: read, generate masks (cut to valid pixels), compute features.

    With ``scenes`` (``alps.geo.scene``, opened beforehand), their tiles are labeled instead of the items.

    Returns:
        The mask sets (embeddings dropped) and feature blocks of the images read, in item order, and the
        images skipped (``on_error="skip"``) as ``{"item", "path", "reason"}``.

    Raises:
        ImageReadError: an image cannot be read and ``on_error`` is ``"fail"``.
    """
    mask_sets: list[MaskSet] = []
    vectors: list[np.ndarray] = []
    skipped: list[dict[str, str]] = []
    inputs = (
        iter_tiles_with_valid(scenes, bands)
        if scenes is not None
        else _read_items(items, bands, on_error, skipped)
    )
    for image_id, image, valid in inputs:
        mask_set = _restrict_to_valid(generator.generate(image, image_id), valid)
        if encoder is not None:
            vectors.append(_features(encoder, image, mask_set))
        mask_set.embedding = None
        mask_sets.append(mask_set)
        log.info("%s: %d masks", image_id, len(mask_set))
    return mask_sets, vectors, skipped


def _read_items(
    items: Sequence[ImageItem], bands: Sequence[int] | None, on_error: str, skipped: list[dict[str, str]]
) -> Iterator[tuple[str, NDArray[np.uint8], NDArray[np.bool_] | None]]:
    """``(id, RGB image, valid pixels or None)`` of each readable item; unreadable ones per ``on_error``."""
    for item in _progress(items, "images"):
        try:
            image, valid = read_image_with_valid(item.path, bands=bands)
        except ImageReadError as exc:
            if on_error != "skip":
                raise
            log.warning("skipped an unreadable image: %s", exc)
            skipped.append({"item": item.image_id, "path": str(item.path), "reason": str(exc)})
            continue
        yield item.image_id, image, valid


def run_masks(
    items: Sequence[ImageItem],
    generator: MaskGenerator,
    out_shard: str | os.PathLike[str],
    *,
    encoder: FeatureEncoder | None = None,
    features_out: str | os.PathLike[str] | None = None,
    bands: Sequence[int] | None = None,
    scenes: Sequence[Scene] | None = None,
) -> list[MaskSet]:
    """Generate the masks of ``items`` into one mask shard (and, optionally, their feature shard).

    With ``encoder`` and ``features_out``, features are computed while each image's masks (and SAM's
    embedding) are still in memory: this is how the ``sam`` encoder avoids a second encoder pass.
    Declared no-data pixels (``alps.io.images``) are cut out of every mask. With ``scenes``
    (``alps.geo.scene``), the tiles of the scenes are labeled instead of whole images.

    Returns:
        The mask sets, in item order (embeddings dropped).
    """
    if (encoder is None) != (features_out is None):
        raise ValueError("pass both `encoder` and `features_out`, or neither")
    mask_sets, vectors, _ = _masks_and_features(items, generator, encoder, bands, "fail", scenes)
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
    """Fit k-means on the gated vectors of ``feature_shards`` and save the model.

    The one clustering path: ``alps cluster``, the workflow and ``alps label`` all call it, so the same
    features, gate and config give the same model (the fit does not depend on the sharding). The model
    records the gate's ``area_threshold``; painting reads it from there.
    """

    def source() -> Any:
        return iter_feature_blocks(list(feature_shards), area_threshold, block_size=config.batch_size)

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


def model_area_threshold(model: ClusterModel, requested: float | None, model_path: Any) -> float:
    """The gate to paint with: the one the model was fitted behind; a different ``requested`` is an error."""
    try:
        recorded = model.area_threshold
    except (TypeError, ValueError):
        recorded = float("nan")
    if recorded is None:
        raise ValueError(f"{model_path} does not record its area threshold; fit it again with `alps cluster`")
    if not 0 < recorded <= 1:  # NaN too: it would drop every mask and paint everything unlabeled
        raise ValueError(
            f"{model_path}: its card's area_threshold {recorded} is not a fraction in (0, 1]; the model "
            "file is damaged: fit it again with `alps cluster`"
        )
    if requested is not None and not np.isclose(requested, recorded, rtol=0, atol=1e-9):
        raise ValueError(
            f"--area-threshold {requested} differs from the {recorded} that {model_path} was fitted with; "
            "paint with the model's threshold (leave the option out) or fit a model with the other one"
        )
    return recorded


def cluster_ids_by_mask(
    model: ClusterModel,
    features: FeatureShard,
    mask_sets: Sequence[MaskSet],
    area_threshold: float,
    feature_path: Any = "features",
) -> dict[str, np.ndarray]:
    """Per image, the cluster id of each of its masks (-1: gated out), matched by (image id, mask id).

    Raises:
        ValueError: a mask without a feature vector, or a vector of a mask or image that the masks lack
            (the feature shard is stale).
    """
    ids = assign_clusters(model, features.vectors, features.area_fraction, area_threshold)
    index = {
        (str(image_id), int(mask_id)): row
        for row, (image_id, mask_id) in enumerate(
            zip(features.image_ids.tolist(), features.mask_ids.tolist(), strict=True)
        )
    }
    wanted = sum(len(m) for m in mask_sets)
    per_image: dict[str, np.ndarray] = {}
    for mask_set in mask_sets:
        rows = [index.get((mask_set.image_id, mask)) for mask in range(len(mask_set))]
        if None in rows:
            missing = rows.index(None)
            raise ValueError(
                f"{feature_path} has no vector for mask {missing} of image {mask_set.image_id!r}: "
                "the feature shard is stale; delete it and rerun"
            )
        per_image[mask_set.image_id] = ids[np.asarray(rows, dtype=np.int64)]
    if len(index) != wanted or len(features.vectors) != wanted:
        raise ValueError(
            f"{feature_path} holds {len(features.vectors)} vectors for {wanted} masks (or repeats a mask): "
            "the feature shard is stale; delete it and rerun"
        )
    return per_image


def run_paint(
    mask_shard: str | os.PathLike[str],
    feature_shard: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    area_threshold: float | None = None,
    *,
    binary: bool = False,
) -> dict[str, Any]:
    """Assign clusters to the masks of one shard and paint its pseudo-labels.

    The gate is the model's own area threshold (``area_threshold``, if given, must equal it); features
    are matched to masks by image and mask id. Writes ``labels/``, ``vis/`` (and with ``binary``,
    ``binary/``) and ``paint_stats.json`` in ``out_dir``.
    """
    # Built beside out_dir and swapped in whole: a killed job leaves no half-painted shard that a rerun
    # (or Snakemake, which sees the folder) would take for a finished one; only an earlier painted shard
    # is replaced (alps.io.outputs).
    inputs = [mask_shard, feature_shard, model_path]
    with output_folder(out_dir, "alps paint", inputs=inputs) as built:
        model = ClusterModel.load(model_path)
        mask_sets = read_mask_shard(mask_shard)
        features = read_feature_shard(feature_shard)
        threshold = model_area_threshold(model, area_threshold, model_path)
        per_image = cluster_ids_by_mask(model, features, mask_sets, threshold, feature_shard)
        binary_dir = built / "binary" if binary else None
        stats = paint_mask_sets(mask_sets, per_image, built, k=model.k, binary_dir=binary_dir)
        atomic_write_text(built / "paint_stats.json", json.dumps(stats, indent=2) + "\n")
    return stats


MASKS_FILE = "masks.parquet"
FEATURES_FILE = "features.npz"
MODEL_FILE = DEFAULT_MODEL_NAME
LABEL_CARD_FILE = "label_card.json"
LABEL_DIRS = ("labels", "vis", "binary")


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
    class_map: str | os.PathLike[str] | None = None,
    gallery: bool = True,
    on_error: str = "fail",
    scene_options: SceneOptions | None = None,
) -> dict[str, Any]:
    """All labeling stages in one process (the ``alps label`` command).

    Every image is a scene (``alps.geo.scene``): labeled whole if it fits in a tile, else tile by tile
    with one k-means over all tiles and mosaicked into one label; georeferenced scenes get GeoTIFF labels.

    Writes ``masks.parquet``, ``features.npz``, ``kmeans.npz`` (+ card), ``labels/<id>.png`` (``.tif``
    for georeferenced scenes), ``vis/<id>.png`` and ``vis/<id>.overlay.png`` (and ``binary/<id>.png|tif``)
    and ``label_card.json`` (with the inputs and every parameter) under ``out_dir``, all at once after
    the whole run succeeded (``alps.io.outputs``): a failed run leaves the previous outputs as they were, a
    second run on the same ``out_dir`` is refused while one runs, and only files the previous run recorded
    as its own (unchanged) are replaced or removed; anything else in their way stops the run, named.

    Arguments:
        items: the images.
        out_dir: the output folder (the user's; other files in it are left alone).
        generator: the mask backend.
        encoder: the feature encoder.
        cluster_config: the k-means settings (its seed seeds every stage).
        area_threshold: the gate: masks covering more of their image are not clustered.
        bands: 1-based bands used as RGB.
        binary: also paint the binary-mask variant.
        class_map: a class map (``alps.classmap``): ``labels/`` and ``vis/`` hold the map's named classes,
            with ``classes.json`` and the map's copy.
        gallery: write the cluster gallery ``gallery/`` (``alps.gallery``).
        on_error: ``"fail"`` (an unreadable image stops the run, named) or ``"skip"`` (it is left out and
            listed under ``skipped`` in the card).
        scene_options: tiling of large scenes (``alps.geo.scene.SceneOptions``; default one).

    Returns:
        The label card (K, counts, class pixel histogram, coverage, skipped images).

    Raises:
        OutputSetError: another run holds ``out_dir``, or a file not ours is in an output's way.
        ImageReadError: an unreadable image with ``on_error="fail"``.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, got {on_error!r}")
    with label_output_set(out_dir) as outputs:
        # Refused before the long work, not after it.
        dirs = LABEL_DIRS if binary else tuple(d for d in LABEL_DIRS if d != "binary")
        extra = (["gallery"] if gallery else []) + ([CLASSES_JSON, CLASS_MAP_COPY] if class_map else [])
        outputs.check(
            [MASKS_FILE, FEATURES_FILE, MODEL_FILE, f"{MODEL_FILE}.card.json", LABEL_CARD_FILE, *dirs, *extra]
        )
        card = _label_into(
            outputs.build_dir,
            items,
            generator,
            encoder,
            cluster_config,
            area_threshold=area_threshold,
            bands=bands,
            binary=binary,
            class_map=class_map,
            gallery=gallery,
            on_error=on_error,
            scene_options=scene_options,
        )
        outputs.publish()
    return card


def _label_into(
    out: Path,
    items: Sequence[ImageItem],
    generator: MaskGenerator,
    encoder: FeatureEncoder,
    cluster_config: ClusterConfig,
    *,
    area_threshold: float,
    bands: Sequence[int] | None,
    binary: bool,
    class_map: str | os.PathLike[str] | None,
    gallery: bool,
    on_error: str,
    scene_options: SceneOptions | None,
) -> dict[str, Any]:
    """``label``'s stages, writing every output into the (empty) folder ``out``."""
    seed_everything(cluster_config.seed)
    skipped: list[dict[str, str]] = []
    if generator.name == "coco":
        # COCO masks belong to whole images (found by file stem): a tile of one has no masks of its own.
        scene_options = dataclasses.replace(scene_options or SceneOptions(), tile_size=WHOLE_IMAGE_TILE)
    try:
        scenes = open_scenes(items, bands, scene_options, on_error, skipped)
        mask_sets, vector_blocks, _ = _masks_and_features(items, generator, encoder, bands, on_error, scenes)
    except ImageReadError as exc:
        raise ImageReadError(
            f"{exc}; repair or remove the file, or pass --on-error skip to leave out the images that fail"
        ) from exc
    if not mask_sets:
        raise ImageReadError(f"none of the {len(items)} image(s) could be read: {skipped[0]['reason']}")
    write_mask_shard(out / MASKS_FILE, mask_sets)
    write_feature_shard(out / FEATURES_FILE, **_feature_records(mask_sets, vector_blocks, encoder.name))
    features = read_feature_shard(out / FEATURES_FILE)
    gate = features.area_fraction <= area_threshold
    # The same clustering and assignment as `alps cluster` + `alps paint` (and the workflow).
    model = run_cluster([out / FEATURES_FILE], cluster_config, area_threshold, out / MODEL_FILE)
    per_image = cluster_ids_by_mask(model, features, mask_sets, area_threshold, out / FEATURES_FILE)
    ids = np.concatenate([per_image[m.image_id] for m in mask_sets])
    stats = paint_scenes(
        scenes,
        mask_sets,
        per_image,
        out,
        k=model.k,
        bands=bands,
        binary_dir=out / "binary" if binary else None,
    )
    card = {
        **stats,
        "masks": len(features.vectors),
        "masks_kept": int(gate.sum()),
        "mask_backend": generator.name,
        "encoder": encoder.name,
        "encoder_threads": ENCODER_THREADS,
        "area_threshold": area_threshold,
        "seed": cluster_config.seed,
        "on_error": on_error,
        "skipped": skipped,
        "alps_version": __version__,
        **run_parameters(generator, encoder, cluster_config, bands, scene_options),
    }
    from alps.gallery import finish_label_dir  # issue #17: gallery and class map

    card.update(
        finish_label_dir(
            out,
            {
                scene.tile_id(window): functools.partial(scene.read_tile, window, bands)
                for scene in scenes
                for window in scene.windows
            },
            mask_sets,
            ids,
            model.k,
            stats["class_pixels"],
            seed=cluster_config.seed,
            bands=bands,
            class_map=class_map,
            gallery=gallery,
            total_pixels=sum(scene.height * scene.width for scene in scenes),
            previews={scene.image_id: functools.partial(scene.preview, bands) for scene in scenes},
        )
    )
    atomic_write_text(out / LABEL_CARD_FILE, json.dumps(card, indent=2) + "\n")
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
    "repair_label_output",
    "run_cluster",
    "run_features",
    "run_masks",
    "run_paint",
    "select_shard",
    "shard_count",
]
