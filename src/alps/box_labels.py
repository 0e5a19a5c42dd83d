"""SAMRS* labels (the paper's Table 3a baseline): SAM prompted with detection boxes, painted with their class.

SAMRS (Wang et al., NeurIPS 2023) turns detection boxes into segmentation labels by prompting SAM with each
box. The ALPS paper's SAMRS* does the same with the boxes of a detector (mmrotate's Oriented RepPoints)
instead of ground truth, so that both pipelines start from unlabeled images; ``docs/samrs_star.md`` has the
whole procedure. Here:

* every box is one SAM prompt: its horizontal bounding rectangle (``Box.hbb``, clipped to the image or
  window), ``multimask_output=False``, so one mask per box;
* the mask is cut to the prompt box's pixels (``box_pixel_bounds``): a box prompt asks for the object inside
  the box, and SAM's 256x256 decoder output, upsampled, can leak past it;
* the mask gets the class id of the box's class in the vocabulary (``--classes``, ids 0..n-1 in the given
  order); pixels no mask covers are 255 (unlabeled);
* masks are painted largest first, so smaller objects on larger ones stay visible (``alps.paint``'s rule;
  equal areas in box order).

``label_box_shard`` labels one shard of a manifest split and writes the folder ``alps paint`` writes
(``labels/``, ``vis/``, ``paint_stats.json`` with ``labeler: samrs-star`` and the class names), so
``alps pl-dataset`` gathers SAMRS* shards unchanged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from segment_anything.modeling import Sam

from alps import __version__
from alps.boxes import Box, BoxSource
from alps.defaults import SHARD_SIZE
from alps.io.atomic import atomic_write_text
from alps.io.images import check_rgb_image, read_image
from alps.io.manifest import read_manifest
from alps.io.outputs import check_output_folder, output_folder
from alps.masks.base import MaskSet, encode_masks
from alps.masks.sam import EmbeddingKeepingPredictor, load_sam, usable_bf16
from alps.paint import UNLABELED, paint_mask_sets
from alps.progress import track
from alps.sharding import images_from_source, select_shard

log = logging.getLogger(__name__)

LABELER_NAME = "samrs-star"
"""The ``labeler`` that SAMRS* shards and the PL datasets built from them record."""
WRITER = "alps box-labels"
"""The painted shards' writer (``alps.io.outputs``): a rerun replaces only its own shard."""

DEFAULT_BATCH_SIZE = 64
"""Box prompts decoded at once."""

MAX_BATCH_PIXELS = 1 << 27
"""Cap on ``boxes x H x W`` per decoder batch: SAM upsamples every mask's logits to the image size as float32
(``1 << 27`` values = 512 MiB), so on large images fewer boxes go in one batch."""


# ------------------------------------------------------------------------------------------- vocabulary


def read_classes(spec: str | os.PathLike[str] | Sequence[str]) -> tuple[str, ...]:
    """The class vocabulary: names whose position is the label id (0..n-1).

    Arguments:
        spec: a path ending in ``.json`` (a JSON list of names, or an object with a ``"classes"`` list like
            the datasets' ``classes.json``), a comma-separated string (``"plane,ship,harbor"``), or a
            sequence of names.

    Returns:
        The names, in order.

    Raises:
        FileNotFoundError: the ``.json`` file does not exist.
        ValueError: not valid JSON, no list of strings, an empty or duplicate name, or more than 255
            names (255 marks unlabeled pixels).
    """
    where = "--classes"
    if isinstance(spec, str | os.PathLike) and str(spec).lower().endswith(".json"):
        path = Path(spec)
        where = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"classes file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        names = data.get("classes") if isinstance(data, dict) else data
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: expected a list of class names, or an object with a 'classes' list")
    elif isinstance(spec, str | os.PathLike):
        names = str(spec).split(",")
    else:
        names = list(spec)
    names = [str(n).strip() for n in names]
    if not names or names == [""]:
        raise ValueError(f"{where}: no class names")
    for index, name in enumerate(names):
        if not name:
            raise ValueError(f"{where}: class {index} has an empty name")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{where}: class names must be unique; repeated: {duplicates}")
    if len(names) > UNLABELED:
        raise ValueError(f"{where}: {len(names)} classes; at most {UNLABELED} ({UNLABELED} marks unlabeled)")
    return tuple(names)


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(" ", "-")


def class_id(box: Box, vocabulary: Mapping[str, int]) -> int:
    """The label id of a box's class.

    Arguments:
        box: the box (its ``origin`` and ``line`` name it in the error).
        vocabulary: class name -> id.

    Returns:
        The id.

    Raises:
        ValueError: the class is not in the vocabulary (the message names file, line and class, and a
            vocabulary name that differs only in case or separators, if there is one).
    """
    if box.class_name in vocabulary:
        return vocabulary[box.class_name]
    near = [n for n in vocabulary if _normalized(n) == _normalized(box.class_name)]
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    names = ", ".join(list(vocabulary)[:20]) + (", ..." if len(vocabulary) > 20 else "")
    raise ValueError(
        f"{box.where}: class {box.class_name!r} is not in the vocabulary ({names}){hint}; add it to "
        "--classes or pass --skip-unknown to leave such boxes out"
    )


# ------------------------------------------------------------------------------------------- prompting


def box_pixel_bounds(hbb: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """The pixels a box covers: every pixel whose square ``[c, c+1) x [r, r+1)`` overlaps it.

    Arguments:
        hbb: ``(x0, y0, x1, y1)`` in pixel coordinates (pixel ``c`` spans ``x`` in ``[c, c+1)``).
        height: image height.
        width: image width.

    Returns:
        ``(row0, row1, col0, col1)``, end exclusive, clipped to the image (empty if the box has no area).
    """
    x0, y0, x1, y1 = (float(v) for v in hbb)
    col0, col1 = max(0, math.floor(x0)), min(width, math.ceil(x1))
    row0, row1 = max(0, math.floor(y0)), min(height, math.ceil(y1))
    if x1 <= x0 or y1 <= y0:
        return row0, row0, col0, col0
    return row0, max(row0, row1), col0, max(col0, col1)


@runtime_checkable
class BoxMaskPredictor(Protocol):
    """Turns an image and its box prompts into one mask per box (``BoxPromptLabeler``; fakes in tests)."""

    def predict_masks(self, image: NDArray[np.uint8], boxes: ArrayLike, image_id: str) -> MaskSet:
        """One mask per box, in box order (empty masks kept), inside each box's pixels."""
        ...


def _check_boxes(boxes: ArrayLike, image_id: str) -> NDArray[np.float64]:
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
    if not np.isfinite(array).all() or (array[:, 2] < array[:, 0]).any() or (array[:, 3] < array[:, 1]).any():
        raise ValueError(f"image {image_id}: boxes must be finite (x0, y0, x1, y1) with x0 <= x1, y0 <= y1")
    return array


class BoxPromptLabeler:
    """SAM prompted with boxes: one mask per box (``multimask_output=False``), cut to the box.

    Arguments:
        model: a loaded SAM (``alps.masks.sam.load_sam``); it runs on the device it is on.
        bf16: bfloat16 autocast of the image encoder (CUDA only; on CPU it is ignored with a warning, as
            ``SamMaskGenerator`` does).
        batch_size: box prompts decoded at once (fewer on large images, see ``MAX_BATCH_PIXELS``).
        description: what the model is (recorded in the shard's ``paint_stats.json``).
    """

    def __init__(
        self,
        model: Sam,
        *,
        bf16: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        description: Mapping[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.bf16 = bf16 = usable_bf16(bf16, self.device)
        self.batch_size = batch_size
        # The same predictor the sam mask backend uses: bf16 autocast of the encoder only, float32 decoder.
        self._predictor = EmbeddingKeepingPredictor(self.model, bf16)
        self.description = {**(description or {}), "bf16": bf16, "batch_size": batch_size}

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike[str],
        model_type: str,
        *,
        device: str = "cpu",
        bf16: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> BoxPromptLabeler:
        """Load SAM with ``load_sam`` and wrap it.

        Arguments:
            checkpoint: the official ``.pth`` weights.
            model_type: ``vit_h``, ``vit_l`` or ``vit_b`` (``vit_tiny`` for tests).
            device: ``cpu`` or ``cuda`` (``cuda:N``).
            bf16: bfloat16 autocast of the encoder (CUDA only).
            batch_size: box prompts decoded at once.

        Returns:
            The labeler.
        """
        description = {"sam_model": model_type, "sam_checkpoint": Path(checkpoint).name}
        return cls(
            load_sam(checkpoint, model_type, device),
            bf16=bf16,
            batch_size=batch_size,
            description=description,
        )

    @property
    def device(self) -> torch.device:
        """The device the model's weights are on."""
        return self.model.device

    def predict_masks(self, image: NDArray[np.uint8], boxes: ArrayLike, image_id: str) -> MaskSet:
        """Prompt SAM with every box of one image.

        Arguments:
            image: ``(H, W, 3)`` uint8 RGB.
            boxes: ``(N, 4)`` boxes ``(x0, y0, x1, y1)`` in the image's pixel coordinates.
            image_id: the image's id (for the mask set and messages).

        Returns:
            ``N`` masks in box order (empty ones kept, so mask ``i`` belongs to box ``i``), each cut to its
            box's pixels (``box_pixel_bounds``), with SAM's predicted IoU; stability scores are 1 (not
            computed). With no box, SAM does not run.
        """
        image = check_rgb_image(image, f"image {image_id}")
        prompts = _check_boxes(boxes, image_id)
        height, width = image.shape[:2]
        if len(prompts) == 0:
            return MaskSet(image_id, height, width, [], np.zeros(0), np.zeros(0))
        per_batch = max(1, min(self.batch_size, MAX_BATCH_PIXELS // (height * width)))
        rles: list[dict[str, Any]] = []
        ious: list[np.ndarray] = []
        with torch.inference_mode(), self._image(image):
            for start in range(0, len(prompts), per_batch):
                chunk = prompts[start : start + per_batch]
                masks, iou = self._decode(chunk, (height, width))
                for mask, box in zip(masks, chunk, strict=True):
                    row0, row1, col0, col1 = box_pixel_bounds(box, height, width)
                    mask[:row0] = False
                    mask[row1:] = False
                    mask[:, :col0] = False
                    mask[:, col1:] = False
                rles.extend(encode_masks(masks))
                ious.append(iou)
        return MaskSet(image_id, height, width, rles, np.concatenate(ious), np.ones(len(rles), np.float32))

    @contextlib.contextmanager
    def _image(self, image: NDArray[np.uint8]) -> Iterator[None]:
        """Encode ``image`` once for all its prompts; drop the embedding afterwards, even on failure."""
        try:
            self._predictor.set_image(image)
            yield
        finally:
            self._predictor.reset_image()
            self._predictor.last_features = None

    def _decode(self, boxes: NDArray[np.float64], size: tuple[int, int]) -> tuple[NDArray[np.bool_], NDArray]:
        """Masks ``(B, H, W)`` and predicted IoUs ``(B,)`` of a batch of boxes on the current image."""
        prompts = torch.as_tensor(boxes, dtype=torch.float32, device=self.device)
        prompts = self._predictor.transform.apply_boxes_torch(prompts, size)
        masks, iou, _ = self._predictor.predict_torch(None, None, boxes=prompts, multimask_output=False)
        return masks[:, 0].cpu().numpy(), iou[:, 0].float().cpu().numpy()


# ----------------------------------------------------------------------------------------------- shards


def _row_lookup(manifest: Path) -> dict[str, dict[str, Any]]:
    frame = read_manifest(manifest)
    return {str(row["image_id"]): row for row in frame.to_dict("records")}


def label_box_shard(
    manifest: str | os.PathLike[str],
    boxes: str | os.PathLike[str] | BoxSource,
    out_dir: str | os.PathLike[str],
    labeler: BoxMaskPredictor,
    classes: Sequence[str],
    *,
    split: str | None = "train",
    shard_index: int | None = None,
    shard_size: int = SHARD_SIZE,
    skip_unknown: bool = False,
    min_score: float | None = None,
) -> dict[str, Any]:
    """Paint the SAMRS* labels of one shard of a manifest split (``alps box-labels``).

    The shard is ``select_shard`` of the split's images sorted by id, as for ``alps masks``; which boxes
    belong to which image is ``BoxSource.boxes_for_image`` (``alps.boxes``). The output folder is built
    beside ``out_dir`` and swapped in whole, so a failed run leaves the previous shard (or nothing), never
    half of one.

    Arguments:
        manifest: the prepared dataset's ``manifest.csv``.
        boxes: the box files (per-image DOTA folder, Task1 folder or zip), or an open ``BoxSource``.
        out_dir: the painted shard folder: ``labels/<id>.png``, ``vis/<id>.png``, ``paint_stats.json``.
        labeler: the box-prompted SAM (``BoxPromptLabeler``).
        classes: the vocabulary (label id = position, see ``read_classes``).
        split: the manifest split (None: all rows).
        shard_index: 0-based shard; None labels the whole split as one shard.
        shard_size: images per shard.
        skip_unknown: leave out boxes whose class is not in ``classes`` (counted) instead of failing.
        min_score: leave out boxes whose detection score is below this (boxes without a score are kept).

    Returns:
        The shard's statistics (also written to ``paint_stats.json``): ``alps paint``'s keys (``images``,
        ``k``, ``class_pixels``, ``coverage``, ``labeler``, ``classes``) plus box counts and, per image,
        the name its boxes were found under and how they were mapped.

    Raises:
        BoxFileError: a malformed box file, or (per-image layout) an image without a box file.
        ValueError: a box of a class outside ``classes`` (without ``skip_unknown``), an image whose size
            differs from the manifest's, a bad vocabulary or shard.
    """
    manifest = Path(manifest)
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    vocabulary = {name: index for index, name in enumerate(read_classes(classes))}
    source = boxes if isinstance(boxes, BoxSource) else BoxSource(boxes)
    inputs = [manifest.parent, source.path]
    check_output_folder(out_dir, WRITER, inputs=inputs)  # before SAM's work, not after it
    items = images_from_source(manifest, split)
    if shard_index is not None:
        items = select_shard(items, shard_index, shard_size)
    rows = _row_lookup(manifest)
    counts = {"listed": 0, "outside_image": 0, "below_min_score": 0, "unknown_class": 0, "prompted": 0}
    per_image: dict[str, dict[str, Any]] = {}
    mask_sets: list[MaskSet] = []
    label_ids: dict[str, np.ndarray] = {}
    for item in track(items, "box prompts", "img"):
        row = rows[item.image_id]
        height, width = int(row["height"]), int(row["width"])
        window = (int(row["window_x"]), int(row["window_y"]), int(row["window_w"]), int(row["window_h"]))
        found = source.boxes_for_image(item.image_id, str(row["source"]), window, (height, width))
        kept: list[Box] = []
        ids: list[int] = []
        for box in found.boxes:
            if min_score is not None and box.score is not None and box.score < min_score:
                counts["below_min_score"] += 1
                continue
            if skip_unknown and box.class_name not in vocabulary:
                counts["unknown_class"] += 1
                continue
            ids.append(class_id(box, vocabulary))
            kept.append(box)
        counts["listed"] += found.listed
        counts["outside_image"] += found.listed - len(found.boxes)
        counts["prompted"] += len(kept)
        image = read_image(item.path)
        if image.shape[:2] != (height, width):
            raise ValueError(
                f"{item.path}: image is {image.shape[1]}x{image.shape[0]} but {manifest} says "
                f"{width}x{height}; the manifest is stale: prepare the dataset again"
            )
        mask_set = labeler.predict_masks(image, [box.hbb for box in kept], item.image_id)
        if len(mask_set) != len(kept):
            raise RuntimeError(f"image {item.image_id}: {len(mask_set)} masks for {len(kept)} box prompts")
        mask_sets.append(mask_set)
        label_ids[item.image_id] = np.asarray(ids, dtype=np.int64)
        per_image[item.image_id] = {"boxes_from": found.matched, "mapping": found.rule, "boxes": len(kept)}
        log.info("%s: %d boxes (%s %s)", item.image_id, len(kept), found.rule, found.matched or "-")
    # Painted beside out_dir, then the folder is swapped in whole (alps.io.outputs).
    with output_folder(out_dir, WRITER, inputs=inputs) as staging:
        stats = paint_mask_sets(
            mask_sets, label_ids, staging, k=len(vocabulary), labeler=LABELER_NAME, classes=list(vocabulary)
        )
        stats.update(
            {
                "boxes": counts,
                "box_source": {"path": str(source.path), "layout": source.layout},
                "split": split,
                "shard_index": shard_index,
                "shard_size": shard_size,
                "skip_unknown": skip_unknown,
                "min_score": min_score,
                "prompt_model": dict(getattr(labeler, "description", {})),
                "per_image": per_image,
                "alps_version": __version__,
            }
        )
        # Written last inside the staging folder.
        atomic_write_text(staging / "paint_stats.json", json.dumps(stats, indent=2) + "\n")
    return stats


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "LABELER_NAME",
    "MAX_BATCH_PIXELS",
    "BoxMaskPredictor",
    "BoxPromptLabeler",
    "box_pixel_bounds",
    "class_id",
    "label_box_shard",
    "read_classes",
]
