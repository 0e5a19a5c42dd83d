"""The exact fast path of AMG (alps.masks.fast_amg) returns what stock SamAutomaticMaskGenerator returns.

Every case runs stock AMG and ``ExactFastAMG`` (or the project's ``SamMaskGenerator``) on the tiny
random-weight SAM of tests/tiny_sam.py and compares every record: the masks bit for bit (RLE strings,
binary arrays or count lists), and the scores, boxes, points and crop boxes with their Python types (the
records are compared as JSON text, so 12 and 12.0 differ and NaN equals NaN).

Random weights give small logits (mostly within +-1) and near-zero predicted IoUs, so the thresholds that
make the filters bite are small: ``stability_score_offset=0.05`` spreads the stability scores over 0-0.5,
and an IoU threshold of 0.02 keeps about half of the masks. One generate() costs ~1 s per encoder pass plus
~0.1 s per prompt on 2 CPU cores, so the grids are 2x2 or 3x3 prompts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.modeling import Sam
from segment_anything.utils.amg import (
    MaskData,
    batched_mask_to_box,
    coco_encode_rle,
    mask_to_rle_pytorch,
    uncrop_masks,
)

from alps.masks.fast_amg import (
    ExactFastAMG,
    concat_mask_data,
    encode_rles,
    masks_to_boxes,
    uncompressed_rle,
)
from alps.masks.sam import SamConfig, SamMaskGenerator, load_sam

from tiny_sam import make_tiny_sam_checkpoint

OPEN: dict[str, Any] = {
    "points_per_side": 3,
    "points_per_batch": 16,
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "box_nms_thresh": 1.0,
}
"""No filter at all: every prompt's three masks come out (empty ones included)."""

FILTERING: dict[str, Any] = {
    "points_per_side": 3,
    # Batches of 2 prompts: some batch loses all its masks to the filters, which turns stock's boxes into
    # float32 (an empty batch's boxes are float zeros and torch.cat promotes); the fast path must follow.
    "points_per_batch": 2,
    "pred_iou_thresh": 0.02,
    "stability_score_thresh": 0.2,
    "stability_score_offset": 0.05,
    # The stable masks are blobs whose boxes are nearly the whole image: NMS below 1 keeps one of them.
    "box_nms_thresh": 1.0,
}
"""Both score filters bite with the tiny SAM's scores."""


@pytest.fixture(scope="module")
def sam(tmp_path_factory: pytest.TempPathFactory) -> Sam:
    checkpoint = make_tiny_sam_checkpoint(tmp_path_factory.mktemp("sam") / "sam_vit_tiny.pth", seed=0)
    return load_sam(checkpoint, "vit_tiny")


def structured_image(height: int, width: int, seed: int) -> np.ndarray:
    """Dark noise with two flat colour blocks, so masks have both smooth and ragged edges."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    pixels[height // 10 : height // 2, width // 6 : width // 2] = (200, 40, 40)
    pixels[(3 * height) // 5 : (9 * height) // 10, (5 * width) // 8 : (15 * width) // 16] = (40, 200, 90)
    return pixels


LANDSCAPE = structured_image(96, 128, seed=0)
PORTRAIT = structured_image(120, 72, seed=1)
ODD = structured_image(75, 133, seed=2)
SQUARE = structured_image(64, 64, seed=3)
# Crop tests use a tiny image: the random model's masks are blobs that reach the crops' inner edges, and
# AMG drops masks whose box lies within 20 px of an inner crop edge unless it is also within 20 px of an
# image edge, which on a 40x48 image most boxes are; so masks from every crop survive.
TINY = structured_image(40, 48, seed=1)
CROPS: dict[str, Any] = {"points_per_side": 2, "crop_n_layers": 1, "crop_n_points_downscale_factor": 2}


def generate(generator_class: type[SamAutomaticMaskGenerator], sam: Sam, image: np.ndarray, **settings: Any):
    with torch.inference_mode():
        return generator_class(sam, **settings).generate(image)


def as_json(records: list[dict[str, Any]]) -> str:
    """Records without their masks as JSON text (masks are compared apart: binary ones are arrays)."""
    return json.dumps(
        [{key: value for key, value in record.items() if key != "segmentation"} for record in records]
    )


def assert_same_records(stock: list[dict[str, Any]], fast: list[dict[str, Any]], output_mode: str) -> None:
    assert len(fast) == len(stock)
    assert as_json(fast) == as_json(stock)
    for ours, theirs in zip(fast, stock, strict=True):
        if output_mode == "binary_mask":
            assert ours["segmentation"].dtype == theirs["segmentation"].dtype == np.bool_
            assert np.array_equal(ours["segmentation"], theirs["segmentation"])
        else:
            assert json.dumps(ours["segmentation"]) == json.dumps(theirs["segmentation"])


def compare(sam: Sam, image: np.ndarray, **settings: Any) -> list[dict[str, Any]]:
    """Run stock and fast AMG with the same settings, assert equal records, return stock's."""
    stock = generate(SamAutomaticMaskGenerator, sam, image, **settings)
    fast = generate(ExactFastAMG, sam, image, **settings)
    assert_same_records(stock, fast, settings.get("output_mode", "binary_mask"))
    return stock


@pytest.mark.slow
@pytest.mark.parametrize("output_mode", ["coco_rle", "binary_mask"])
def test_open_thresholds(sam: Sam, output_mode: str) -> None:
    stock = compare(sam, LANDSCAPE, **OPEN, output_mode=output_mode)
    # 9 prompts x 3 masks, nothing filtered: empty masks (NaN stability) included.
    assert len(stock) == 27


@pytest.mark.slow
def test_score_filters(sam: Sam) -> None:
    stock = compare(sam, LANDSCAPE, **FILTERING, output_mode="coco_rle")
    # The filters kept some of the 9 x 3 masks and dropped others.
    assert 0 < len(stock) < 27
    assert all(r["predicted_iou"] > 0.02 and r["stability_score"] >= 0.2 for r in stock)
    # A batch lost all its masks, so stock's boxes went float32 (the fast path's too: compared above).
    assert all(isinstance(value, float) for record in stock for value in record["bbox"])


@pytest.mark.slow
def test_min_mask_region_area(sam: Sam) -> None:
    settings = {**OPEN, "box_nms_thresh": 0.7, "min_mask_region_area": 60, "output_mode": "coco_rle"}
    stock = compare(sam, ODD, **settings)
    assert len(stock) > 0


def test_uncompressed_rle_output(sam: Sam) -> None:
    stock = compare(sam, SQUARE, **{**OPEN, "points_per_side": 2}, output_mode="uncompressed_rle")
    assert all(isinstance(r["segmentation"]["counts"], list) for r in stock)


@pytest.mark.slow
def test_crop_layers(sam: Sam) -> None:
    # 5 crops (5 encoder passes); 2x2 prompts on the image, 1 per crop. Crops exercise the padding of the
    # crop-frame masks into the image, the edge filter and the cross-crop NMS.
    settings = {**OPEN, **CROPS, "box_nms_thresh": 0.7, "crop_nms_thresh": 0.7}
    stock = compare(sam, TINY, **settings, output_mode="coco_rle")
    assert len({tuple(r["crop_box"]) for r in stock}) > 1


@pytest.mark.slow
def test_crops_filters_and_small_regions(sam: Sam) -> None:
    settings = {
        **FILTERING,
        **CROPS,
        "min_mask_region_area": 40,
        "pred_iou_thresh": 0.01,
        "stability_score_thresh": 0.1,
    }
    stock = compare(sam, TINY, **settings, output_mode="binary_mask")
    assert len({tuple(r["crop_box"]) for r in stock}) > 1


@pytest.mark.slow
def test_single_thread_kernel_path(sam: Sam) -> None:
    # On one thread PyTorch's bilinear kernel takes another code path for 3-channel inputs; the fast path
    # keeps stock's 3-channel layout, so it must match there too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        compare(sam, ODD, **FILTERING, output_mode="coco_rle")
    finally:
        torch.set_num_threads(threads)


@contextmanager
def count_upsampled_maps(model: Sam) -> Iterator[list[int]]:
    """Count the low-res maps that go through SAM's postprocess_masks while the block runs."""
    counted = [0]
    original = model.postprocess_masks

    def counting(masks: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        counted[0] += int(masks.shape[0] * masks.shape[1])
        return original(masks, *args, **kwargs)

    model.postprocess_masks = counting  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        del model.postprocess_masks


def test_only_iou_survivors_are_upsampled(sam: Sam) -> None:
    settings = {**OPEN, "points_per_side": 2, "pred_iou_thresh": 0.03, "output_mode": "coco_rle"}
    with count_upsampled_maps(sam) as stock_maps:
        stock = generate(SamAutomaticMaskGenerator, sam, SQUARE, **settings)
    with count_upsampled_maps(sam) as fast_maps:
        fast = generate(ExactFastAMG, sam, SQUARE, **settings)
    assert_same_records(stock, fast, "coco_rle")
    assert stock_maps[0] == 12  # 4 prompts x 3 masks
    # Survivors only, padded to rows of 3 maps.
    assert len(stock) <= fast_maps[0] < stock_maps[0]


@pytest.mark.slow
def test_sam_mask_generator_fast_path_is_exact(sam: Sam) -> None:
    config = SamConfig(**{**FILTERING, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.1})
    fast = SamMaskGenerator(sam, config).generate(LANDSCAPE, "tile")
    stock = SamMaskGenerator(sam, config, exact_fast_path=False).generate(LANDSCAPE, "tile")
    assert SamMaskGenerator(sam, config).exact_fast_path is True
    assert len(fast) == len(stock) > 0
    assert fast.rles == stock.rles
    np.testing.assert_array_equal(fast.predicted_iou, stock.predicted_iou)
    np.testing.assert_array_equal(fast.stability_score, stock.stability_score)
    np.testing.assert_array_equal(fast.embedding, stock.embedding)


def test_from_checkpoint_passes_the_flag(tmp_path: Any) -> None:
    checkpoint = make_tiny_sam_checkpoint(tmp_path / "tiny.pth")
    generator = SamMaskGenerator.from_checkpoint(checkpoint, "vit_tiny", exact_fast_path=False)
    assert generator.exact_fast_path is False
    assert type(generator._amg).__mro__[1:].count(ExactFastAMG) == 0
    assert isinstance(SamMaskGenerator.from_checkpoint(checkpoint, "vit_tiny")._amg, ExactFastAMG)


# The building blocks, against segment_anything's own functions on many random masks (cheap, and they
# reach corner cases the model rarely produces: empty and full masks, set first/last pixels).


def random_masks(count: int, height: int, width: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, height, width), dtype=bool)
    for index in range(count):
        kind = index % 5
        if kind == 0:
            continue  # empty
        if kind == 1:
            masks[index] = True  # full
        elif kind == 2:
            masks[index] = rng.random((height, width)) < 0.3  # ragged
        else:
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            y1, x1 = rng.integers(y0, height) + 1, rng.integers(x0, width) + 1
            masks[index, y0:y1, x0:x1] = True
            masks[index, rng.integers(0, height), rng.integers(0, width)] ^= True
    return torch.from_numpy(masks)


def small_region_masks(height: int, width: int) -> torch.Tensor:
    """Masks that hole/island removal changes (or not), plus the random kinds."""
    special = np.zeros((4, height, width), dtype=bool)
    special[0, 2:15, 3:20] = True
    special[0, 6:8, 8:10] = False  # a small hole
    special[1, 2:15, 3:20] = True
    special[1, 18:20, 25:27] = True  # a small island
    special[2, 1:3, 1:3] = True  # only small islands: the largest is kept
    special[2, 18:19, 25:29] = True
    special[3, 4:16, 5:22] = True  # nothing to remove
    return torch.cat([torch.from_numpy(special), random_masks(16, height, width, seed=3)])


def test_postprocess_small_regions_matches_stock() -> None:
    masks = small_region_masks(23, 31)
    count = len(masks)
    boxes = batched_mask_to_box(masks).numpy()
    # An empty mask from a crop at (5, 3) carries the box [5, 3, 5, 3] (crop-frame zeros plus the offset);
    # stock's recomputed box is [0, 0, 0, 0] and the fast path must use that too.
    boxes[4] = [5, 3, 5, 3]  # masks[4] is empty (random_masks: every 5th)
    fields = {
        "iou_preds": np.linspace(0.9, 0.1, count, dtype=np.float32),
        "points": np.arange(2 * count, dtype=np.float64).reshape(count, 2),
        "stability_score": np.linspace(0.5, 1.0, count, dtype=np.float32),
        "crop_boxes": np.tile(np.array([0, 0, 31, 23]), (count, 1)),
    }
    stock = MaskData(rles=mask_to_rle_pytorch(masks), boxes=boxes.copy(), **fields)
    fast = MaskData(rles=encode_rles(masks, [0, 0, 31, 23], 23, 31), boxes=boxes.copy(), **fields)
    stock = SamAutomaticMaskGenerator.postprocess_small_regions(stock, 10, 0.7)
    fast = ExactFastAMG.postprocess_small_regions(fast, 10, 0.7)
    assert [uncompressed_rle(rle) for rle in fast["rles"]] == stock["rles"]
    for key in ("boxes", *fields):
        assert fast[key].dtype == stock[key].dtype
        np.testing.assert_array_equal(fast[key], stock[key])
    assert 0 < len(stock["rles"]) < count


def test_masks_to_boxes_matches_batched_mask_to_box() -> None:
    masks = random_masks(40, 23, 31, seed=0)
    expected = batched_mask_to_box(masks)
    boxes = masks_to_boxes(masks)
    assert boxes.dtype == expected.dtype == torch.int64
    assert torch.equal(boxes, expected)
    empty = masks_to_boxes(torch.zeros((0, 23, 31), dtype=torch.bool))
    expected_empty = batched_mask_to_box(torch.zeros((0, 23, 31), dtype=torch.bool))
    assert empty.dtype == expected_empty.dtype == torch.float32
    assert empty.shape == expected_empty.shape == (0, 4)


@pytest.mark.parametrize("crop_box", [[0, 0, 31, 23], [5, 3, 25, 20], [0, 7, 31, 23]])
def test_encode_rles_matches_stock_encoding(crop_box: list[int]) -> None:
    x0, y0, x1, y1 = crop_box
    masks = random_masks(25, y1 - y0, x1 - x0, seed=1)
    expected = [coco_encode_rle(rle) for rle in mask_to_rle_pytorch(uncrop_masks(masks, crop_box, 23, 31))]
    rles = encode_rles(masks, crop_box, 23, 31)
    assert [{"size": r["size"], "counts": r["counts"].decode()} for r in rles] == expected
    assert encode_rles(masks[:0], crop_box, 23, 31) == []


def test_uncompressed_rle_matches_mask_to_rle_pytorch() -> None:
    masks = random_masks(25, 17, 29, seed=2)
    expected = mask_to_rle_pytorch(masks)
    assert [uncompressed_rle(rle) for rle in encode_rles(masks, [0, 0, 29, 17], 17, 29)] == expected


def test_concat_mask_data_promotes_like_mask_data_cat() -> None:
    parts = [
        MaskData(boxes=torch.zeros((2, 4), dtype=torch.int64), rles=[{"a": 1}, {"b": 2}]),
        MaskData(boxes=torch.zeros((0, 4)), rles=[]),  # an empty batch: float32 boxes
        MaskData(boxes=torch.ones((1, 4), dtype=torch.int64), rles=[{"c": 3}]),
    ]
    stock = MaskData()
    for part in parts:
        stock.cat(part)
    ours = concat_mask_data(parts)
    assert ours["boxes"].dtype == stock["boxes"].dtype == torch.float32
    assert torch.equal(ours["boxes"], stock["boxes"])
    assert ours["rles"] == stock["rles"]
    assert len(concat_mask_data([]).items()) == 0
