"""The ``sam`` mask backend, on a tiny random-weight SAM (tests/tiny_sam.py) so it runs on CPU.

Random weights give near-random masks, so the AMG thresholds are opened wide (no IoU / stability filter,
no box NMS) to make masks come out; the tests check the plumbing, not mask quality.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from segment_anything import SamAutomaticMaskGenerator, SamPredictor
from segment_anything.modeling import Sam
from segment_anything.utils.amg import generate_crop_boxes

from alps.masks.base import MaskGenerator, MaskSet
from alps.masks.sam import (
    CHECKPOINT_URL,
    SAM_EMBEDDING_SHAPE,
    SamConfig,
    SamMaskGenerator,
    embedding_valid_grid,
    embedding_valid_shape,
    load_sam,
)

from tiny_sam import make_tiny_sam_checkpoint

# No filters, so random weights still give masks; 9 prompts keep one generate() around 2 s on 2 CPU cores
# (the decoder, full-size even in vit_tiny, costs ~0.1 s per prompt; the encoder ~1 s per pass).
OPEN = SamConfig(
    points_per_side=3,
    points_per_batch=16,
    pred_iou_thresh=0.0,
    stability_score_thresh=0.0,
    box_nms_thresh=1.0,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_sam_checkpoint(tmp_path_factory.mktemp("sam") / "sam_vit_tiny.pth", seed=0)


@pytest.fixture(scope="module")
def sam(checkpoint: Path) -> Sam:
    return load_sam(checkpoint, "vit_tiny")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A non-square (landscape) RGB image with some structure: two flat blocks on noise."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 60, size=(96, 128, 3), dtype=np.uint8)
    pixels[10:50, 20:70] = (200, 40, 40)
    pixels[60:90, 80:120] = (40, 200, 90)
    return pixels


@contextmanager
def count_encoder_calls(model: Sam) -> Iterator[list[int]]:
    """Count forward passes of the image encoder while the block runs."""
    calls = [0]

    def hook(*_: object) -> None:
        calls[0] += 1

    handle = model.image_encoder.register_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


def direct_embedding(model: Sam, pixels: np.ndarray) -> np.ndarray:
    """The full-image embedding as segment_anything's own predictor computes it."""
    predictor = SamPredictor(model)
    with torch.inference_mode():
        predictor.set_image(pixels)
        assert predictor.input_size == embedding_valid_shape(*pixels.shape[:2])
        return predictor.features[0].float().numpy()


@pytest.fixture(scope="module")
def generated(sam: Sam, image: np.ndarray) -> tuple[MaskSet, int]:
    """One generate() run shared by the tests that only inspect its output, and its encoder call count."""
    with count_encoder_calls(sam) as calls:
        masks = SamMaskGenerator(sam, OPEN).generate(image, "tile_0")
    return masks, calls[0]


def test_masks_have_the_image_size(generated: tuple[MaskSet, int], image: np.ndarray) -> None:
    masks, _ = generated
    height, width = image.shape[:2]
    assert (masks.image_id, masks.height, masks.width) == ("tile_0", height, width)
    assert len(masks) > 1
    for rle in masks.rles:
        assert rle["size"] == [height, width]
        assert isinstance(rle["counts"], bytes)
    # The RLE is byte for byte what pycocotools' own encoder makes of the decoded mask.
    assert (
        mask_utils.encode(np.asfortranarray(masks.decode()[0].astype(np.uint8)))["counts"]
        == (masks.rles[0]["counts"])
    )
    assert masks.predicted_iou.shape == masks.stability_score.shape == (len(masks),)
    assert masks.predicted_iou.dtype == masks.stability_score.dtype == np.float32
    assert np.all(masks.area > 0)


def test_embedding_is_the_single_encoder_pass(
    generated: tuple[MaskSet, int], sam: Sam, image: np.ndarray
) -> None:
    masks, encoder_calls = generated
    assert encoder_calls == 1
    assert masks.embedding is not None
    assert masks.embedding.shape == SAM_EMBEDDING_SHAPE == (256, 64, 64)
    assert masks.embedding.dtype == np.float32
    assert np.isfinite(masks.embedding).all()
    np.testing.assert_allclose(masks.embedding, direct_embedding(sam, image), rtol=1e-5, atol=1e-5)


def test_generate_is_deterministic(generated: tuple[MaskSet, int], sam: Sam, image: np.ndarray) -> None:
    first, _ = generated
    second = SamMaskGenerator(sam, OPEN).generate(image, "tile_0")
    assert [rle["counts"] for rle in second.rles] == [rle["counts"] for rle in first.rles]
    np.testing.assert_array_equal(second.predicted_iou, first.predicted_iou)
    np.testing.assert_array_equal(second.stability_score, first.stability_score)
    np.testing.assert_array_equal(second.embedding, first.embedding)


@pytest.mark.slow
def test_crops_keep_the_full_image_embedding(sam: Sam) -> None:
    # Portrait this time; 2x2 points on the full image and 1 per crop keep the 5 encoder passes affordable.
    rng = np.random.default_rng(1)
    portrait = rng.integers(0, 255, size=(120, 72, 3), dtype=np.uint8)
    config = replace(OPEN, points_per_side=2, crop_n_layers=1, crop_n_points_downscale_factor=2)
    crop_boxes, _ = generate_crop_boxes(portrait.shape[:2], config.crop_n_layers, config.crop_overlap_ratio)
    assert len(crop_boxes) == 5
    with count_encoder_calls(sam) as calls:
        masks = SamMaskGenerator(sam, config).generate(portrait, "portrait")
    # One pass per crop, as in stock AMG: none more to get the embedding.
    assert calls[0] == len(crop_boxes)
    assert len(masks) > 0
    assert all(rle["size"] == [120, 72] for rle in masks.rles)
    assert masks.embedding is not None
    # The embedding kept is the full image's, not that of the last crop processed.
    np.testing.assert_allclose(masks.embedding, direct_embedding(sam, portrait), rtol=1e-5, atol=1e-5)


def test_min_mask_region_area_gives_valid_rles(sam: Sam, image: np.ndarray) -> None:
    config = replace(OPEN, points_per_side=2, min_mask_region_area=200)
    masks = SamMaskGenerator(sam, config).generate(image, "tile_0")
    assert len(masks) > 0
    assert all(isinstance(rle["counts"], bytes) and rle["size"] == [96, 128] for rle in masks.rles)
    assert masks.decode().shape == (len(masks), 96, 128)


def test_bf16_on_cpu_warns_and_falls_back_to_float32(sam: Sam) -> None:
    with pytest.warns(RuntimeWarning, match="only used on CUDA"):
        generator = SamMaskGenerator(sam, OPEN, bf16=True)
    # The fallback is the plain float32 path that the other tests run.
    assert generator.bf16 is False
    assert generator._amg.predictor.bf16 is False


def test_is_a_mask_generator(sam: Sam) -> None:
    generator = SamMaskGenerator(sam)
    assert isinstance(generator, MaskGenerator)
    assert generator.name == "sam"
    assert generator.device == torch.device("cpu")


def test_from_checkpoint(checkpoint: Path, sam: Sam) -> None:
    generator = SamMaskGenerator.from_checkpoint(checkpoint, "vit_tiny", OPEN)
    assert generator.config == OPEN
    for loaded, reference in zip(
        generator.model.state_dict().values(), sam.state_dict().values(), strict=True
    ):
        assert torch.equal(loaded, reference)


def test_config_defaults_are_segment_anythings() -> None:
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(SamAutomaticMaskGenerator.__init__).parameters.items()
        if name in asdict(SamConfig())
    }
    assert defaults == asdict(SamConfig())


@pytest.mark.parametrize(
    "changes",
    [{"points_per_side": 0}, {"points_per_batch": 0}, {"crop_n_layers": -1}, {"box_nms_thresh": 1.5}],
)
def test_config_rejects_bad_values(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        SamConfig(**changes)


@pytest.mark.parametrize(
    "bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)]
)
def test_generate_rejects_non_rgb_uint8(sam: Sam, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image bad"):
        SamMaskGenerator(sam).generate(bad, "bad")


def test_embedding_valid_shape() -> None:
    assert embedding_valid_shape(96, 128) == (768, 1024)
    assert embedding_valid_grid(96, 128) == (48, 64)
    assert embedding_valid_shape(1024, 1024) == (1024, 1024)
    assert embedding_valid_grid(1024, 1024) == (64, 64)
    # 100x130 resizes to 788x1024: the 50th row of cells is only partly image.
    assert embedding_valid_shape(100, 130) == (788, 1024)
    assert embedding_valid_grid(100, 130) == (50, 64)
    assert embedding_valid_grid(120, 72) == (64, 39)
    with pytest.raises(ValueError):
        embedding_valid_shape(0, 10)


def test_missing_checkpoint_names_path_and_download(tmp_path: Path) -> None:
    missing = tmp_path / "sam_vit_h_4b8939.pth"
    with pytest.raises(FileNotFoundError) as error:
        load_sam(missing, "vit_h")
    assert str(missing) in str(error.value)
    assert CHECKPOINT_URL in str(error.value)


def test_unknown_model_type_lists_valid_ones(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown SAM model_type 'vit_x'.*vit_h, vit_l, vit_b"):
        load_sam(checkpoint, "vit_x")


def test_checkpoint_of_another_model_type(checkpoint: Path) -> None:
    # Builds a real vit_b (~0.5 s, ~400 MB) before the weights are found not to fit.
    with pytest.raises(ValueError, match="does not match model_type vit_b") as error:
        load_sam(checkpoint, "vit_b")
    message = str(error.value)
    assert str(checkpoint) in message
    assert "it holds vit_tiny weights" in message
    assert "image_encoder.pos_embed" in message


def test_checkpoint_with_wrong_keys(checkpoint: Path, tmp_path: Path) -> None:
    state_dict = torch.load(checkpoint, weights_only=True)
    del state_dict["mask_decoder.iou_token.weight"]
    torch.save(state_dict, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"does not match model_type vit_tiny.*1 missing keys"):
        load_sam(tmp_path / "broken.pth", "vit_tiny")


def test_checkpoint_that_is_not_a_state_dict(tmp_path: Path) -> None:
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth is not a SAM checkpoint: it cannot be read as a plain"):
        load_sam(tmp_path / "garbage.pth", "vit_tiny")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        load_sam(tmp_path / "list.pth", "vit_tiny")


def test_cuda_without_cuda(checkpoint: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        load_sam(checkpoint, "vit_tiny", device="cuda")


def test_no_warning_without_bf16(sam: Sam) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SamMaskGenerator(sam, OPEN)
