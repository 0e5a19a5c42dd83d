"""Exact fast path of Segment Anything's automatic mask generator (AMG): same masks, less work.

``ExactFastAMG`` is a drop-in ``SamAutomaticMaskGenerator`` whose ``generate`` returns records equal to
stock AMG's in every field and every output mode (masks bit for bit, scores, boxes, points, crop boxes, and
even the value types). It runs the same model calls on the same inputs (the image encoder once per crop, the
mask decoder on the same batches of ``points_per_batch`` prompts); only the bookkeeping around them changes:

1. **Predicted-IoU filter before upsampling.** Stock AMG upsamples all ``3 * points_per_batch`` low-res
   logit maps (256x256) to 1024x1024 and then to the crop size, and only then drops the masks whose predicted
   IoU is below ``pred_iou_thresh``. The IoU comes from the decoder, not from the upsampled logits, and
   bilinear upsampling treats every map on its own (same arithmetic whatever the batch), so filtering the
   low-res maps first gives the same survivors with the same logits.
2. **Upsampling in chunks, survivors only.** The stability score is a ratio of pixel counts of the
   *upsampled* logits thresholded at ``mask_threshold +- offset``; those counts depend on every interpolated
   value, so it cannot be computed exactly at 256x256. The IoU survivors are therefore upsampled (with SAM's
   own ``postprocess_masks``, in stock's rows of 3 maps: see ``ExactFastAMG._upsample``) a chunk at a time,
   their stability is computed with segment_anything's own ``calculate_stability_score``, and only the
   binary masks of the stability survivors are kept: peak memory is a chunk of float maps instead of
   ``3 * points_per_batch`` of them.
3. **One C-level COCO RLE encoding per mask.** Stock AMG builds uncompressed RLEs with a Python loop whose
   cost grows with (masks x runs), deep-copies those long Python lists each time it concatenates batch and
   crop results, and finally re-encodes them with ``frPyObjects``. Here each surviving mask is encoded once,
   by pycocotools' C encoder, straight into the compressed string (column-major runs starting with the
   zero run: the same canonical run-length code, hence the same string); lists are concatenated without deep
   copies. ``binary_mask`` output decodes that string with pycocotools; ``uncompressed_rle`` output rebuilds
   the count list from it.
4. **Boxes computed once.** Boxes come from per-row / per-column ``any`` of the binary masks (the same
   integer edges as ``batched_mask_to_box``). ``min_mask_region_area`` post-processing reuses the stored box
   of every mask that the hole/island removal left unchanged (an unchanged non-empty mask has the box it had;
   an empty one gets stock's ``[0, 0, 0, 0]``) and computes boxes only for changed masks, decoding one mask at
   a time instead of stacking all of them.

Stock quirks that show in the output are kept on purpose: a batch in which no mask survives the stability
filter yields float32 boxes, so torch's type promotion turns the crop's (or image's) boxes, hence its
``bbox`` lists, into floats; an empty mask has a NaN stability score.

``tests/masks/test_fast_amg.py`` checks the equality against stock AMG on a random-weight SAM for several
images and settings; ``docs/performance.md`` has the measured gains.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from pycocotools import mask as mask_utils
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.utils.amg import (
    MaskData,
    batch_iterator,
    calculate_stability_score,
    generate_crop_boxes,
    is_box_near_crop_edge,
    remove_small_regions,
    uncrop_boxes_xyxy,
    uncrop_points,
)
from torchvision.ops.boxes import batched_nms, box_area

from alps.masks.base import rle_area

# Low-res logit maps upsampled at once (a multiple of 3, see ``_upsample``): each costs 4 MB at 1024x1024
# plus 4 bytes per crop pixel, so a chunk of 18 stays near 100 MB for tiles up to ~1500 px, against ~1.3 GB
# for stock's 192 maps at once (points_per_batch 64).
UPSAMPLE_CHUNK = 18


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """XYXY boxes of binary masks, exactly as ``segment_anything.utils.amg.batched_mask_to_box``.

    Right and bottom edges are the last covered column and row (inclusive); an empty mask gets
    ``[0, 0, 0, 0]``. Like the stock function, an input with no elements yields a float32 ``(..., 4)``
    zero tensor (stock AMG's boxes inherit that dtype; see the module docstring).

    Arguments:
        masks: a boolean ``(N, H, W)`` tensor.

    Returns:
        An int64 ``(N, 4)`` tensor ``[x0, y0, x1, y1]`` on the masks' device.
    """
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, device=masks.device)
    height, width = masks.shape[-2:]
    rows = masks.any(dim=-1).to(torch.uint8)  # (N, H): rows the mask touches
    cols = masks.any(dim=-2).to(torch.uint8)  # (N, W)
    # argmax returns the first maximal index: the first covered row/column, from either end.
    top = rows.argmax(dim=-1)
    bottom = (height - 1) - rows.flip(-1).argmax(dim=-1)
    left = cols.argmax(dim=-1)
    right = (width - 1) - cols.flip(-1).argmax(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    empty = ~rows.any(dim=-1)
    return boxes * (~empty).unsqueeze(-1)


def _mask_box(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """``masks_to_boxes`` of one ``(H, W)`` numpy mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return np.zeros(4, dtype=np.int64)
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.int64)


def encode_rles(
    masks: torch.Tensor, crop_box: list[int] | tuple[int, ...], orig_h: int, orig_w: int
) -> list[dict[str, Any]]:
    """COCO-RLE-encode crop-frame binary masks as full-image masks, in one pass of pycocotools' C encoder.

    The result's ``counts`` equal ``frPyObjects(mask_to_rle_pytorch(uncrop_masks(masks, ...)))``: both are
    the column-major run lengths of the full-image mask, starting with the run of zeros.

    Arguments:
        masks: a boolean ``(N, h, w)`` tensor in the frame of ``crop_box`` (any device).
        crop_box: ``[x0, y0, x1, y1]`` of the crop in the image.
        orig_h: image height.
        orig_w: image width.

    Returns:
        ``N`` dicts ``{"size": [orig_h, orig_w], "counts": bytes}``.
    """
    count = int(masks.shape[0])
    if count == 0:
        return []
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    # pycocotools wants an (H, W, N) Fortran-ordered uint8 array, i.e. N planes of W columns of H pixels
    # in memory: a C-ordered (N, W, H) buffer seen through a transpose. The crop lands in its window of
    # zeros (stock AMG pads the crop mask to the image the same way before encoding).
    columns = masks.transpose(1, 2).cpu().numpy()
    if (x0, y0, x1, y1) == (0, 0, orig_w, orig_h):
        planes = np.ascontiguousarray(columns).view(np.uint8)
    else:
        planes = np.zeros((count, orig_w, orig_h), dtype=np.uint8)
        planes[:, x0:x1, y0:y1] = columns
    return list(mask_utils.encode(planes.transpose(2, 1, 0)))


def uncompressed_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """The uncompressed RLE (``{"size", "counts": list of int}``) that stock AMG keeps for a mask.

    Arguments:
        rle: a COCO compressed RLE.

    Returns:
        What ``segment_anything.utils.amg.mask_to_rle_pytorch`` gives for the decoded mask: column-major run
        lengths as Python ints, a leading 0 when the first pixel is set.
    """
    height, width = (int(v) for v in rle["size"])
    flat = mask_utils.decode(rle).ravel(order="F")
    edges = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [height * width]))
    counts = np.diff(edges).tolist()
    return {"size": [height, width], "counts": ([0] if flat[0] else []) + counts}


def concat_mask_data(parts: list[MaskData]) -> MaskData:
    """Concatenate ``MaskData`` parts as repeated ``MaskData.cat`` would, without its deep copies.

    Tensors are concatenated with one ``torch.cat`` (the same dtype promotion as pairwise concatenation),
    lists are chained; the parts' lists hold immutable-content RLE dicts that are never modified in place
    afterwards (post-processing replaces list items), so sharing them is safe.

    Arguments:
        parts: the batch (or crop) results, all with the same keys.

    Returns:
        One ``MaskData`` holding every part's rows in order.
    """
    data = MaskData()
    if not parts:
        return data
    for key, first in parts[0].items():
        values = [part[key] for part in parts]
        if isinstance(first, torch.Tensor):
            data[key] = torch.cat(values, dim=0) if len(values) > 1 else first
        elif isinstance(first, np.ndarray):
            data[key] = np.concatenate(values, axis=0) if len(values) > 1 else first
        elif isinstance(first, list):
            data[key] = list(chain.from_iterable(values))
        else:
            raise TypeError(f"MaskData key {key} has an unsupported type {type(first)}.")
    return data


class ExactFastAMG(SamAutomaticMaskGenerator):
    """``SamAutomaticMaskGenerator`` with the exact fast path of the module docstring.

    Takes stock AMG's constructor arguments (``point_grids`` and every output mode included) and returns
    what stock AMG returns for them.

    Internally ``MaskData["rles"]`` holds COCO compressed RLEs (``counts`` as bytes) instead of stock's
    uncompressed count lists; subclasses that read it must expect that.
    """

    upsample_chunk: int = UPSAMPLE_CHUNK

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Generate the masks of one image, exactly as ``SamAutomaticMaskGenerator.generate``.

        Arguments:
            image: ``(H, W, 3)`` uint8 RGB array.

        Returns:
            One record per mask with ``segmentation`` (in ``output_mode``), ``area``, ``bbox`` (XYWH),
            ``predicted_iou``, ``point_coords``, ``stability_score`` and ``crop_box`` (XYWH).
        """
        mask_data = self._generate_masks(image)
        if self.min_mask_region_area > 0:
            mask_data = self.postprocess_small_regions(
                mask_data,
                self.min_mask_region_area,
                max(self.box_nms_thresh, self.crop_nms_thresh),
            )
        return self._records(mask_data)

    def _records(self, mask_data: MaskData) -> list[dict[str, Any]]:
        """Stock's output records, built from the compressed RLEs with vectorised box conversion."""
        rles = mask_data["rles"]
        if not rles:
            return []
        if self.output_mode == "coco_rle":
            # Stock decodes the bytes to str so that records serialise to json.
            segmentations: list[Any] = [
                {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("utf-8")}
                for rle in rles
            ]
        elif self.output_mode == "binary_mask":
            segmentations = [mask_utils.decode(rle).astype(bool) for rle in rles]
        else:
            segmentations = [uncompressed_rle(rle) for rle in rles]
        areas = rle_area(rles).tolist()
        boxes = _xyxy_to_xywh(np.asarray(mask_data["boxes"])).tolist()
        crop_boxes = _xyxy_to_xywh(np.asarray(mask_data["crop_boxes"])).tolist()
        ious = np.asarray(mask_data["iou_preds"]).tolist()
        stabilities = np.asarray(mask_data["stability_score"]).tolist()
        points = np.asarray(mask_data["points"]).tolist()
        return [
            {
                "segmentation": segmentations[index],
                "area": areas[index],
                "bbox": boxes[index],
                "predicted_iou": ious[index],
                "point_coords": [points[index]],
                "stability_score": stabilities[index],
                "crop_box": crop_boxes[index],
            }
            for index in range(len(rles))
        ]

    def _generate_masks(self, image: np.ndarray) -> MaskData:
        """Stock ``_generate_masks``, concatenating the crops without deep copies."""
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        data = concat_mask_data(
            [
                self._process_crop(image, crop_box, layer_idx, orig_size)
                for crop_box, layer_idx in zip(crop_boxes, layer_idxs, strict=True)
            ]
        )
        # Remove duplicate masks between crops, preferring masks from smaller crops (as stock).
        if len(crop_boxes) > 1:
            scores = 1 / box_area(data["crop_boxes"])
            scores = scores.to(data["boxes"].device)
            keep_by_nms = batched_nms(
                data["boxes"].float(),
                scores,
                torch.zeros(len(data["boxes"])),
                iou_threshold=self.crop_nms_thresh,
            )
            data.filter(keep_by_nms)
        data.to_numpy()
        return data

    def _process_crop(
        self,
        image: np.ndarray,
        crop_box: list[int],
        crop_layer_idx: int,
        orig_size: tuple[int, ...],
    ) -> MaskData:
        """Stock ``_process_crop`` (encode the crop, decode its point grid, box NMS), minus deep copies."""
        x0, y0, x1, y1 = crop_box
        cropped_im = image[y0:y1, x0:x1, :]
        cropped_im_size = cropped_im.shape[:2]
        self.predictor.set_image(cropped_im)
        points_scale = np.array(cropped_im_size)[None, ::-1]
        points_for_image = self.point_grids[crop_layer_idx] * points_scale
        data = concat_mask_data(
            [
                self._process_batch(points, cropped_im_size, crop_box, orig_size)
                for (points,) in batch_iterator(self.points_per_batch, points_for_image)
            ]
        )
        self.predictor.reset_image()
        keep_by_nms = batched_nms(
            data["boxes"].float(),
            data["iou_preds"],
            torch.zeros(len(data["boxes"])),
            iou_threshold=self.box_nms_thresh,
        )
        data.filter(keep_by_nms)
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor([crop_box for _ in range(len(data["rles"]))])
        return data

    def _predict_low_res(
        self, point_coords: torch.Tensor, point_labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``SamPredictor.predict_torch`` (multimask) without its upsampling: low-res logits and IoUs.

        Arguments:
            point_coords: ``(B, 1, 2)`` prompts in the encoder input frame.
            point_labels: ``(B, 1)`` labels (1 = foreground).

        Returns:
            ``(B, 3, 256, 256)`` mask logits and ``(B, 3)`` predicted IoUs.
        """
        predictor = self.predictor
        if not predictor.is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        model = predictor.model
        sparse_embeddings, dense_embeddings = model.prompt_encoder(
            points=(point_coords, point_labels), boxes=None, masks=None
        )
        low_res_masks, iou_predictions = model.mask_decoder(
            image_embeddings=predictor.features,
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse_embeddings,
            dense_prompt_embeddings=dense_embeddings,
            multimask_output=True,
        )
        return low_res_masks, iou_predictions

    def _process_batch(
        self,
        points: np.ndarray,
        im_size: tuple[int, ...],
        crop_box: list[int],
        orig_size: tuple[int, ...],
    ) -> MaskData:
        """Decode one batch of prompts and keep its confident, stable masks, as stock AMG does.

        Arguments:
            points: ``(B, 2)`` prompts in crop pixels.
            im_size: ``(h, w)`` of the crop.
            crop_box: the crop's ``[x0, y0, x1, y1]`` in the image.
            orig_size: ``(H, W)`` of the image.

        Returns:
            ``MaskData`` with ``iou_preds``, ``points``, ``stability_score``, ``boxes`` (crop frame) and
            ``rles`` (COCO compressed, image frame).
        """
        orig_h, orig_w = orig_size
        predictor = self.predictor
        model = predictor.model
        transformed_points = predictor.transform.apply_coords(points, im_size)
        in_points = torch.as_tensor(transformed_points, device=predictor.device)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        low_res, iou_preds = self._predict_low_res(in_points[:, None, :], in_labels[:, None])
        per_point = low_res.shape[1]
        low_res = low_res.flatten(0, 1)
        data = MaskData(
            iou_preds=iou_preds.flatten(0, 1),
            points=torch.as_tensor(points.repeat(per_point, axis=0)),
        )

        # (1) The IoU filter needs no pixels: apply it to the low-res maps, before any upsampling.
        if self.pred_iou_thresh > 0.0:
            keep_mask = data["iou_preds"] > self.pred_iou_thresh
            data.filter(keep_mask)
            low_res = low_res[keep_mask]

        # (2) Upsample the survivors a chunk at a time; keep their stability and, for the stable ones, the
        # binary mask (the logits are dropped with the chunk).
        stability_parts: list[torch.Tensor] = []
        mask_parts: list[torch.Tensor] = []
        for start in range(0, len(low_res), self.upsample_chunk):
            logits = self._upsample(low_res[start : start + self.upsample_chunk])
            stability = calculate_stability_score(logits, model.mask_threshold, self.stability_score_offset)
            stability_parts.append(stability)
            if self.stability_score_thresh > 0.0:
                logits = logits[stability >= self.stability_score_thresh]
            mask_parts.append(logits > model.mask_threshold)
            del logits
        if stability_parts:
            data["stability_score"] = torch.cat(stability_parts)
            masks = torch.cat(mask_parts)
        else:
            # Stock divides two empty int32 counts: an empty float32 score tensor.
            data["stability_score"] = torch.zeros(0, dtype=torch.float32, device=low_res.device)
            masks = torch.zeros((0, *im_size), dtype=torch.bool, device=low_res.device)
        if self.stability_score_thresh > 0.0:
            data.filter(data["stability_score"] >= self.stability_score_thresh)

        data["boxes"] = masks_to_boxes(masks)
        keep_mask = ~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
        if not torch.all(keep_mask):
            data.filter(keep_mask)
            masks = masks[keep_mask]

        # (3) One C-level encoding, straight to the image frame.
        data["rles"] = encode_rles(masks, crop_box, orig_h, orig_w)
        return data

    def _upsample(self, low_res: torch.Tensor) -> torch.Tensor:
        """SAM's ``postprocess_masks`` of ``(n, 256, 256)`` low-res logits, in stock AMG's tensor layout.

        Stock AMG upsamples ``(B, 3, 256, 256)`` tensors. PyTorch's CPU bilinear kernel picks its code path
        from the channel count (a separable kernel for 3 channels on one thread, a generic one otherwise),
        and two paths may round differently; so the maps are upsampled as rows of exactly 3 channels too
        (the last row padded with repeats of the last map, which are dropped). Every map is interpolated on
        its own, so which maps share a row does not matter.

        Arguments:
            low_res: ``(n, 256, 256)`` mask logits of the current crop.

        Returns:
            ``(n, h, w)`` logits at the crop's size.
        """
        count = len(low_res)
        pad = (-count) % 3
        if pad:
            low_res = torch.cat([low_res, low_res[-1:].expand(pad, -1, -1)])
        rows = low_res.reshape(-1, 3, *low_res.shape[-2:])
        predictor = self.predictor
        logits = predictor.model.postprocess_masks(rows, predictor.input_size, predictor.original_size)
        return logits.flatten(0, 1)[:count]

    @staticmethod
    def postprocess_small_regions(mask_data: MaskData, min_area: int, nms_thresh: float) -> MaskData:
        """Remove small holes and islands, then suppress new duplicates, exactly as stock AMG.

        Edits ``mask_data`` in place (as stock). Each mask is decoded alone, so memory holds one mask at a
        time rather than all of them; only changed masks get a new box and RLE (see the module docstring).

        Arguments:
            mask_data: numpy ``MaskData`` from ``_generate_masks`` (compressed RLEs).
            min_area: holes and islands smaller than this many pixels are removed.
            nms_thresh: box IoU above which the duplicates are suppressed.

        Returns:
            ``mask_data``, filtered.
        """
        rles = mask_data["rles"]
        if len(rles) == 0:
            return mask_data
        stored_boxes = np.asarray(mask_data["boxes"])
        boxes: list[NDArray[np.int64]] = []
        scores: list[float] = []
        new_rles: dict[int, dict[str, Any]] = {}
        for index, rle in enumerate(rles):
            mask = mask_utils.decode(rle).astype(bool)
            mask, changed = remove_small_regions(mask, min_area, mode="holes")
            unchanged = not changed
            mask, changed = remove_small_regions(mask, min_area, mode="islands")
            unchanged = unchanged and not changed
            # Give score 0 to changed masks and 1 to unchanged ones so NMS prefers untouched masks (stock).
            scores.append(float(unchanged))
            if unchanged:
                # The stored box is this very mask's (crop-frame box plus the crop offset), except that an
                # empty mask's box is stock's [0, 0, 0, 0] only in the image frame.
                if mask_utils.area(rle) > 0:
                    boxes.append(stored_boxes[index].astype(np.int64))
                else:
                    boxes.append(np.zeros(4, dtype=np.int64))
            else:
                boxes.append(_mask_box(mask))
                fortran = np.asfortranarray(mask[:, :, None].astype(np.uint8))
                new_rles[index] = mask_utils.encode(fortran)[0]
        box_tensor = torch.as_tensor(np.stack(boxes))
        keep_by_nms = batched_nms(
            box_tensor.float(),
            torch.as_tensor(scores),
            torch.zeros(len(box_tensor)),
            iou_threshold=nms_thresh,
        )
        for index in keep_by_nms.tolist():
            if index in new_rles:
                rles[index] = new_rles[index]
                mask_data["boxes"][index] = box_tensor[index]
        mask_data.filter(keep_by_nms)
        return mask_data


def _xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``box_xyxy_to_xywh`` for an ``(N, 4)`` array (same dtype, same arithmetic)."""
    out = np.array(boxes, copy=True)
    out[:, 2] = out[:, 2] - out[:, 0]
    out[:, 3] = out[:, 3] - out[:, 1]
    return out
