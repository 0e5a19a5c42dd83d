"""mmseg's data pipelines and dataset entries of a ``DatasetSpec`` (as its ``_base_/datasets/isaid.py``,
``potsdam.py``)."""

from __future__ import annotations

from typing import Any

from alps.train.datasets import IGNORE_INDEX, DatasetSpec


def pipelines(ds: DatasetSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """mmseg's standard training and test pipelines (``_base_/datasets/isaid.py``, ``potsdam.py``)."""
    load_ann = {"type": "LoadAnnotations", "reduce_zero_label": ds.reduce_zero_label}
    train = [
        {"type": "LoadImageFromFile"},
        load_ann,
        {"type": "RandomResize", "scale": ds.scale, "ratio_range": (0.5, 2.0), "keep_ratio": True},
        {"type": "RandomCrop", "crop_size": ds.crop_size, "cat_max_ratio": 0.75},
        {"type": "RandomFlip", "prob": 0.5},
        {"type": "PhotoMetricDistortion"},
        {"type": "PackSegInputs"},
    ]
    test = [
        {"type": "LoadImageFromFile"},
        {"type": "Resize", "scale": ds.scale, "keep_ratio": True},
        # Annotations load after Resize: the metric compares with the original-size label.
        dict(load_ann),
        {"type": "PackSegInputs"},
    ]
    return train, test


def dataset_cfg(ds: DatasetSpec, split: str, pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``dataset`` entry of a data loader: one split of ``ds`` through ``pipeline``."""
    cfg: dict[str, Any] = {
        "type": ds.dataset_type,
        "data_root": ds.data_root,
        "data_prefix": {"img_path": f"img_dir/{split}", "seg_map_path": f"ann_dir/{split}"},
        "pipeline": pipeline,
        # Always the converter's suffixes: mmseg's iSAIDDataset defaults to *_instance_color_RGB.png labels,
        # which our iSAID converter does not write (ann_dir/<split>/<name>.png).
        "img_suffix": ds.img_suffix,
        "seg_map_suffix": ds.seg_map_suffix,
    }
    if ds.dataset_type == "BaseSegDataset":
        # Metainfo built from the data (card or classes.json): no dataset class to register.
        cfg.update(
            reduce_zero_label=ds.reduce_zero_label,
            ignore_index=IGNORE_INDEX,
            metainfo={"classes": list(ds.classes), "palette": [list(p) for p in ds.palette]},
        )
    else:
        # mmseg's dataset classes have their own default suffix (iSAIDDataset: _instance_color_RGB.png),
        # which is not what our converters write.
        cfg["seg_map_suffix"] = ds.seg_map_suffix
    return cfg
