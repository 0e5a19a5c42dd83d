"""``ALPSIoUMetric``: mmseg's ``IoUMetric`` with per-class values, registered in mmseg's ``METRICS``."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from alps.train.mmcv_compat import ensure_mmcv_ops

# Before any mmseg import: under mmcv-lite, mmseg's package imports reach mmcv.ops (see mmcv_compat).
ensure_mmcv_ops()

from mmseg.evaluation.metrics import IoUMetric  # noqa: E402
from mmseg.registry import METRICS  # noqa: E402


@METRICS.register_module(force=True)
class ALPSIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` that also returns the per-class values it otherwise only logs.

    Keys: ``aAcc``, ``mIoU``, ``mAcc`` (and ``mDice`` when asked) as mmseg computes them (percent, two
    decimals), plus ``IoU.<class>``, ``Acc.<class>`` (and ``Dice.<class>``) per class. A class absent from
    both prediction and label has NaN IoU (mmseg's rule); it is reported as ``None`` by ``metrics.json``.
    """

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Summary and per-class metrics from the per-image areas.

        Arguments:
            results: per image, mmseg's (intersect, union, pred, label) area tuples.

        Returns:
            Metric name -> value in percent.
        """
        summary = super().compute_metrics(results)
        if self.format_only:
            return summary
        areas = tuple(zip(*results, strict=True))
        per_class = self.total_area_to_metrics(
            sum(areas[0]),
            sum(areas[1]),
            sum(areas[2]),
            sum(areas[3]),
            self.metrics,
            self.nan_to_num,
            self.beta,
        )
        out: OrderedDict[str, float] = OrderedDict(summary)
        classes = self.dataset_meta["classes"]
        for metric, values in per_class.items():
            if metric == "aAcc":
                continue
            for name, value in zip(classes, np.asarray(values, dtype=np.float64), strict=True):
                out[f"{metric}.{name}"] = float(np.round(value * 100, 2))
        return dict(out)
