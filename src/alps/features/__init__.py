"""Pseudo feature labels: per-mask encoder features (Eq. 4) and the feature shards that store them."""

from alps.features.encoders import (
    DEFAULT_EFFICIENTNET_LAYERS,
    EFFICIENTNET_LITE0_LAYERS,
    EfficientNetLite0Encoder,
    EncodedImage,
    FeatureEncoder,
    SamEmbeddingEncoder,
    available_encoders,
    build_encoder,
)
from alps.features.pooling import masked_mean_features
from alps.features.shards import FeatureShard, iter_feature_blocks, read_feature_shard, write_feature_shard

__all__ = [
    "DEFAULT_EFFICIENTNET_LAYERS",
    "EFFICIENTNET_LITE0_LAYERS",
    "EfficientNetLite0Encoder",
    "EncodedImage",
    "FeatureEncoder",
    "FeatureShard",
    "SamEmbeddingEncoder",
    "available_encoders",
    "build_encoder",
    "iter_feature_blocks",
    "masked_mean_features",
    "read_feature_shard",
    "write_feature_shard",
]
