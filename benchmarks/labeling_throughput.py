"""Labeling throughput: the official ALPS script's per-image design against the project's engine.

Three measurements, each pipeline in its own subprocess, with wall seconds and the peak process RSS
(sampled every 10 ms with psutil) of every stage:

(a) **baseline**: the per-image design of the official ALPS script (github.com/StriveZs/ALPS, ``main.py``
    and ``utils/``), re-implemented here step by step, as the reference point:
    1. SAM's stock ``SamAutomaticMaskGenerator`` (binary masks) on the cv2-read RGB image; masks covering
       more than 30 % of the image dropped; a 20x20-inch matplotlib overview figure, one full-resolution
       PNG per kept mask and a metadata CSV written per image;
    2. a second image encoder built from the checkpoint's ``image_encoder.*`` weights and run again on the
       image, as the script feeds it: ``cv2.imread`` (BGR) -> ``ToPILImage`` -> ``Resize(1024)`` (shorter
       side to 1024: for the square tiles here, the same as SAM's longest-side resize) -> ``ToTensor``
       (0..1), with no mean/std normalisation and no padding. Every mask PNG is read back (``/255``) and
       resized the same way; per mask, the 256-channel feature map is bilinearly resized to a quarter of
       the resized mask's size, multiplied with the equally resized mask, averaged over its non-zero
       entries, and saved as its own ``.npy``; a JSON per image lists them;
    3. ``MiniBatchKMeans(K, batch_size=512, n_init="auto")`` fitted with ``partial_fit`` over a
       ``DataLoader`` that loads the ``.npy`` files one by one; a second pass predicts every mask (again one
       ``.npy`` at a time) into a JSON;
    4. per image, each mask PNG read back and painted into the label with a Python loop over its covered
       pixels, and into the colour visualisation with a loop over covered pixels x 3 channels (the
       script's ``--vis``, on here because the engine writes its colour maps too).
(b) **engine**: ``alps.pipeline.label`` with the ``sam`` backend (``SamMaskGenerator``, exact AMG fast path
    on) and the ``sam`` encoder (the embedding of the masks' own encoder pass), same checkpoint, same AMG
    settings, same K and area threshold; its stages are timed by wrapping the functions ``label`` calls
    where it looks them up (``profile_engine``), and a wrapper that is never called fails the run.
(c) **post-SAM stages alone** on oracle masks (the NWPU VHR-10 COCO polygons, realistic mask counts): one
    SAM embedding per image is computed once beforehand (untimed) and shared; the baseline's steps from the
    mask PNGs to the painted labels (its second encoder pass replaced by that embedding) against the
    engine's ``label`` fed the same masks and embeddings.

The SAM weights are random (``alps.masks.sam.build_sam`` with seed 0, saved as a checkpoint): no download,
no network. Random weights change how many masks AMG keeps and their shapes, hence the absolute seconds of
the per-mask stages, but not what each stage does or how it scales. With AMG's defaults they keep nothing
useful: their logits lie within +-0.2, so at SAM's logit cut of 0 every mask is a speckle field over 40-90 %
of the image, no stability score exceeds 0, predicted IoUs lie in -0.05..0.09, and box NMS (0.7) leaves one
mask per image, which the area threshold then drops. So both pipelines run the same SAM with settings that
let random weights give mask counts and sizes of the order a trained SAM gives on these tiles (~100-200
masks of 1-5 % of the image each, at 16x16 points): ``--mask-threshold 0.16`` (the logit cut, set on the
model), ``--pred-iou-thresh 0.04``, ``--stability-score-thresh 0``, ``--box-nms-thresh 1``. Random masks are
speckled (thousands of fragments) where a trained SAM's are compact, which makes their RLEs longer: this
inflates stock AMG's Python RLE handling, so the AMG stage's ratio overstates what the exact fast path
gains with real weights. ``--points-per-side 32`` is AMG's full default grid (4x the decoder work).

Usage: .venv/bin/python benchmarks/labeling_throughput.py [--isaid 1] [--no-potsdam] [--nwpu 4]
    [--points-per-side 16] [--pred-iou-thresh 0.04] [--stability-score-thresh 0] [--box-nms-thresh 1]
    [--mask-threshold 0.16] [--k 16] [--model vit_b] [--skip e2e post] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import colorsys
import contextlib
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ISAID_PATCHES = SHARED_DATA / "isaid" / "patches_800" / "img_dir"
POTSDAM_CROP = SHARED_DATA / "potsdam" / "img_dir" / "2_10_0_0_512_512.png"
NWPU = SHARED_DATA / "nwpu_vhr10_train"

AREA_THRESHOLD = 0.3
"""Masks covering more of the image than this are not clustered (the paper's and the script's 0.3)."""

STAGES = (
    "load models",
    "masks (SAM AMG)",
    "mask storage",
    "encoder pass 2",
    "mask read-back",
    "features",
    "clustering",
    "painting",
    "overlays",
    "gallery",
    "other",
)
"""Rows of the tables, in pipeline order; a pipeline without a stage shows a dash."""

UNTIMED = ("oracle input",)
"""Stages of (c) that only feed the precomputed masks and embeddings in; left out of the totals."""

SECOND_PASS_STAGES = ("encoder pass 2", "mask storage", "mask read-back")
"""The baseline's stages that dropping the second encoder pass and the per-mask files removes."""

EXTRA_OUTPUT_STAGES = ("overlays", "gallery")
"""The engine's outputs that the official design does not make (overlays with a legend, the gallery)."""


# ---------------------------------------------------------------------------------------------------------
# Stage profiler: wall time and peak RSS per stage, in one process.


class StageProfiler:
    """Accumulate wall and CPU seconds per named stage, and the peak process RSS seen while each runs.

    CPU seconds (all threads of the process) are the steadier measure on a shared machine: other users'
    load stretches wall time but hardly the CPU time a stage needs. A background thread samples the RSS
    every ``interval`` seconds (torch and numpy release the GIL in their kernels, so it keeps sampling
    during heavy work) and charges it to the current stage; entering and leaving a stage also samples.
    ``stage`` blocks must not nest; a wrapped function called inside a stage is charged to that stage.

    Arguments:
        interval: seconds between RSS samples.
    """

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._process = psutil.Process()
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.peak_rss: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = {}
        self._current: str | None = None
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        current = self._current
        if current is not None:
            rss = self._process.memory_info().rss
            if rss > self.peak_rss[current]:
                self.peak_rss[current] = rss

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Charge the enclosed block's wall time and RSS to stage ``name``."""
        if self._current is not None:
            raise RuntimeError(f"stage {name!r} nested in {self._current!r}")
        start = time.perf_counter()
        cpu_start = time.process_time()
        self._current = name
        self._sample()
        try:
            yield
        finally:
            self._sample()
            self._current = None
            self.seconds[name] += time.perf_counter() - start
            self.cpu_seconds[name] += time.process_time() - cpu_start

    def wrap(self, name: str, function: Callable[..., Any], carve: bool = False) -> Callable[..., Any]:
        """``function`` with every call charged to stage ``name`` (and counted in ``calls``).

        A call made while another stage runs stays in that stage (the gallery reads its example tiles
        through the same ``Scene`` reader as the masks stage: that reading is the gallery's cost), unless
        ``carve``: then its time moves from the running stage to ``name`` (the overlays drawn inside
        painting).
        """
        key = f"{function.__module__}.{function.__qualname__}"
        self.calls.setdefault(key, 0)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.calls[key] += 1
            outer = self._current
            if outer is None:
                with self.stage(name):
                    return function(*args, **kwargs)
            if not carve:
                return function(*args, **kwargs)
            start, cpu_start = time.perf_counter(), time.process_time()
            self._current = name
            try:
                return function(*args, **kwargs)
            finally:
                self._sample()
                self._current = outer
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                self.seconds[name] += seconds
                self.cpu_seconds[name] += cpu
                self.seconds[outer] -= seconds
                self.cpu_seconds[outer] -= cpu

        return wrapped

    def check_called(self) -> None:
        """Fail if a wrapped function was never called: its stage would silently go to ``other``.

        A pipeline that stops calling a wrapped name (it calls another function now) makes the wrapper
        stale; this turns that into an error instead of a wrong table.
        """
        stale = sorted(key for key, count in self.calls.items() if count == 0)
        if stale:
            raise RuntimeError(f"wrapped but never called (the profiler is stale): {', '.join(stale)}")

    def report(self, start: float, cpu_start: float, **extra: Any) -> dict[str, Any]:
        """Stop sampling; per stage wall and CPU seconds and peak RSS (MB).

        Arguments:
            start: ``time.perf_counter()`` when the pipeline started.
            cpu_start: ``time.process_time()`` then.
            extra: more items for the report.

        Returns:
            ``{"stages": {name: {"seconds", "cpu_seconds", "peak_rss_mb"}}, "total_seconds", ...}``, with
            stage ``other`` = the time outside every stage.
        """
        total = time.perf_counter() - start
        cpu_total = time.process_time() - cpu_start
        self.check_called()
        self._stop.set()
        self._thread.join()
        import resource

        stages = {
            name: {
                "seconds": seconds,
                "cpu_seconds": self.cpu_seconds[name],
                "peak_rss_mb": self.peak_rss[name] / 2**20,
            }
            for name, seconds in self.seconds.items()
        }
        stages["other"] = {
            "seconds": max(total - sum(self.seconds.values()), 0.0),
            "cpu_seconds": max(cpu_total - sum(self.cpu_seconds.values()), 0.0),
            "peak_rss_mb": 0.0,
        }
        return {
            "stages": stages,
            "total_seconds": total,
            "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            **extra,
        }


# ---------------------------------------------------------------------------------------------------------
# (a) The official script's per-image design (re-implemented; see the module docstring for each step).


def official_palette(count: int) -> list[tuple[float, float, float]]:
    """Colours 0..255 for the colour visualisation (fully saturated hues, like the script's table)."""
    return [tuple(255 * c for c in colorsys.hsv_to_rgb(i / count, 1.0, 1.0)) for i in range(count)]


def official_write_mask_folder(
    image: np.ndarray, records: list[dict[str, Any]], folder: Path, suffix: str = ".png"
) -> int:
    """Step 1's storage: drop masks over the area threshold, overview figure, one PNG per mask, CSV.

    Returns:
        How many masks were written.
    """
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    total = image.shape[0] * image.shape[1]
    rng = np.random.default_rng()  # the script draws unseeded random colours
    kept = [r for r in records if np.sum(r["segmentation"]) / total <= AREA_THRESHOLD]
    # The overview: the image under every mask in a random translucent colour, largest first.
    plt.figure(figsize=(20, 20))
    plt.imshow(image)
    if kept:
        overlay = np.ones((*kept[0]["segmentation"].shape, 4))
        overlay[:, :, 3] = 0
        for record in sorted(kept, key=lambda r: r["area"], reverse=True):
            overlay[record["segmentation"]] = np.concatenate([rng.random(3), [0.35]])
        axes = plt.gca()
        axes.set_autoscale_on(False)
        axes.imshow(overlay)
    plt.axis("off")
    plt.savefig(folder / f"full_mask{suffix}")
    plt.close()
    rows = [
        "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,"
        "stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h"
    ]
    for index, record in enumerate(kept):
        # bool * 255 is int64; OpenCV falls back to 8 bits (with a warning), as in the script.
        cv2.imwrite(str(folder / f"{index}{suffix}"), record["segmentation"] * 255)
        values = [
            index,
            record["area"],
            *record["bbox"],
            *record["point_coords"][0],
            record["predicted_iou"],
            record["stability_score"],
            *record["crop_box"],
        ]
        rows.append(",".join(str(v) for v in values))
    (folder / "metadata.csv").write_text("\n".join(rows))
    return len(kept)


class OfficialMaskDataset:
    """Step 2's dataset: per image, the encoder input and every mask PNG read back, resized to 1024.

    Arguments:
        images: the image files.
        mask_root: the folder holding ``<stem>_all_mask/`` per image.
        profiler: charges image loading to ``encoder pass 2`` and mask loading to ``mask read-back``.
        load_image: False in (c), where a precomputed embedding replaces the second encoder pass.
    """

    def __init__(
        self, images: list[Path], mask_root: Path, profiler: StageProfiler, load_image: bool = True
    ) -> None:
        from torchvision import transforms

        self.images = images
        self.mask_root = mask_root
        self.profiler = profiler
        self.load_image = load_image
        self.transform = transforms.Compose(
            [transforms.ToPILImage(), transforms.Resize(1024), transforms.ToTensor()]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import cv2
        import torch

        path = self.images[index]
        item: dict[str, Any] = {"image_name": path.stem, "image": torch.zeros(0)}
        if self.load_image:
            with self.profiler.stage("encoder pass 2"):
                item["image"] = self.transform(cv2.imread(str(path)))  # BGR, 0..1, no normalisation
        with self.profiler.stage("mask read-back"):
            masks = []
            for mask_path in glob.glob(str(self.mask_root / f"{path.stem}_all_mask" / "*.png")):
                name = Path(mask_path).stem
                if "full_mask" in name:
                    continue
                pixels = np.array(cv2.imread(mask_path, 0) / 255.0, dtype=np.float32)[:, :, None]
                masks.append({"mask": self.transform(pixels), "mask_name": name})
            item["masks"] = masks
        return item


def official_features(
    dataset: OfficialMaskDataset,
    profiler: StageProfiler,
    vector_dir: Path,
    json_dir: Path,
    encoder: Any | None = None,
    embeddings: dict[str, np.ndarray] | None = None,
) -> int:
    """Step 2: feature map per image (second encoder pass, or a given embedding), one .npy per mask.

    Returns:
        How many mask vectors were written.
    """
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, default_collate

    count = 0
    # The loader's collation copies every mask once more: part of reading the masks back.
    loader = DataLoader(dataset, batch_size=1, collate_fn=profiler.wrap("mask read-back", default_collate))
    with torch.no_grad():
        for item in loader:
            image_name = item["image_name"][0]
            if encoder is not None:
                with profiler.stage("encoder pass 2"):
                    features = encoder(item["image"])
            else:
                with profiler.stage("oracle input"):
                    assert embeddings is not None
                    features = torch.from_numpy(embeddings[image_name])[None]
            with profiler.stage("features"):
                batch, channels = features.shape[:2]
                paths = {}
                for entry in item["masks"]:
                    mask = entry["mask"]
                    size = [int(mask.shape[2] / 4), int(mask.shape[3] / 4)]
                    resized_features = F.interpolate(features, size=size, mode="bilinear")
                    resized_mask = F.interpolate(mask, size=size, mode="bilinear")
                    masked = torch.mul(resized_features, resized_mask).view(batch, channels, -1)
                    mean = masked.sum(dim=2) / torch.count_nonzero(masked, dim=2)
                    mean[torch.isnan(mean)] = 0
                    path = vector_dir / f"{image_name}_{entry['mask_name'][0]}.npy"
                    np.save(path, mean.cpu().numpy())
                    paths[entry["mask_name"][0]] = str(path)
                    count += 1
                record = {"image_name": image_name, "mask_avg_vec": paths}
                (json_dir / f"{image_name}_mask_vec.json").write_text(json.dumps(record))
    return count


class OfficialVectorDataset:
    """Steps 3-4's dataset: every mask listed in the per-image JSONs, its vector loaded from its .npy."""

    def __init__(self, json_dir: Path) -> None:
        self.items: list[tuple[str, str, str]] = []
        for json_path in glob.glob(str(json_dir / "*.json")):
            record = json.loads(Path(json_path).read_text(encoding="utf-8"))
            for mask_name, vector_path in record["mask_avg_vec"].items():
                self.items.append((record["image_name"], mask_name, vector_path))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_name, mask_name, vector_path = self.items[index]
        return {"image_name": image_name, "mask_name": mask_name, "mask_vec": np.load(vector_path)}


def official_cluster(json_dir: Path, out_json: Path, k: int) -> None:
    """Steps 3-4: online k-means over the .npy files, then one predicted cluster per mask (JSON)."""
    from sklearn.cluster import MiniBatchKMeans
    from torch.utils.data import DataLoader

    dataset = OfficialVectorDataset(json_dir)
    kmeans = MiniBatchKMeans(n_clusters=k, random_state=0, batch_size=512, n_init="auto")
    for batch in DataLoader(dataset, batch_size=512, drop_last=False):
        kmeans = kmeans.partial_fit(np.squeeze(batch["mask_vec"].numpy(), 1))
    assignments: dict[str, dict[str, int]] = {}
    for batch in DataLoader(dataset, batch_size=512, drop_last=False):
        predicted = kmeans.predict(np.squeeze(batch["mask_vec"].numpy(), 1))
        for image_name, mask_name, cluster in zip(
            batch["image_name"], batch["mask_name"], predicted, strict=True
        ):
            assignments.setdefault(image_name, {})[mask_name] = int(cluster)
    out_json.write_text(json.dumps(assignments))


def official_paint(assignments_json: Path, mask_root: Path, label_dir: Path, vis_dir: Path, k: int) -> None:
    """Step 5: paint each image's label and colour map pixel by pixel from the mask PNGs."""
    import cv2

    palette = official_palette(k)
    assignments = json.loads(assignments_json.read_text())
    for image_name, clusters in assignments.items():
        label = vis = None
        for mask_name, cluster in clusters.items():
            mask = (
                np.array(cv2.imread(str(mask_root / f"{image_name}_all_mask" / f"{mask_name}.png"), 0))
                / 255.0
            )
            if label is None:
                label = np.zeros((*mask.shape, 1))
                vis = np.zeros((*mask.shape, 3))
            # Label: the mask times its cluster id, copied pixel by pixel (cluster 0 paints nothing).
            valued = (mask * cluster)[:, :, None]
            for row, col, channel in np.transpose(np.nonzero(valued)):
                label[row, col, channel] = valued[row, col, channel]
            # Colour map: the mask in its cluster's colour, copied pixel by pixel and channel by channel.
            coloured = np.repeat(mask[:, :, None], 3, axis=-1)
            for channel in range(3):
                coloured[:, :, channel] = coloured[:, :, channel] * palette[cluster][channel]
            for row, col, channel in np.transpose(np.nonzero(coloured)):
                vis[row, col, channel] = coloured[row, col, channel]
        if label is not None:
            cv2.imwrite(str(label_dir / f"{image_name}.png"), label)
            cv2.imwrite(str(vis_dir / f"{image_name}.png"), vis)


def official_encoder(checkpoint: Path, model_type: str) -> Any:
    """Step 2's encoder: a bare ViT image encoder loaded from the checkpoint's ``image_encoder.*`` keys."""
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT

    from alps.masks.sam import SAM_ARCHITECTURES

    arch = SAM_ARCHITECTURES[model_type]
    encoder = ImageEncoderViT(
        depth=arch.depth,
        embed_dim=arch.embed_dim,
        img_size=1024,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=arch.num_heads,
        patch_size=16,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=arch.global_attn_indexes,
        window_size=14,
        out_chans=256,
    )
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    encoder.load_state_dict(
        {
            key.removeprefix("image_encoder."): v
            for key, v in state.items()
            if key.startswith("image_encoder.")
        }
    )
    return encoder.eval()


OFFICIAL_FOLDERS = ("masks", "vectors", "vector_json", "labels", "vis")


def official_folders(root: Path) -> tuple[Path, ...]:
    """The official script's output folders (masks, vectors, vector_json, labels, vis), created."""
    folders = tuple(root / name for name in OFFICIAL_FOLDERS)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def official_store_masks(image: np.ndarray, records: list[dict[str, Any]], mask_root: Path, stem: str) -> int:
    """One PNG per mask in ``<stem>_all_mask/``, as the script stores them; returns how many."""
    folder = mask_root / f"{stem}_all_mask"
    folder.mkdir(exist_ok=True)
    return official_write_mask_folder(image, records, folder)


def official_cluster_and_paint(profiler: StageProfiler, root: Path, k: int) -> None:
    """The script's last two steps on the vectors in ``root``: k-means over all of them, then painting."""
    mask_root, _, jsons, labels, vis = (root / name for name in OFFICIAL_FOLDERS)
    with profiler.stage("clustering"):
        official_cluster(jsons, root / "mask2instance.json", k)
    with profiler.stage("painting"):
        official_paint(root / "mask2instance.json", mask_root, labels, vis, k)


def run_baseline(config: dict[str, Any]) -> dict[str, Any]:
    """(a): the official per-image design on the images, from SAM to painted labels."""
    import cv2
    from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

    profiler = StageProfiler()
    start, cpu_start = time.perf_counter(), time.process_time()
    root = Path(config["workdir"]) / "baseline"
    images = [Path(p) for p in config["images"]]
    mask_root, vectors, jsons, _, _ = official_folders(root)
    with profiler.stage("load models"):
        sam = sam_model_registry[config["model"]](checkpoint=config["checkpoint"])
        sam.mask_threshold = config["mask_threshold"]
        generator = SamAutomaticMaskGenerator(sam, **config["amg"])
    written = 0
    for path in images:
        with profiler.stage("masks (SAM AMG)"):
            image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            records = generator.generate(image)
        with profiler.stage("mask storage"):
            written += official_store_masks(image, records, mask_root, path.stem)
        del image, records
    del sam, generator
    with profiler.stage("load models"):
        encoder = official_encoder(Path(config["checkpoint"]), config["model"])
    dataset = OfficialMaskDataset(images, mask_root, profiler)
    official_features(dataset, profiler, vectors, jsons, encoder=encoder)
    official_cluster_and_paint(profiler, root, config["k"])
    return profiler.report(start, cpu_start, images=len(images), masks=written)


def run_post_baseline(config: dict[str, Any]) -> dict[str, Any]:
    """(c) baseline: the official steps after SAM, on oracle masks and the shared embeddings."""
    import cv2

    from alps.masks.coco import CocoMaskSource

    profiler = StageProfiler()
    start, cpu_start = time.perf_counter(), time.process_time()
    root = Path(config["workdir"]) / "post_baseline"
    images = [Path(p) for p in config["nwpu_images"]]
    mask_root, vectors, jsons, _, _ = official_folders(root)
    with profiler.stage("oracle input"):
        source = CocoMaskSource(config["coco_json"])
    written = 0
    for path in images:
        with profiler.stage("oracle input"):
            image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            records = oracle_records(source.generate(image, path.stem))
        with profiler.stage("mask storage"):
            written += official_store_masks(image, records, mask_root, path.stem)
    with profiler.stage("oracle input"):
        embeddings = load_embeddings(Path(config["workdir"]) / "embeddings", images)
    dataset = OfficialMaskDataset(images, mask_root, profiler, load_image=False)
    official_features(dataset, profiler, vectors, jsons, embeddings=embeddings)
    official_cluster_and_paint(profiler, root, config["k"])
    return profiler.report(start, cpu_start, images=len(images), masks=written)


def oracle_records(mask_set: Any) -> list[dict[str, Any]]:
    """AMG-style records (binary masks and the metadata the script writes) for oracle masks."""
    masks = mask_set.decode()
    boxes = mask_set.bbox.tolist()
    return [
        {
            "segmentation": mask,
            "area": int(area),
            "bbox": box,
            "point_coords": [[0.0, 0.0]],
            "predicted_iou": 1.0,
            "stability_score": 1.0,
            "crop_box": [0, 0, mask_set.width, mask_set.height],
        }
        for mask, area, box in zip(masks, mask_set.area, boxes, strict=True)
    ]


# ---------------------------------------------------------------------------------------------------------
# (b) The engine, with its stages timed by wrapping the functions ``alps.pipeline.label`` calls.


def profile_engine(profiler: StageProfiler, reading: str) -> None:
    """Charge the functions ``alps.pipeline.label`` calls to their stages, wrapped where it looks them up.

    ``label`` opens every image as a scene (``alps.geo.scene``) and reads its tiles through the scene;
    stores masks and features in one shard each; clusters through ``run_cluster`` (the keyed sample, the
    Ward initialisation and the Lloyd pass over the feature shard, model saved) and assigns
    masks with ``cluster_ids_by_mask``; paints labels, colour maps and overlays with
    ``alps.geo.scene.paint_scenes``; writes the cluster gallery (``alps.gallery.finish_label_dir``); and
    publishes every output at the end (``OutputSet.publish``: digests, renames into place). A wrapped
    function called by another (the gallery reading its example tiles through ``Scene``) is charged to the
    caller's stage; ``StageProfiler.check_called`` fails the run if a name is no longer called.

    Arguments:
        profiler: the profiler to charge.
        reading: the stage that image reading belongs to (``masks (SAM AMG)``: SAM's input; ``oracle
            input`` in (c), where no SAM runs).
    """
    import alps.figures
    import alps.gallery
    import alps.pipeline as pipeline
    from alps.geo.scene import Scene
    from alps.io.outputs import OutputSet

    # Opening a PNG/JPEG scene decodes it (size and bands); its tile is read again for the masks.
    pipeline.open_scenes = profiler.wrap(reading, pipeline.open_scenes)
    Scene.read_tile_with_valid = profiler.wrap(reading, Scene.read_tile_with_valid)  # type: ignore[method-assign]
    pipeline.write_mask_shard = profiler.wrap("mask storage", pipeline.write_mask_shard)
    for name in ("write_feature_shard", "read_feature_shard"):
        setattr(pipeline, name, profiler.wrap("features", getattr(pipeline, name)))
    # run_cluster reads the feature shard (twice: sample, then Lloyd pass) inside the fit: clustering.
    for name in ("run_cluster", "cluster_ids_by_mask"):
        setattr(pipeline, name, profiler.wrap("clustering", getattr(pipeline, name)))
    pipeline.paint_scenes = profiler.wrap("painting", pipeline.paint_scenes)
    # The overlays (the image read again and blended with a legend) are an output the official design does not
    # make: their time is moved out of painting into their own row.
    Scene.preview = profiler.wrap("overlays", Scene.preview, carve=True)  # type: ignore[method-assign]
    alps.figures.overlay_with_legend = profiler.wrap("overlays", alps.figures.overlay_with_legend, carve=True)
    # Publishing the outputs (digests, renames into place) replaced swapping the painted folders in.
    OutputSet.publish = profiler.wrap("painting", OutputSet.publish)  # type: ignore[method-assign]
    # label() imports it when it gets there, from the module: the module attribute is what it calls.
    alps.gallery.finish_label_dir = profiler.wrap("gallery", alps.gallery.finish_label_dir)


def run_engine(config: dict[str, Any]) -> dict[str, Any]:
    """(b): ``alps.pipeline.label`` with the sam backend (exact fast path) and the sam encoder."""
    import alps.pipeline as pipeline
    from alps.cluster import ClusterConfig
    from alps.features.encoders import build_encoder
    from alps.masks.sam import SamConfig, SamMaskGenerator

    profiler = StageProfiler()
    start, cpu_start = time.perf_counter(), time.process_time()
    profile_engine(profiler, "masks (SAM AMG)")
    with profiler.stage("load models"):
        generator = SamMaskGenerator.from_checkpoint(
            config["checkpoint"], config["model"], SamConfig(**config["amg"]), exact_fast_path=True
        )
        generator.model.mask_threshold = config["mask_threshold"]
        encoder = build_encoder("sam")
    generator.generate = profiler.wrap("masks (SAM AMG)", generator.generate)  # type: ignore[method-assign]
    encoder.features_for = profiler.wrap("features", encoder.features_for)  # type: ignore[method-assign]
    items = [pipeline.ImageItem(Path(p).stem, Path(p)) for p in config["images"]]
    card = pipeline.label(
        items,
        Path(config["workdir"]) / "engine",
        generator,
        encoder,
        ClusterConfig(k=config["k"], seed=0),
        area_threshold=AREA_THRESHOLD,
    )
    return profiler.report(
        start, cpu_start, images=len(items), masks=card["masks"], masks_kept=card["masks_kept"]
    )


class OracleSamMasks:
    """A ``sam`` mask backend that serves oracle masks with a precomputed SAM embedding (for (c))."""

    name = "sam"

    def __init__(self, coco_json: str, embeddings: dict[str, np.ndarray]) -> None:
        from alps.masks.coco import CocoMaskSource

        self.source = CocoMaskSource(coco_json)
        self.embeddings = embeddings

    def generate(self, image: np.ndarray, image_id: str) -> Any:
        """The image's COCO masks, carrying its embedding as the SAM backend's masks do."""
        mask_set = self.source.generate(image, image_id)
        mask_set.embedding = self.embeddings[image_id]
        return mask_set


def run_post_engine(config: dict[str, Any]) -> dict[str, Any]:
    """(c) engine: ``label`` on oracle masks and the shared embeddings (SAM itself not run)."""
    import alps.pipeline as pipeline
    from alps.cluster import ClusterConfig
    from alps.features.encoders import build_encoder
    from alps.geo.scene import WHOLE_IMAGE_TILE, SceneOptions

    profiler = StageProfiler()
    start, cpu_start = time.perf_counter(), time.process_time()
    # Reading the image stands in for SAM's input; the baseline's post-SAM steps read none either.
    profile_engine(profiler, "oracle input")
    images = [Path(p) for p in config["nwpu_images"]]
    with profiler.stage("oracle input"):
        generator = OracleSamMasks(
            config["coco_json"], load_embeddings(Path(config["workdir"]) / "embeddings", images)
        )
    generator.generate = profiler.wrap("oracle input", generator.generate)  # type: ignore[method-assign]
    encoder = build_encoder("sam")
    encoder.features_for = profiler.wrap("features", encoder.features_for)  # type: ignore[method-assign]
    items = [pipeline.ImageItem(p.stem, p) for p in images]
    card = pipeline.label(
        items,
        Path(config["workdir"]) / "post_engine",
        generator,
        encoder,
        ClusterConfig(k=config["k"], seed=0),
        area_threshold=AREA_THRESHOLD,
        # Oracle masks and embeddings belong to whole images (as label() does for the coco backend); the
        # default 1024 px tiles would cut the wider NWPU images into tiles that have neither.
        scene_options=SceneOptions(tile_size=WHOLE_IMAGE_TILE),
    )
    return profiler.report(
        start, cpu_start, images=len(items), masks=card["masks"], masks_kept=card["masks_kept"]
    )


def run_embed(config: dict[str, Any]) -> dict[str, Any]:
    """(c) set-up, untimed: one SAM embedding per oracle image (SAM's own preprocessing, RGB)."""
    import torch
    from segment_anything import SamPredictor

    from alps.io.images import read_image
    from alps.masks.sam import load_sam

    start = time.perf_counter()
    out = Path(config["workdir"]) / "embeddings"
    out.mkdir(parents=True, exist_ok=True)
    predictor = SamPredictor(load_sam(config["checkpoint"], config["model"]))
    with torch.inference_mode():
        for path in map(Path, config["nwpu_images"]):
            predictor.set_image(read_image(path))
            np.save(out / f"{path.stem}.npy", predictor.features[0].float().numpy())
    return {"total_seconds": time.perf_counter() - start}


def load_embeddings(folder: Path, images: list[Path]) -> dict[str, np.ndarray]:
    """The precomputed embeddings of ``images``, by file stem."""
    return {path.stem: np.load(folder / f"{path.stem}.npy") for path in images}


def import_everything() -> None:
    """Import every library the pipelines use, before any clock starts.

    One-time import costs (seconds for torch's compiler stack, which ``torch.use_deterministic_algorithms``
    pulls in, or for scikit-learn and matplotlib) do not grow with the number of images, so they are kept
    out of the per-image figures of both pipelines alike.
    """
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    for module in (
        "cv2",
        "matplotlib.pyplot",
        "psutil",
        "segment_anything",
        "sklearn.cluster",
        "torch._dynamo",
        "torch._inductor",
        "torch.utils.data",
        "torchvision.transforms",
        "alps.features.encoders",
        "alps.masks.coco",
        "alps.masks.sam",
        "alps.masks.shards",
        "alps.pipeline",
    ):
        importlib.import_module(module)


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "baseline": run_baseline,
    "engine": run_engine,
    "embed": run_embed,
    "post_baseline": run_post_baseline,
    "post_engine": run_post_engine,
}


# ---------------------------------------------------------------------------------------------------------
# Parent: set-up, one subprocess per pipeline, tables.


def run_child(mode: str, config_path: Path) -> dict[str, Any]:
    """Run one pipeline in a fresh interpreter (its own peak RSS) and return its JSON report."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--config", str(config_path)],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def nwpu_images(count: int) -> list[Path]:
    """The ``count`` NWPU VHR-10 images with the most annotated objects (ties by name)."""
    data = json.loads((NWPU / "instances_train.json").read_text())
    objects: dict[int, int] = defaultdict(int)
    for annotation in data["annotations"]:
        objects[annotation["image_id"]] += 1
    ranked = sorted(data["images"], key=lambda image: (-objects[image["id"]], image["file_name"]))
    return [NWPU / "images" / image["file_name"] for image in ranked[:count]]


def machine() -> str:
    """One line about the CPU, cores, memory and load the numbers were measured on."""
    import psutil
    import torch

    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{model}; {cores} cores usable, torch {torch.__version__} with {torch.get_num_threads()} threads; "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM; load average {load}"
    )


def stage_table(title: str, left: dict[str, Any], right: dict[str, Any], per: int) -> dict[str, list[float]]:
    """Print wall and CPU seconds per image and peak RSS per stage of baseline and engine.

    Arguments:
        title: the table's heading.
        left: the baseline's report.
        right: the engine's report.
        per: images, to express seconds per image.

    Returns:
        ``{"seconds": [baseline, engine], "cpu_seconds": [...]}``: totals over the table's stages.
    """
    print(f"\n{title}")
    columns = f"{'wall s/img':>11}{'CPU s/img':>10}{'RSS MB':>8}"
    print(f"{'':<18}{'baseline':^29}{'engine':^29}{'baseline / engine':>20}")
    print(f"{'stage':<18}{columns}{columns}{'wall':>10}{'CPU':>10}")
    totals: dict[str, list[float]] = {"seconds": [0.0, 0.0], "cpu_seconds": [0.0, 0.0]}

    def ratio(numerator: float, denominator: float) -> str:
        return f"{numerator / denominator:>9.1f}x" if numerator > 0 and denominator > 0 else f"{'':>10}"

    for stage in STAGES:
        entries = [report["stages"].get(stage) for report in (left, right)]
        if all(entry is None or entry["seconds"] < 0.005 * per for entry in entries):
            continue
        cells = ""
        for index, entry in enumerate(entries):
            if entry is None:
                cells += f"{'-':>11}{'-':>10}{'-':>8}"
                continue
            rss = f"{entry['peak_rss_mb']:>8.0f}" if entry["peak_rss_mb"] else f"{'':>8}"
            cells += f"{entry['seconds'] / per:>11.2f}{entry['cpu_seconds'] / per:>10.2f}{rss}"
            for key in totals:
                totals[key][index] += entry[key]
        wall = [entry["seconds"] if entry else 0.0 for entry in entries]
        cpu = [entry["cpu_seconds"] if entry else 0.0 for entry in entries]
        print(f"{stage:<18}{cells}{ratio(*wall)}{ratio(*cpu)}")
    cells = "".join(
        f"{totals['seconds'][i] / per:>11.2f}{totals['cpu_seconds'][i] / per:>10.2f}"
        f"{report['process_peak_rss_mb']:>8.0f}"
        for i, report in enumerate((left, right))
    )
    print(f"{'total':<18}{cells}{ratio(*totals['seconds'])}{ratio(*totals['cpu_seconds'])}")
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--isaid", type=int, default=1, help="iSAID 800x800 patches for (a)/(b)")
    parser.add_argument("--no-potsdam", action="store_true", help="leave the Potsdam 512x512 crop out")
    parser.add_argument("--nwpu", type=int, default=4, help="NWPU images with oracle masks for (c)")
    parser.add_argument("--points-per-side", type=int, default=16, help="AMG grid (32 = AMG's default)")
    parser.add_argument("--points-per-batch", type=int, default=64)
    parser.add_argument("--pred-iou-thresh", type=float, default=0.04)
    parser.add_argument("--stability-score-thresh", type=float, default=0.0)
    parser.add_argument("--box-nms-thresh", type=float, default=1.0)
    parser.add_argument("--mask-threshold", type=float, default=0.16, help="SAM's logit cut (SAM: 0)")
    parser.add_argument("--k", type=int, default=16, help="clusters (the paper's iSAID K)")
    parser.add_argument("--model", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
    parser.add_argument("--skip", nargs="*", default=[], choices=["e2e", "post"], help="parts to skip")
    parser.add_argument("--workdir", type=Path, help="keep the outputs here (default: a temporary folder)")
    args = parser.parse_args()
    if args.child:
        config = json.loads(args.config.read_text())
        import_everything()
        print(json.dumps(CHILDREN[args.child](config)))
        return

    if not SHARED_DATA.exists():
        sys.exit(f"the sample data folder {SHARED_DATA} is absent")
    images = sorted(ISAID_PATCHES.glob("*.png"))[: args.isaid] + ([] if args.no_potsdam else [POTSDAM_CROP])
    with tempfile.TemporaryDirectory() as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        import torch

        from alps.masks.sam import build_sam

        checkpoint = workdir / f"sam_{args.model}_random.pth"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            torch.save(build_sam(args.model).state_dict(), checkpoint)
        amg = {
            "points_per_side": args.points_per_side,
            "points_per_batch": args.points_per_batch,
            "pred_iou_thresh": args.pred_iou_thresh,
            "stability_score_thresh": args.stability_score_thresh,
            "box_nms_thresh": args.box_nms_thresh,
        }
        config = {
            "workdir": str(workdir),
            "checkpoint": str(checkpoint),
            "model": args.model,
            "amg": amg,
            "mask_threshold": args.mask_threshold,
            "k": args.k,
            "images": [str(p) for p in images],
            "nwpu_images": [str(p) for p in nwpu_images(args.nwpu)],
            "coco_json": str(NWPU / "instances_train.json"),
        }
        config_path = workdir / "config.json"
        config_path.write_text(json.dumps(config, indent=2))
        print(f"machine: {machine()}")
        print(
            f"SAM {args.model} with RANDOM weights (seed 0): mask counts and shapes differ from a trained "
            "SAM's, the nature of each stage's cost does not"
        )
        print(
            f"AMG: {amg}, mask logit cut {args.mask_threshold} (other settings segment_anything's "
            f"defaults); K = {args.k}; area threshold 0.3"
        )

        if "e2e" not in args.skip:
            print(f"\nimages (a)/(b): {', '.join(p.name for p in images)}")
            baseline = run_child("baseline", config_path)
            engine = run_child("engine", config_path)
            count = len(images)
            print(
                f"masks: baseline wrote {baseline['masks']} (area <= 0.3 of {count} images); engine kept "
                f"{engine['masks']} ({engine['masks_kept']} within the area threshold)"
            )
            totals = stage_table(
                "(a) baseline vs (b) engine, end to end (per image; peak process RSS while each stage ran)",
                baseline,
                engine,
                count,
            )
            for key, label in (("seconds", "wall"), ("cpu_seconds", "CPU")):
                base_total, engine_total = totals[key]
                removed = sum(baseline["stages"].get(s, {}).get(key, 0.0) for s in SECOND_PASS_STAGES)
                print(
                    f"{label}: images/hour baseline {3600 * count / base_total:.1f}, "
                    f"engine {3600 * count / engine_total:.1f}; end-to-end speedup "
                    f"{base_total / engine_total:.2f}x; predicted by dropping the baseline's "
                    f"{' + '.join(SECOND_PASS_STAGES)}: {base_total / (base_total - removed):.2f}x"
                )

        if "post" not in args.skip:
            nwpu = [Path(p) for p in config["nwpu_images"]]
            names = ", ".join(p.name for p in nwpu)
            print(f"\n(c) post-SAM stages on NWPU oracle masks: {len(nwpu)} images ({names})")
            embed = run_child("embed", config_path)
            print(f"one shared SAM embedding per image computed beforehand in {embed['total_seconds']:.0f} s")
            post_baseline = run_child("post_baseline", config_path)
            post_engine = run_child("post_engine", config_path)
            print(
                f"masks: {post_engine['masks']} ({post_engine['masks_kept']} within the area threshold; "
                f"baseline wrote {post_baseline['masks']})"
            )
            totals = stage_table(
                "post-SAM stages (oracle masks and embeddings fed in untimed)",
                post_baseline,
                post_engine,
                len(nwpu),
            )
            for key, label in (("seconds", "wall"), ("cpu_seconds", "CPU")):
                base_post, engine_post = totals[key]
                extra = sum(post_engine["stages"].get(s, {}).get(key, 0.0) for s in EXTRA_OUTPUT_STAGES)
                print(
                    f"{label}: post-SAM speedup {base_post / engine_post:.1f}x with all the engine writes; "
                    f"{base_post / (engine_post - extra):.1f}x for the outputs both make (labels and colour "
                    f"maps: without the {' and '.join(EXTRA_OUTPUT_STAGES)} rows) (target >= 20x)"
                )
        print(f"\nload average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
