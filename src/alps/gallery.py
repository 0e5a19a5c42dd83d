"""The cluster gallery: what each pseudo-class is, as example masks a person can look at.

``write_gallery`` writes a folder::

    index.html              one section per pseudo-class: its sheet, mask count, pixel share, mean area
    cluster_000.png ...     one sheet per pseudo-class: example masks cut out with some context, outlined
    gallery.json            the same numbers, for scripts

Choices (pinned by tests):

- examples are the masks with the smallest keyed hash of ``(image id, mask id)`` under the seed: the
  same seed picks the same masks whatever the shard order or the number of masks streamed, and a cluster's
  examples do not depend on the other clusters;
- one pass over the masks, one mask shard and one image in memory at a time, plus at most
  ``examples`` tiles per cluster: memory does not grow with the dataset;
- mask count and mean area count every mask the filtering gate kept; the pixel share is the share of all
  image pixels the cluster holds in the painted labels (painting order included), taken from the painted
  shards' ``paint_stats.json`` where given, else painted here with the same rule as ``alps paint``;
- the HTML is static: relative links to the sheets, every name escaped, no script.
"""

from __future__ import annotations

import hashlib
import heapq
import html
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from alps.io.atomic import atomic_directory
from alps.io.images import read_image
from alps.io.outputs import check_output_folder, output_folder
from alps.limits import MAX_GALLERY_TILE
from alps.masks.base import MaskSet
from alps.paint import make_palette, paint_labels
from alps.progress import track

DEFAULT_EXAMPLES = 12
DEFAULT_TILE = 128
CONTEXT = 0.35
"""Context around a mask's box, as a share of the box's longer side on each side."""
COLUMNS = 6
WRITER = "alps gallery"
"""The gallery folder's writer (``alps.io.outputs``): only an earlier gallery is replaced."""
EXAMPLE_BYTES = 1 << 31
"""The example tiles held in memory at most (k x examples x tile^2 x 3 bytes)."""
HEADER = 22
GAP = 4


@dataclass(frozen=True)
class GalleryPart:
    """Masks of a group of images (one shard) and each mask's cluster id (-1: dropped by the gate)."""

    mask_sets: Sequence[MaskSet]
    cluster_ids: NDArray[np.integer]


@dataclass
class _Cluster:
    masks: int = 0
    area_pixels: int = 0
    area_fraction: float = 0.0
    # Max-heap by key (keys negated) of (key, uid, tile): the `examples` smallest keys seen so far.
    heap: list[tuple[int, str, NDArray[np.uint8]]] = field(default_factory=list)


def example_key(seed: int, image_id: str, mask_id: int) -> int:
    """The order in which masks become examples: a keyed hash, stable across runs and shard layouts."""
    digest = hashlib.blake2b(
        f"{image_id}\x00{mask_id}".encode(), digest_size=8, key=str(seed).encode()
    ).digest()
    return int.from_bytes(digest, "big")


def _outline(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels of ``mask`` with a 4-neighbour outside it, thickened by one pixel."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = mask & ~inner
    grown = np.pad(edge, 1)
    return edge | grown[:-2, 1:-1] | grown[2:, 1:-1] | grown[1:-1, :-2] | grown[1:-1, 2:]


def render_tile(
    image: NDArray[np.uint8], rle: dict[str, Any], colour: Sequence[int], tile: int = DEFAULT_TILE
) -> NDArray[np.uint8]:
    """One example: the mask's box with ``CONTEXT`` around it, squared, scaled to ``tile`` px, outlined.

    Pixels outside the mask are dimmed so the mask stands out; pixels outside the image are grey.
    """
    height, width = image.shape[:2]
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    side = max(w, h) * (1 + 2 * CONTEXT) + 4
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(np.floor(cx - side / 2)), int(np.floor(cy - side / 2))
    size = int(np.ceil(side))
    crop = np.full((size, size, 3), 96, dtype=np.uint8)
    crop_mask = np.zeros((size, size), dtype=bool)
    mask = mask_utils.decode(rle).astype(bool)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + size, width), min(y0 + size, height)
    crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    crop_mask[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = mask[sy0:sy1, sx0:sx1]
    pixels = np.asarray(Image.fromarray(crop).resize((tile, tile), Image.BILINEAR)).copy()
    small = np.asarray(Image.fromarray(crop_mask).resize((tile, tile), Image.NEAREST))
    pixels[~small] = (pixels[~small] * 0.55).astype(np.uint8)
    pixels[_outline(small)] = np.asarray(colour, dtype=np.uint8)
    return pixels


def _offer(cluster: _Cluster, key: int, uid: str, make_tile: Any, examples: int) -> None:
    """Keep the example if its key is among the ``examples`` smallest seen (renders only then)."""
    if len(cluster.heap) >= examples and -cluster.heap[0][0] <= key:
        return
    entry = (-key, uid, make_tile())
    if len(cluster.heap) < examples:
        heapq.heappush(cluster.heap, entry)
    else:
        heapq.heapreplace(cluster.heap, entry)


def _sheet(
    cluster_id: int, title: str, tiles: Sequence[NDArray[np.uint8]], colour: Sequence[int], tile: int
) -> Image.Image:
    columns = max(1, min(COLUMNS, len(tiles)))
    rows = max(1, -(-len(tiles) // columns))
    width = columns * tile + (columns + 1) * GAP
    sheet = Image.new("RGB", (max(width, 360), HEADER + rows * (tile + GAP) + GAP), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    draw.rectangle((GAP, 5, GAP + 12, 17), fill=tuple(int(c) for c in colour))
    draw.text((GAP + 18, 6), title, fill=(235, 235, 235))
    if not tiles:
        draw.text((GAP, HEADER + 8), "no masks in this cluster", fill=(200, 200, 200))
    for i, pixels in enumerate(tiles):
        row, col = divmod(i, columns)
        sheet.paste(Image.fromarray(pixels), (GAP + col * (tile + GAP), HEADER + GAP + row * (tile + GAP)))
    return sheet


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def _html(rows: Sequence[Mapping[str, Any]], title: str, meta: Mapping[str, Any]) -> str:
    e = html.escape
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1em 2em;background:#fafafa}"
        "table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}"
        "td.name,th.name{text-align:left}.swatch{display:inline-block;width:1em;height:1em;"
        "vertical-align:middle;border:1px solid #444}section{margin:1.5em 0}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>{e(title)}</h1>",
        "<p>" + e(", ".join(f"{k}: {v}" for k, v in meta.items())) + "</p>",
        "<p>Mask count and mean area: masks the filtering gate kept. Pixel share: share of all image pixels "
        "the pseudo-class holds in the painted labels.</p>",
        "<table><tr><th>id</th><th class=name>name</th><th>masks</th><th>pixel share</th>"
        "<th>mean area (px)</th><th>mean area (% of image)</th></tr>",
    ]
    for row in rows:
        colour = "#{:02x}{:02x}{:02x}".format(*row["colour"])
        anchor = f"c{row['cluster']}"
        lines.append(
            f'<tr><td><a href="#{anchor}">{row["cluster"]}</a></td><td class=name>'
            f'<span class=swatch style="background:{colour}"></span> {e(row["name"])}</td>'
            f"<td>{row['masks']}</td><td>{_percent(row['pixel_share'])}</td>"
            f"<td>{row['mean_area_px']:.0f}</td><td>{_percent(row['mean_area_fraction'])}</td></tr>"
        )
    lines.append("</table>")
    for row in rows:
        lines += [
            f'<section id="c{row["cluster"]}"><h2>{row["cluster"]}: {e(row["name"])}</h2>',
            f"<p>{row['masks']} masks, {_percent(row['pixel_share'])} of the pixels, mean area "
            f"{row['mean_area_px']:.0f} px ({_percent(row['mean_area_fraction'])} of its image)</p>",
            f'<img src="{e(row["sheet"])}" alt="examples of {e(row["name"])}"></section>',
        ]
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


def write_gallery(
    parts: Iterable[GalleryPart],
    image_paths: Mapping[str, Path | Callable[[], NDArray[np.uint8]]],
    out_dir: str | os.PathLike[str],
    k: int,
    *,
    examples: int = DEFAULT_EXAMPLES,
    seed: int = 0,
    tile: int = DEFAULT_TILE,
    bands: Sequence[int] | None = None,
    class_pixels: Sequence[int] | None = None,
    names: Mapping[int, str] | None = None,
    title: str = "Pseudo-class gallery",
    own: bool = True,
    total_pixels: int | None = None,
) -> dict[str, Any]:
    """Write the gallery of a labeling (see the module docstring); returns its ``gallery.json`` content.

    Arguments:
        parts: the masks and their cluster ids, one shard at a time (read lazily to bound memory).
        image_paths: image id -> image file.
        out_dir: the gallery folder (built beside, swapped in whole).
        k: the number of clusters.
        examples: examples per cluster.
        seed: chooses the examples.
        tile: tile side in pixels.
        bands: 1-based bands used as RGB (multispectral images).
        class_pixels: painted pixels per cluster (``paint_stats.json``); default: painted here.
        names: a name per cluster (a class map's), shown beside the id.
        title: the page title.
        own: the folder is ``alps gallery``'s own output (recorded; only an earlier gallery is replaced,
            ``alps.io.outputs``); False inside another command's output (``alps label``'s).
        total_pixels: the pixels the shares are of; default the masks' images' pixels. The tiles of a
            large scene overlap, so ``alps label`` passes its scenes' pixels.

    Raises:
        ValueError: a mask's image is not in ``image_paths``, or ids and masks do not line up.
    """
    if examples < 1 or not 16 <= tile <= MAX_GALLERY_TILE:
        raise ValueError(
            f"need examples >= 1 and 16 <= tile <= {MAX_GALLERY_TILE}, got {examples} and {tile}"
        )
    if k * examples * tile * tile * 3 > EXAMPLE_BYTES:
        raise ValueError(
            f"{k} clusters x {examples} examples of {tile} px would hold more than "
            f"{EXAMPLE_BYTES >> 30} GiB of tiles; pass a smaller --tile or --examples"
        )
    clusters = [_Cluster() for _ in range(k)]
    palette = make_palette()
    painted = np.zeros(k, dtype=np.int64)
    image_pixels = 0
    for part in parts:
        ids = np.asarray(part.cluster_ids)
        expected = sum(len(m) for m in part.mask_sets)
        if len(ids) != expected:
            raise ValueError(f"{len(ids)} cluster ids for {expected} masks")
        if ids.size and ids.max() >= k:
            raise ValueError(f"cluster id {int(ids.max())} >= k = {k}")
        start = 0
        for mask_set in track(part.mask_sets, "gallery", "img"):
            image_ids = ids[start : start + len(mask_set)]
            start += len(mask_set)
            pixels = mask_set.height * mask_set.width
            image_pixels += pixels
            if class_pixels is None:
                painted += np.bincount(paint_labels(mask_set, image_ids).ravel(), minlength=256)[:k]
            _add_image(
                clusters, mask_set, image_ids, image_paths, pixels, palette, examples, seed, tile, bands
            )
    if class_pixels is not None:
        if len(class_pixels) < k:
            raise ValueError(f"{len(class_pixels)} pixel counts for k = {k} clusters")
        painted = np.asarray(class_pixels[:k], dtype=np.int64)
    total = image_pixels if total_pixels is None else total_pixels
    folder = output_folder(out_dir, WRITER) if own else atomic_directory(out_dir)
    return _write(folder, clusters, painted, total, palette, names or {}, title, seed, tile)


def _add_image(
    clusters: list[_Cluster],
    mask_set: MaskSet,
    ids: NDArray[np.integer],
    image_paths: Mapping[str, Path | Callable[[], NDArray[np.uint8]]],
    pixels: int,
    palette: NDArray[np.uint8],
    examples: int,
    seed: int,
    tile: int,
    bands: Sequence[int] | None,
) -> None:
    image: list[NDArray[np.uint8]] = []  # read on the first example the image gives, then reused

    def load() -> NDArray[np.uint8]:
        if not image:
            if mask_set.image_id not in image_paths:
                raise ValueError(f"image {mask_set.image_id!r} of the masks is not in the image source")
            source = image_paths[mask_set.image_id]
            # A tile of a large scene (alps.geo.scene) comes as its reader, not as a file.
            image.append(source() if callable(source) else read_image(source, bands=bands))
        return image[0]

    areas = mask_set.area
    for mask_id, cluster_id in enumerate(ids.tolist()):
        if cluster_id < 0:
            continue
        cluster = clusters[cluster_id]
        cluster.masks += 1
        cluster.area_pixels += int(areas[mask_id])
        cluster.area_fraction += float(areas[mask_id]) / pixels
        key = example_key(seed, mask_set.image_id, mask_id)
        rle = mask_set.rles[mask_id]
        _offer(
            cluster,
            key,
            f"{mask_set.image_id}/{mask_id}",
            lambda rle=rle, c=cluster_id: render_tile(load(), rle, palette[c], tile),
            examples,
        )


def _write(
    folder: AbstractContextManager[Path],
    clusters: list[_Cluster],
    painted: NDArray[np.int64],
    total_pixels: int,
    palette: NDArray[np.uint8],
    names: Mapping[int, str],
    title: str,
    seed: int,
    tile: int,
) -> dict[str, Any]:
    # Built beside and swapped in whole: a reader sees the old gallery or the new one.
    with folder as tmp:
        rows = []
        for cluster_id, cluster in enumerate(clusters):
            chosen = sorted(cluster.heap, key=lambda entry: -entry[0])  # smallest key first
            name = names.get(cluster_id, f"cluster {cluster_id}")
            row = {
                "cluster": cluster_id,
                "name": name,
                "masks": cluster.masks,
                "pixels": int(painted[cluster_id]),
                "pixel_share": float(painted[cluster_id]) / total_pixels if total_pixels else 0.0,
                "mean_area_px": cluster.area_pixels / cluster.masks if cluster.masks else 0.0,
                "mean_area_fraction": cluster.area_fraction / cluster.masks if cluster.masks else 0.0,
                "examples": [entry[1] for entry in chosen],
                "colour": [int(c) for c in palette[cluster_id]],
                "sheet": f"cluster_{cluster_id:03d}.png",
            }
            sheet_title = (
                f"{cluster_id}: {name} | {cluster.masks} masks | {_percent(row['pixel_share'])} px | "
                f"mean {row['mean_area_px']:.0f} px"
            )
            _sheet(cluster_id, sheet_title, [entry[2] for entry in chosen], palette[cluster_id], tile).save(
                tmp / row["sheet"]
            )
            rows.append(row)
        meta = {"clusters": len(clusters), "image pixels": total_pixels, "seed": seed}
        (tmp / "index.html").write_text(_html(rows, title, meta), encoding="utf-8")
        summary = {
            "k": len(clusters),
            "total_pixels": total_pixels,
            "seed": seed,
            "tile": tile,
            "clusters": rows,
        }
        (tmp / "gallery.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def class_pixels_from_paint_stats(paint_dirs: Sequence[str | os.PathLike[str]], k: int) -> list[int]:
    """Painted pixels per cluster, summed over painted shards (their ``paint_stats.json``).

    Raises:
        ValueError: a shard was painted with another K, or has no statistics.
    """
    total = np.zeros(k, dtype=np.int64)
    for paint_dir in map(Path, paint_dirs):
        stats_path = paint_dir / "paint_stats.json"
        if not stats_path.is_file():
            raise FileNotFoundError(f"{stats_path} is missing: is {paint_dir} a painted shard (alps paint)?")
        stats = json.loads(stats_path.read_text())
        if int(stats.get("k", -1)) != k:
            raise ValueError(f"{stats_path}: painted with k = {stats.get('k')}, but the model has k = {k}")
        total += np.asarray(stats["class_pixels"], dtype=np.int64)
    return total.tolist()


def gallery_from_shards(
    image_paths: Mapping[str, Path],
    mask_shards: Sequence[str | os.PathLike[str]],
    feature_shards: Sequence[str | os.PathLike[str]],
    model_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    area_threshold: float | None = None,
    paint_dirs: Sequence[str | os.PathLike[str]] | None = None,
    class_map_path: str | os.PathLike[str] | None = None,
    image_folders: Sequence[str | os.PathLike[str]] = (),
    **options: Any,
) -> dict[str, Any]:
    """The gallery of a sharded labeling: mask shards, their feature shards (same order), the cluster model.

    Cluster ids are predicted by the model with the filtering gate ``area_threshold`` (default: the one
    the model was fitted with, from its card); ``options`` go to ``write_gallery``. ``out_dir`` must not
    overlap an input (``image_folders``: the folder of the images, or of their manifest).
    """
    from alps.cluster import ClusterModel
    from alps.features.shards import read_feature_shard
    from alps.masks.shards import read_mask_shard
    from alps.pipeline import assign_clusters, model_area_threshold

    if len(mask_shards) != len(feature_shards):
        raise ValueError(
            f"{len(mask_shards)} mask shards but {len(feature_shards)} feature shards; pair them"
        )
    inputs = [*mask_shards, *feature_shards, model_path, *(paint_dirs or []), *image_folders]
    check_output_folder(out_dir, WRITER, inputs=[*inputs, *([class_map_path] if class_map_path else [])])
    model = ClusterModel.load(model_path)
    threshold = area_threshold
    if threshold is None:
        card = getattr(model, "card", None) or {}
        if "area_threshold" not in card:
            raise ValueError(f"{model_path} does not say its filtering gate; pass --area-threshold")
        threshold = model_area_threshold(model, None, model_path)
    names = None
    if class_map_path is not None:
        from alps.classmap import load_class_map

        class_map = load_class_map(class_map_path, model.k)
        names = {c: class_map.name_of(c) for c in range(model.k)}

    def parts() -> Iterable[GalleryPart]:
        for mask_path, feature_path in zip(mask_shards, feature_shards, strict=True):
            mask_sets = read_mask_shard(mask_path)
            features = read_feature_shard(feature_path)
            expected = [m.image_id for m in mask_sets for _ in range(len(m))]
            if features.image_ids.tolist() != expected:
                raise ValueError(
                    f"{feature_path} is not the feature shard of {mask_path} (images or mask counts differ); "
                    "pass the feature shard of each mask shard, in the same order"
                )
            ids = assign_clusters(model, features.vectors, features.area_fraction, threshold)
            yield GalleryPart(mask_sets, ids)

    pixels = class_pixels_from_paint_stats(paint_dirs, model.k) if paint_dirs else None
    return write_gallery(parts(), image_paths, out_dir, model.k, class_pixels=pixels, names=names, **options)


__all__ = [
    "GalleryPart",
    "class_pixels_from_paint_stats",
    "example_key",
    "gallery_from_shards",
    "render_tile",
    "write_gallery",
]


def finish_label_dir(
    out_dir: Path,
    image_sources: Mapping[str, Path | Callable[[], NDArray[np.uint8]]],
    mask_sets: Sequence[MaskSet],
    cluster_ids: NDArray[np.integer],
    k: int,
    class_pixels: Sequence[int],
    *,
    seed: int,
    bands: Sequence[int] | None,
    class_map: str | os.PathLike[str] | None,
    gallery: bool,
    total_pixels: int | None = None,
    previews: Mapping[str, Callable[[], NDArray[np.uint8]]] | None = None,
) -> dict[str, Any]:
    """The end of ``alps label``: the gallery of its clusters, then the class map over its labels.

    The gallery shows clusters (named by the map, when one is given), since it is what a map is written
    from. Outputs of an earlier run that this run does not make (gallery, map files) are removed.

    Arguments:
        total_pixels: the scenes' pixels, which pixel shares are of (tiles of a scene overlap).
        previews: per scene, its image's preview (for the overlays of named labels).

    Returns:
        Entries for the label card: ``gallery`` (its index) and ``class_map`` (the map's summary).
    """
    from alps import classmap, named_labels

    entries: dict[str, Any] = {}
    parsed = classmap.load_class_map(class_map, k) if class_map is not None else None
    if gallery:
        write_gallery(
            [GalleryPart(mask_sets, cluster_ids)],
            image_sources,
            out_dir / "gallery",
            k,
            seed=seed,
            bands=bands,
            class_pixels=class_pixels,
            names={c: parsed.name_of(c) for c in range(k)} if parsed else None,
            own=False,
            total_pixels=total_pixels,
        )
        entries["gallery"] = "gallery/index.html"
    elif (out_dir / "gallery" / "gallery.json").is_file():
        shutil.rmtree(out_dir / "gallery")
    if parsed is not None:
        entries["class_map"] = named_labels.name_label_dir(out_dir, parsed, previews)
    else:
        classmap.clear_class_map(out_dir)
    return entries
