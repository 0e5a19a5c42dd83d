"""Feature encoders: shapes, geometry, determinism, the SAM-embedding path, and a check on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alps.features.encoders import (
    DEFAULT_EFFICIENTNET_LAYERS,
    EFFICIENTNET_LITE0_LAYERS,
    EfficientNetLite0Encoder,
    FeatureEncoder,
    SamEmbeddingEncoder,
    available_encoders,
    build_encoder,
    preprocess_shape,
)
from alps.masks.base import MaskSet, encode_masks

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def box_masks(height: int, width: int) -> np.ndarray:
    """A few rectangles of very different sizes, one touching the bottom-right corner."""
    boxes = [(0, 0, 10, 12), (5, 20, height // 2, width - 5), (height - 7, width - 9, height, width)]
    masks = np.zeros((len(boxes), height, width), dtype=bool)
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        masks[i, y0:y1, x0:x1] = True
    return masks


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def naive_pool(
    fmap: torch.Tensor, masks: np.ndarray, valid: tuple[int, int], padded: tuple[int, int]
) -> np.ndarray:
    up = F.interpolate(fmap[None].float(), padded, mode="bilinear", align_corners=False)[
        ..., : valid[0], : valid[1]
    ]
    up = F.interpolate(up, masks.shape[1:], mode="bilinear", align_corners=False)
    m = torch.from_numpy(masks).float()
    return ((up * m[:, None]).sum(dim=(2, 3)) / m.sum(dim=(1, 2))[:, None]).numpy()


@pytest.fixture(scope="module")
def effnet() -> EfficientNetLite0Encoder:
    return EfficientNetLite0Encoder()


def test_registry() -> None:
    assert available_encoders() == ["efficientnet-lite0", "sam"]
    assert isinstance(build_encoder("sam"), FeatureEncoder)
    encoder = build_encoder("efficientnet-lite0", layers=("stage7",), l2_normalize=False)
    assert isinstance(encoder, FeatureEncoder) and encoder.feature_dim == 320
    with pytest.raises(ValueError, match=r"unknown feature encoder 'clip'.*efficientnet-lite0"):
        build_encoder("clip")
    with pytest.raises(ValueError, match="layers"):
        EfficientNetLite0Encoder(layers=("stage9",))
    with pytest.raises(ValueError, match="layers"):
        EfficientNetLite0Encoder(layers=())


def test_efficientnet_shapes_geometry_and_normalisation(effnet: EfficientNetLite0Encoder) -> None:
    image = random_image(97, 150)
    masks = box_masks(97, 150)
    mask_set = MaskSet.from_binary("img", masks)
    encoded = effnet.encode(image)
    assert encoded.image_shape == encoded.valid_shape == (97, 150)
    assert encoded.padded_shape == (128, 160)
    assert list(encoded.feature_maps) == list(DEFAULT_EFFICIENTNET_LAYERS)
    for layer, fmap in encoded.feature_maps.items():
        _, channels, stride = EFFICIENTNET_LITE0_LAYERS[layer]
        assert tuple(fmap.shape) == (channels, 128 // stride, 160 // stride)
    features = effnet.features_for(image, mask_set)
    assert features.shape == (3, effnet.feature_dim) and features.dtype == np.float32
    assert np.isfinite(features).all()
    # one unit-norm block per layer
    split = np.cumsum([EFFICIENTNET_LITE0_LAYERS[layer][1] for layer in DEFAULT_EFFICIENTNET_LAYERS])[:-1]
    for block in np.split(features, split, axis=1):
        np.testing.assert_allclose(np.linalg.norm(block, axis=1), 1.0, rtol=1e-5)


def test_efficientnet_is_deterministic(effnet: EfficientNetLite0Encoder) -> None:
    image = random_image(64, 96, seed=3)
    mask_set = MaskSet.from_binary("img", box_masks(64, 96))
    first = effnet.features_for(image, mask_set)
    again = effnet.features_for(image, mask_set)
    fresh = EfficientNetLite0Encoder().features_for(image, mask_set)
    assert np.array_equal(first, again)
    np.testing.assert_allclose(fresh, first, atol=1e-6)


def test_features_are_the_same_bit_for_bit_at_any_thread_count(effnet: EfficientNetLite0Encoder) -> None:
    """1 and 2 torch threads once gave features up to 2.4e-4 apart; the encoder now fixes its count."""
    from PIL import Image

    from alps.features.encoders import ENCODER_THREADS
    from alps.masks.superpixel import FelzenszwalbMaskGenerator

    path = SHARED_DATA / "potsdam" / "img_dir" / "2_10_0_0_512_512.png"
    if not path.exists():
        pytest.skip(f"real sample data {path} is absent")
    image = np.asarray(Image.open(path).convert("RGB"))[:192, :256].copy()
    mask_set = FelzenszwalbMaskGenerator().generate(image, "potsdam")
    before = torch.get_num_threads()
    try:
        features = {}
        for threads in (1, 2, 1, 2):
            torch.set_num_threads(threads)
            features.setdefault(threads, []).append(effnet.features_for(image, mask_set))
            assert torch.get_num_threads() == threads  # the caller's setting is restored
    finally:
        torch.set_num_threads(before)
    assert ENCODER_THREADS == 1 and len(mask_set) > 5
    for run in (*features[1], *features[2]):
        assert np.array_equal(run, features[1][0])


def test_efficientnet_layers_and_max_side_geometry() -> None:
    encoder = EfficientNetLite0Encoder(layers=("stem", "stage3", "head"), l2_normalize=False, max_side=128)
    assert encoder.feature_dim == 32 + 40 + 1280
    image = random_image(200, 301, seed=4)
    masks = box_masks(200, 301)
    encoded = encoder.encode(image)
    assert encoded.image_shape == (200, 301)
    assert encoded.valid_shape == (85, 128)  # longest side shrunk to 128
    assert encoded.padded_shape == (96, 128)
    assert [tuple(m.shape) for m in encoded.feature_maps.values()] == [
        (32, 48, 64),
        (40, 12, 16),
        (1280, 3, 4),
    ]
    features = encoder.features_for(image, MaskSet.from_binary("img", masks))
    assert features.shape == (3, 1352)
    # The encoder's geometry must be the resize -> pad -> crop -> resize alignment of Eq. 4.
    expected = np.concatenate(
        [
            naive_pool(m, masks, encoded.valid_shape, encoded.padded_shape)
            for m in encoded.feature_maps.values()
        ],
        axis=1,
    )
    np.testing.assert_allclose(features, expected, atol=1e-4)


def test_efficientnet_edge_cases(effnet: EfficientNetLite0Encoder) -> None:
    empty = MaskSet.from_binary("img", np.zeros((0, 40, 50), dtype=bool))
    assert effnet.features_for(random_image(40, 50), empty).shape == (0, effnet.feature_dim)
    masks = box_masks(40, 50)
    masks[1] = False  # from_binary would drop it; a hand-built mask set may not
    with_empty = MaskSet("img", 40, 50, encode_masks(masks), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"img: empty mask\(s\) at index \[1\]"):
        effnet.features_for(random_image(40, 50), with_empty)
    with pytest.raises(ValueError, match="uint8"):
        effnet.encode(np.zeros((40, 50, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="do not match"):
        effnet.features_for(random_image(41, 50), MaskSet.from_binary("img", box_masks(40, 50)))


def test_preprocess_shape_matches_segment_anything() -> None:
    from segment_anything.utils.transforms import ResizeLongestSide

    for height, width in [
        (300, 517),
        (517, 300),
        (1024, 1024),
        (1, 5000),
        (799, 801),
        (4000, 3001),
        (63, 64),
    ]:
        expected = ResizeLongestSide.get_preprocess_shape(height, width, 1024)
        assert preprocess_shape(height, width, 1024) == expected


def test_sam_embedding_path_on_a_non_square_image() -> None:
    height, width = 300, 517
    rng = np.random.default_rng(5)
    embedding = rng.normal(size=(256, 64, 64)).astype(np.float32)
    masks = box_masks(height, width)
    mask_set = MaskSet.from_binary("img", masks, embedding=embedding)
    encoder = SamEmbeddingEncoder()
    features = encoder.features_for(mask_set)
    assert features.shape == (3, 256) and features.dtype == np.float32
    encoded = encoder.encode(None, mask_set)
    assert encoded.padded_shape == (1024, 1024) and encoded.valid_shape == (594, 1024)
    # SAM's own alignment: upsample 64 -> 1024, crop to (594, 1024), resize to (300, 517).
    expected = naive_pool(torch.from_numpy(embedding), masks, (594, 1024), (1024, 1024))
    np.testing.assert_allclose(features, expected, atol=1e-5)
    # features_for(image, mask_set) and a batched (1, 256, 64, 64) embedding give the same vectors
    np.testing.assert_array_equal(encoder.features_for(random_image(height, width), mask_set), features)
    batched = MaskSet.from_binary("img", masks, embedding=embedding[None])
    np.testing.assert_array_equal(encoder.features_for(batched), features)


def test_sam_encoder_errors() -> None:
    masks = box_masks(40, 60)
    with pytest.raises(ValueError, match="sam backend"):
        SamEmbeddingEncoder().features_for(MaskSet.from_binary("img", masks))
    bad = MaskSet.from_binary("img", masks, embedding=np.zeros((128, 64, 64), np.float32))
    with pytest.raises(ValueError, match=r"\(256, h, w\)"):
        SamEmbeddingEncoder().features_for(bad)
    good = MaskSet.from_binary("img", masks, embedding=np.zeros((256, 64, 64), np.float32))
    with pytest.raises(ValueError, match="does not match"):
        SamEmbeddingEncoder().features_for(random_image(41, 60), good)
    with pytest.raises(ValueError, match="mask_set"):
        SamEmbeddingEncoder().encode(random_image(40, 60))


def test_nwpu_objects_cluster_by_class(effnet: EfficientNetLite0Encoder) -> None:
    """On real labeled objects, PFLs of one class are more alike than PFLs of different classes."""
    root = SHARED_DATA / "nwpu_vhr10_train"
    if not (root / "instances_train.json").is_file():
        pytest.skip(f"NWPU VHR-10 sample not found at {root}")
    from pycocotools.coco import COCO

    from alps.io.images import read_image

    coco = COCO(str(root / "instances_train.json"))
    by_name = {img["file_name"]: img for img in coco.loadImgs(coco.getImgIds())}
    vectors, labels = [], []
    for name in ("017.jpg", "081.jpg"):  # airplanes + storage tanks; tennis courts + baseball diamonds
        info = by_name[name]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info["id"]))
        masks = np.stack([coco.annToMask(a).astype(bool) for a in anns])
        mask_set = MaskSet.from_binary(name, masks)
        assert len(mask_set) == len(anns)
        vectors.append(effnet.features_for(read_image(root / "images" / name), mask_set))
        labels += [a["category_id"] for a in anns]
    x = np.concatenate(vectors)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.asarray(labels)
    assert len(set(labels)) == 4
    similarity = x @ x.T
    same = y[:, None] == y[None, :]
    off_diagonal = ~np.eye(len(y), dtype=bool)
    intra, inter = similarity[same & off_diagonal].mean(), similarity[~same].mean()
    assert intra > inter + 0.2, (intra, inter)
