"""The pseudo-labels of the unlabeled pool, made by the project's own labeling stages.

One labeling per mask backend, through the functions the CLI and the workflow call
(``alps.pipeline``): ``run_masks`` with the encoder (masks and their features, one job per shard of the
pool), then ``run_cluster`` (one k-means over every shard's gated features), ``run_paint`` per shard and
``assemble_pl_dataset`` (the PL dataset that ``alps pretrain`` trains on). Every step's output is written
atomically by those functions and skipped when it exists, so a killed run resumes.

``coco`` masks are the pool's class-agnostic instance polygons (the masks a perfect prompt-free segmenter
would give, with no class); ``felzenszwalb`` and ``slic`` are the weight-free CPU backends.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from alps.cluster import ClusterConfig
from alps.effect.layout import EffectLayout
from alps.effect.settings import EffectSettings
from alps.features.encoders import build_encoder
from alps.masks.registry import build_mask_generator
from alps.pipeline import run_cluster, run_masks, run_paint
from alps.pl_dataset import assemble_pl_dataset
from alps.sharding import ImageItem, images_from_source

log = logging.getLogger(__name__)

POOL_JSON = "instances_class_agnostic.json"
"""The pool's COCO file (every category_id 1: masks without classes)."""


def pool_items(pool_dir: Path, settings: EffectSettings) -> list[ImageItem]:
    """The pool images the labeling uses (sorted by id; the first ``pool_images`` when set)."""
    items = images_from_source(pool_dir / "images")
    return items[: settings.pool_images] if settings.pool_images else items


def shard_ranges(n_images: int, settings: EffectSettings) -> list[tuple[int, int]]:
    """``[start, stop)`` of each labeling shard of the pool."""
    step = max(1, settings.labeling_shard)
    return [(start, min(start + step, n_images)) for start in range(0, n_images, step)]


def masks_job(layout: EffectLayout, pool_dir: Path, backend: str, shard: int) -> dict[str, Any]:
    """Masks and features of one shard of the pool (skipped where both files exist)."""
    settings = layout.settings
    start, stop = shard_ranges(len(pool_items(pool_dir, settings)), settings)[shard]
    out = layout.masks(backend, shard)
    masks, features = out / "masks.parquet", out / "features.npz"
    if masks.is_file() and features.is_file():
        return {"skipped": True}
    out.mkdir(parents=True, exist_ok=True)
    coco = pool_dir / POOL_JSON if backend == "coco" else None
    generator = build_mask_generator(backend, settings.mask_params.get(backend), coco_json=coco)
    encoder = build_encoder(settings.encoder, max_side=settings.encoder_max_side)
    items = pool_items(pool_dir, settings)[start:stop]
    mask_sets = run_masks(items, generator, masks, encoder=encoder, features_out=features)
    return {"images": len(items), "masks": sum(len(m) for m in mask_sets)}


def pl_job(layout: EffectLayout, pool_dir: Path, backend: str) -> dict[str, Any]:
    """k-means over every shard's features, painting, and the PL dataset (each step skipped if done)."""
    settings = layout.settings
    target = layout.pl(backend)
    card_path = target / "dataset_card.json"
    if card_path.is_file():
        return {"skipped": True, **json.loads(card_path.read_text())}
    root = layout.labeling(backend)
    items = pool_items(pool_dir, settings)
    shards = [layout.masks(backend, i) for i in range(len(shard_ranges(len(items), settings)))]
    model_path = root / "kmeans.npz"
    root.mkdir(parents=True, exist_ok=True)
    if not model_path.is_file():
        config = ClusterConfig(k=settings.k, seed=settings.label_seed)
        run_cluster([s / "features.npz" for s in shards], config, settings.area_threshold, model_path)
    paint_dirs = []
    for index, shard in enumerate(shards):
        paint = root / "paint" / f"shard_{index:03d}"
        if not (paint / "paint_stats.json").is_file():
            run_paint(shard / "masks.parquet", shard / "features.npz", model_path, paint)
        paint_dirs.append(paint)
    card = assemble_pl_dataset(items, paint_dirs, target)
    log.info(
        "PL dataset %s: %d images, K=%d, coverage %.3f",
        target,
        card["images"],
        card["num_classes"],
        card["coverage"],
    )
    return card
