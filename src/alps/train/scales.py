"""The training crop (and resize scale) of each dataset kind, and the kind a pseudo-label dataset takes
its scale from. Importable without mmengine or torch: the study's cost (``alps.study_cost``) reads it too.

mmseg's configs resize to the crop size and crop at it (iSAID 896, Potsdam 512). A pseudo-label dataset is
pre-trained at the scale of the dataset it labels, so that its objects are seen at the size fine-tuning on
that dataset sees them: iSAID-PL's 896 px patches at iSAID's 896, not resized to 512 (0.57x).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alps.datasets import atlas, demo, folder, isaid, potsdam, samrs

DEFAULT_CROPS: dict[str, int] = {"isaid": 896, "potsdam": 512, "pl": 512, "folder": 256, "medical": 256}
"""Training crop side per dataset kind (mmseg's iSAID and Potsdam configs; 256 px demo tiles and ATLAS
slices; 512 for a pseudo-label dataset of another source, e.g. SAMRS); the resize scale is the crop."""

SOURCE_KINDS: dict[str, str] = {
    "isaid": "isaid",
    "potsdam": "potsdam",
    "atlas": "medical",
    "demo": "folder",
    "folder": "folder",
}
"""Converter -> the kind whose crop and scale a pseudo-label dataset of its images takes. SAMRS, which is
only labeled, never fine-tuned on, has none (the PL default)."""

CONVERTER_OF_DATASET: dict[str, str] = {
    isaid.DATASET_NAME: "isaid",
    potsdam.DATASET_NAME: "potsdam",
    atlas.DATASET_NAME: "atlas",
    demo.DATASET_NAME: "demo",
    folder.DATASET_NAME: "folder",
    samrs.DATASET_NAME: "samrs",
}
"""The ``dataset`` a converter writes in its card (``alps-isaid``...) -> the converter."""


def pl_source_kind(card: Mapping[str, Any]) -> str | None:
    """The kind a PL dataset takes its scale from: its card's ``source_dataset``
    (``alps.pl_dataset.source_dataset_name``), or None (unknown source, SAMRS, a folder of images)."""
    return SOURCE_KINDS.get(CONVERTER_OF_DATASET.get(str(card.get("source_dataset")), ""))


def pl_crop(source_kind: str | None) -> int:
    """The default crop of a PL dataset labeled from a dataset of ``source_kind``."""
    return DEFAULT_CROPS[source_kind or "pl"]
