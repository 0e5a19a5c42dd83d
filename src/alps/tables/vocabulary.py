"""The published tables' vocabulary: ids, titles, key and value columns, statuses, the error type."""

from __future__ import annotations

import re

# The escaping Styler.to_latex(escape="latex") applies to cells; pandas is pinned (pyproject.toml).
from alps.datasets import isaid, potsdam

TABLE_TITLES: dict[str, str] = {
    "1": "Table 1: fine-tuning on iSAID from pseudo-label pre-training (IoU per class, mIoU, mAcc, %)",
    "2": "Table 2: fine-tuning on Potsdam from pseudo-label pre-training (IoU per class, mIoU, mAcc, %)",
    "3a": "Table 3a: pre-training on SAMRS-PL (ALPS) vs SAMRS* (unsupervised SAMRS), fine-tuned on iSAID (%)",
    "3b": "Table 3b: binary-mask, iSAID-PL, SAMRS-PL and Mixed-PL pre-training, fine-tuned on iSAID (%)",
    "4": "Table 4: longer pre-training on SAMRS-PL (backbone init), fine-tuned on iSAID and Potsdam (%)",
    "5": "Table 5: area size threshold of the filtering gate, UperNet fine-tuned on Potsdam (%)",
    "6": "Table 6: ATLAS 2023 liver and tumour segmentation, baseline vs ATLAS-PL pre-training (%)",
}

ISAID_ABBREVIATIONS: tuple[str, ...] = (
    "BG", "SH", "ST", "BD", "TC", "BC", "GTF", "BR", "LV", "SV", "HC", "SP", "RA", "SBF", "PL", "HA",
)  # fmt: skip
"""The paper's iSAID column headers, in mmseg's class order (label 0..15)."""

POTSDAM_ABBREVIATIONS: tuple[str, ...] = ("IS", "BD", "LV", "TR", "CR", "CL")
"""The paper's Potsdam column headers, in mmseg's class order (after ``reduce_zero_label``)."""

if len(ISAID_ABBREVIATIONS) != len(isaid.CLASSES) or len(POTSDAM_ABBREVIATIONS) != len(potsdam.CLASSES):
    raise ImportError("alps.tables: the paper's class columns no longer match the dataset classes")

ISAID_COLUMNS: dict[str, str] = dict(zip(ISAID_ABBREVIATIONS, isaid.CLASSES, strict=True))
"""Paper column -> class name in ``metrics.json`` ``per_class`` (``alps.datasets.isaid.CLASSES``, mmseg's
spelling: ``store_tank``, ``Ground_Track_Field``, ...)."""

POTSDAM_COLUMNS: dict[str, str] = dict(zip(POTSDAM_ABBREVIATIONS, potsdam.CLASSES, strict=True))
"""Paper column -> class name in ``metrics.json`` (``alps.datasets.potsdam.CLASSES``)."""

SUMMARY_COLUMNS: tuple[str, ...] = ("mIoU", "mAcc")
"""Summary metrics taken from ``metrics.json`` ``metrics`` as they are (mmseg's means over all classes)."""

MEDICAL_COLUMNS: tuple[str, ...] = ("dsc_liver", "dsc_tumor", "dsc_mean", "iou_liver", "iou_tumor", "miou")
"""Table 6's values. The means are over liver and tumour only, not background (the paper's mean DSC of
DoDNet is (79.54 + 24.03) / 2 = 51.79), so they are computed here, not taken from ``mDice``/``mIoU``."""

# The medical dataset's classes (alps.train.configs.MEDICAL_CLASSES, not imported: that module imports mmseg).
_LIVER_NAMES = ("liver",)
_TUMOUR_NAMES = ("tumour", "tumor")

KEY_TITLES: dict[str, str] = {
    "finetune_dataset": "Fine-tuned",
    "method": "Method",
    "type": "Type",
    "pretrained": "Pre-trained",
    "step": "Step",
    "area_threshold": "Area threshold",
}
"""Column headers of the Markdown/LaTeX tables for the key columns (the CSVs keep the key names)."""

VALUE_TITLES: dict[str, str] = {
    "dsc_liver": "DSC Liver",
    "dsc_tumor": "DSC Tumor",
    "dsc_mean": "DSC Mean",
    "iou_liver": "IoU Liver",
    "iou_tumor": "IoU Tumor",
    "miou": "mIoU (liver, tumor)",
}

# Spellings the paper itself mixes (Table 1 "PspNet", Tables 2 and 4 "Pspnet"): the tidy CSVs use one.
CANONICAL_METHODS: dict[str, str] = {"pspnet": "PspNet"}
"""Normalised method name -> the spelling ``results/paper/`` uses (the paper's text writes "PspNet")."""

STATUS_COMPARED = "compared"
STATUS_NO_PUBLISHED = "no published value"
STATUS_NOT_RUN = "not run"
STATUS_NA = "absent"
STATUSES: tuple[str, ...] = (STATUS_COMPARED, STATUS_NO_PUBLISHED, STATUS_NOT_RUN, STATUS_NA)
"""Status of a value (the long CSV's ``status``): compared with the paper; reproduced, but the paper has no
value; the run's ``metrics.json`` does not exist; the run has no value (a class absent from both prediction
and labels, IoU null), shown as "n/a" in the wide tables. Not "n/a" in the CSV: pandas reads that as NaN."""

NA_TEXT = "n/a"
"""How the wide tables show a value the run does not have."""


_TABLE_ID = re.compile(r"[0-9A-Za-z_-]+")


class TableError(ValueError):
    """A row, a published table or a ``metrics.json`` that the tables cannot be built from."""
