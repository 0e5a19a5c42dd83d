"""Spread and verdicts of repeated runs: mean, standard deviation, a 95 % interval, and what a delta says.

A training run's result moves with its seed by about as much as the paper's deltas between a pre-trained
row and its baseline (median |delta| 0.64 mIoU in Table 1). So a reproduced value is the mean of its seeds
with its sample standard deviation and n, and a pre-trained row is compared with its baseline *paired by
seed* (the same seed draws the same data order and augmentations in both runs, so the pairing removes part
of the noise): the mean of the per-seed differences with a two-sided Student-t interval.

The verdict on a published delta ``d`` given our interval ``[low, high]`` of the same delta:

- ``reproduced``: ``d`` lies inside the interval and the interval excludes zero (so it has ``d``'s sign);
- ``not reproduced``: ``d`` lies outside the interval;
- ``inconclusive``: fewer than two paired seeds, or the interval holds both zero and ``d`` (the runs cannot
  tell the published effect from no effect).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scipy import stats as scipy_stats

CONFIDENCE = 0.95
"""Level of every interval."""

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NO_PUBLISHED = "no published delta"
VERDICTS: tuple[str, ...] = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NO_PUBLISHED)


@dataclass(frozen=True)
class Summary:
    """Values of repeated runs: n, mean, sample standard deviation and the mean's interval.

    ``std``, ``low`` and ``high`` are None for fewer than two values (no spread can be estimated); with
    equal values the interval is the point itself.
    """

    n: int
    mean: float | None
    std: float | None
    low: float | None
    high: float | None

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval (False where there is none)."""
        return self.low is not None and self.high is not None and self.low <= value <= self.high


def summarize(values: Iterable[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean, sample standard deviation (ddof 1) and the two-sided Student-t interval of the mean.

    Arguments:
        values: finite numbers (e.g. one mIoU per seed).
        confidence: the interval's level.

    Returns:
        The ``Summary``; for no values everything but ``n`` is None.

    Raises:
        ValueError: a value is not finite.
    """
    data = [float(v) for v in values]
    if any(not math.isfinite(v) for v in data):
        raise ValueError(f"values must be finite numbers, got {data}")
    n = len(data)
    if n == 0:
        return Summary(0, None, None, None, None)
    mean = math.fsum(data) / n
    if n < 2:
        return Summary(n, mean, None, None, None)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in data) / (n - 1))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def paired_delta(
    treated: Mapping[int, float],
    baseline: Mapping[int, float],
    confidence: float = CONFIDENCE,
    decimals: int | None = None,
) -> Summary:
    """The delta ``treated - baseline`` over the seeds both have, summarised (``summarize``).

    Arguments:
        treated: seed -> value of the pre-trained row.
        baseline: seed -> value of its baseline row.
        confidence: the interval's level.
        decimals: round each per-seed difference to this many decimals: the values' own precision
            (metrics.json percentages have two), so that binary float error (65.02 - 64.64 =
            0.3799999999999955) cannot move an interval across a published delta. None: no rounding.

    Returns:
        The summary of the per-seed differences (n = the number of shared seeds).
    """
    seeds = sorted(set(treated) & set(baseline))
    differences = (treated[s] - baseline[s] for s in seeds)
    if decimals is not None:
        differences = (round(d, decimals) for d in differences)
    return summarize(differences, confidence)


def verdict(delta: Summary, published: float | None) -> str:
    """Whether our interval of a delta reproduces the published delta (module docstring for the rules).

    Arguments:
        delta: our paired delta (``paired_delta``).
        published: the paper's delta for the same comparison (None where it has none).

    Returns:
        One of ``VERDICTS``.
    """
    if published is None or (isinstance(published, float) and math.isnan(published)):
        return NO_PUBLISHED
    if delta.n < 2 or delta.low is None:
        return INCONCLUSIVE
    if not delta.contains(published):
        return NOT_REPRODUCED
    return INCONCLUSIVE if delta.contains(0.0) else REPRODUCED
