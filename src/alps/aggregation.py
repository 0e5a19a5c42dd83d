"""A table row's seeds combined: per value column, the values by seed and their mean, spread and n.

A row of a result table is one configuration trained once per seed (``alps.study``); each seed's
``metrics.json`` gives one value per column (a class's IoU, mIoU, ...), or none where the run has no value
(a class absent from both prediction and labels). ``aggregate`` keeps, per column, the values by seed (the
verdicts pair two rows by seed, ``alps.verdicts``) and their summary (``alps.stats.summarize``: n, mean,
sample standard deviation, 95 % interval). Pure numbers: reading the files is ``alps.tables``' job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alps.stats import Summary, summarize


@dataclass(frozen=True)
class SeedValues:
    """One column of one row: the value of each seed whose run has one, and their summary."""

    by_seed: dict[int, float]
    summary: Summary

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.by_seed))


def aggregate(
    runs: Mapping[int, Mapping[str, float | None]], columns: Sequence[str]
) -> dict[str, SeedValues]:
    """Per column, the values of a row's seeds and their summary.

    Arguments:
        runs: seed -> that seed's values by column (None: the run has no value there); seeds whose run
            does not exist are simply absent.
        columns: the columns to combine.

    Returns:
        Column -> ``SeedValues``; a column no seed has a value for has ``n == 0`` (mean None).
    """
    out: dict[str, SeedValues] = {}
    for column in columns:
        by_seed = {
            seed: float(value)
            for seed, values in sorted(runs.items())
            if (value := values.get(column)) is not None
        }
        out[column] = SeedValues(by_seed, summarize(by_seed.values()))
    return out


def seed_count_text(run: int, planned: int) -> str:
    """How many of a row's planned seeds were run: ``"3"``, or ``"2 of 3"`` when some are missing."""
    return str(run) if run == planned else f"{run} of {planned}"
