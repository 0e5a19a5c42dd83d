"""alps.stats on hand-made numbers: the interval, the pairing by seed and every verdict rule."""

from __future__ import annotations

import math

import pytest

from alps.stats import (
    INCONCLUSIVE,
    NO_PUBLISHED,
    NOT_REPRODUCED,
    REPRODUCED,
    paired_delta,
    summarize,
    verdict,
)


def test_summary_is_the_student_t_interval_of_the_mean() -> None:
    summary = summarize([60.0, 62.0, 64.0])
    assert summary.n == 3
    assert summary.mean == 62.0
    assert summary.std == 2.0
    # t(0.975, 2) = 4.302653; half width 4.302653 * 2 / sqrt(3) = 4.968275.
    assert summary.low == pytest.approx(62.0 - 4.968275, abs=1e-6)
    assert summary.high == pytest.approx(62.0 + 4.968275, abs=1e-6)


def test_one_value_has_no_spread_and_none_has_no_mean() -> None:
    one = summarize([61.5])
    assert (one.n, one.mean, one.std, one.low, one.high) == (1, 61.5, None, None, None)
    assert summarize([]).mean is None


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, math.nan])


def test_delta_is_paired_by_seed_over_shared_seeds() -> None:
    # Seed 0 is a good draw for both arms, seed 1 a bad one: unpaired, the spread would hide the +1 delta.
    treated = {0: 71.0, 1: 61.0, 2: 66.0, 7: 99.0}
    baseline = {0: 70.0, 1: 60.0, 2: 65.0, 3: 10.0}
    delta = paired_delta(treated, baseline)
    assert delta.n == 3
    assert delta.mean == pytest.approx(1.0)
    assert delta.std == pytest.approx(0.0)
    assert (delta.low, delta.high) == (pytest.approx(1.0), pytest.approx(1.0))


@pytest.mark.parametrize(
    ("values", "published", "expected"),
    [
        ([0.8, 1.0, 1.2], 1.0, REPRODUCED),  # inside, interval excludes zero
        ([0.8, 1.0, 1.2], 3.0, NOT_REPRODUCED),  # outside
        ([-1.2, -1.0, -0.8], 1.0, NOT_REPRODUCED),  # opposite sign: outside
        ([-1.0, 0.5, 2.0], 0.4, INCONCLUSIVE),  # holds zero and the published delta
        ([-0.1, 0.0, 0.1], 2.0, NOT_REPRODUCED),  # a flat result excludes a large published effect
        ([1.0], 1.0, INCONCLUSIVE),  # one seed
        ([0.8, 1.0, 1.2], None, NO_PUBLISHED),
    ],
)
def test_verdict_rules(values: list[float], published: float | None, expected: str) -> None:
    delta = paired_delta(dict(enumerate(values)), dict.fromkeys(range(len(values)), 0.0))
    assert verdict(delta, published) == expected


def test_rounded_differences_keep_an_exact_delta_inside_its_interval() -> None:
    # Three seeds whose every difference is -1.47 in decimal, but 45.25 - 46.72 = -1.4699999999999989.
    treated, baseline = {0: 45.25, 1: 80.9, 2: 76.72}, {0: 46.72, 1: 82.37, 2: 78.19}
    assert verdict(paired_delta(treated, baseline), -1.47) == NOT_REPRODUCED  # float noise decides
    exact = paired_delta(treated, baseline, decimals=2)
    assert (exact.mean, exact.std) == (-1.47, 0.0) and verdict(exact, -1.47) == REPRODUCED
