"""Which row of a result table is each row's baseline, and the verdict on its delta against it.

Every comparison the paper draws in a table is a pre-trained row against another row of the same table:
its delta (row - baseline) is what the paper claims. Per table (``BASELINE_RULES``, docs/tables.md):

- Tables 1 and 2: the ``Baseline`` row (no pre-training) of the same fine-tuning dataset and method;
- Table 3a: the SAMRS* row (box-prompted SAM) of the same dataset, method, initialisation and step; the
  paper claims SAMRS-PL beats it;
- Table 3b: the Binary Mask row of the same dataset, method, initialisation and step; the paper shows
  clustered pseudo-labels (iSAID-PL, SAMRS-PL, Mixed-PL) beat one foreground class;
- Table 4: the shortest pre-training (the base 80k/160k) of the same method, initialisation, set and
  fine-tuning dataset; the paper claims 320k improves on it;
- Table 5: the area threshold 0.3 (the gate's default) of the same method, dataset and step; the paper
  chose 0.3 as the best;
- Table 6: the ``baseline`` row of the same method.

The verdict is on one column per table (``verdict_column``): mIoU, and Table 6's mean DSC (the medical
headline; liver and tumour, as the paper averages). Our delta is paired by seed (``alps.stats``), so a row
and its baseline need the same seeds; ``row_verdict`` adds to ``alps.stats.verdict`` the cases where there
is nothing to compare. Importable without pandas or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from alps.config import AREA_THRESHOLD
from alps.stats import INCONCLUSIVE, NO_PUBLISHED, NOT_REPRODUCED, REPRODUCED, Summary, paired_delta, verdict
from alps.study import normalize_key

BASELINE = "baseline"
NO_BASELINE = "no baseline"
NOT_RUN = "not run"
COMPARED_VERDICTS: tuple[str, ...] = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NO_PUBLISHED)
"""The verdicts of rows that were compared with their baseline (``alps.stats.verdict``)."""

ROW_VERDICTS: tuple[str, ...] = (*COMPARED_VERDICTS, BASELINE, NO_BASELINE, NOT_RUN)
"""A row's verdict: the four of ``alps.stats`` for a row compared with its baseline; ``baseline`` for the
row others are compared with; ``no baseline`` where its table (or group) has none; ``not run`` where the
row, or the baseline it is compared with, has no run."""

DECIMALS = 2
"""The precision of metrics.json's percentages: per-seed differences are exact to it (``paired_delta``)."""

DEFAULT_VERDICT_COLUMN = "mIoU"
VERDICT_COLUMNS: dict[str, str] = {"6": "dsc_mean"}
"""The column whose delta a table's verdicts judge, where it is not mIoU (Table 6: the mean DSC)."""


def verdict_column(table_id: str, value_columns: Sequence[str]) -> str | None:
    """The column a table's verdicts are on, if the table has it (else None: no verdicts)."""
    column = VERDICT_COLUMNS.get(table_id, DEFAULT_VERDICT_COLUMN)
    return column if column in value_columns else None


Picker = Callable[[Sequence[Mapping[str, str]]], "int | None"]
"""Given the keys of the rows of one group, the index (in the group) of its baseline, or None."""


def _where(column: str, value: str) -> Picker:
    """The group's one row whose ``column`` equals ``value`` (after ``normalize_key``)."""
    wanted = normalize_key(column, value)

    def pick(group: Sequence[Mapping[str, str]]) -> int | None:
        hits = [i for i, keys in enumerate(group) if normalize_key(column, keys.get(column, "")) == wanted]
        return hits[0] if len(hits) == 1 else None

    return pick


def _shortest_step(group: Sequence[Mapping[str, str]]) -> int | None:
    """The group's one row with the fewest pre-training iterations (steps like ``80k``)."""
    steps: list[tuple[int, int]] = []
    for i, keys in enumerate(group):
        step = normalize_key("step", keys.get("step", ""))
        if not step.isdigit():
            return None
        steps.append((int(step), i))
    shortest = min(steps)[0]
    hits = [i for step, i in steps if step == shortest]
    return hits[0] if len(hits) == 1 else None


@dataclass(frozen=True)
class BaselineRule:
    """How a table pairs rows: the key columns a row shares with its baseline, and which row that is."""

    group: tuple[str, ...]
    pick: Picker
    description: str


BASELINE_RULES: dict[str, BaselineRule] = {
    "1": BaselineRule(
        ("finetune_dataset", "method"), _where("pretrained", "-"), "the Baseline row of its method"
    ),
    "2": BaselineRule(
        ("finetune_dataset", "method"), _where("pretrained", "-"), "the Baseline row of its method"
    ),
    "3a": BaselineRule(
        ("finetune_dataset", "method", "type", "step"),
        _where("pretrained", "SAMRS*"),
        "the SAMRS* row of its method and initialisation",
    ),
    "3b": BaselineRule(
        ("finetune_dataset", "method", "type", "step"),
        _where("pretrained", "Binary Mask"),
        "the Binary Mask row of its method",
    ),
    "4": BaselineRule(
        ("method", "type", "pretrained", "finetune_dataset"),
        _shortest_step,
        "the base pre-training (80k/160k) of its method and dataset",
    ),
    "5": BaselineRule(
        ("method", "finetune_dataset", "step"),
        _where("area_threshold", str(AREA_THRESHOLD)),
        f"the area threshold {AREA_THRESHOLD} row",
    ),
    "6": BaselineRule(("method",), _where("pretrained", "baseline"), "the baseline row of its method"),
}
"""Each paper table's comparison (module docstring); a table the paper does not have has none."""


@dataclass(frozen=True)
class Pairing:
    """The rows of a table (by index) and their baselines."""

    baseline_of: dict[int, int]
    """Row -> its baseline row, for every row compared with one."""
    baselines: frozenset[int]
    """Rows that are their group's baseline."""


def pair_rows(table_id: str, keys: Sequence[Mapping[str, str]]) -> Pairing:
    """Each row's baseline row under the table's rule (``BASELINE_RULES``).

    Arguments:
        table_id: the table.
        keys: each row's key columns, in row order.

    Returns:
        The ``Pairing``; empty where the table has no rule, and rows of a group without a baseline row
        (e.g. the Baseline was not configured) are in neither of its fields.
    """
    rule = BASELINE_RULES.get(table_id)
    if rule is None:
        return Pairing({}, frozenset())
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(keys):
        groups.setdefault(tuple(normalize_key(c, row.get(c, "")) for c in rule.group), []).append(i)
    baseline_of: dict[int, int] = {}
    baselines: set[int] = set()
    for members in groups.values():
        picked = rule.pick([keys[i] for i in members])
        if picked is None:
            continue
        base = members[picked]
        baselines.add(base)
        baseline_of.update({i: base for i in members if i != base})
    return Pairing(baseline_of, frozenset(baselines))


def published_delta(row: float | None, baseline: float | None) -> float | None:
    """The paper's delta of a row against its baseline (two decimals, exact), or None if either is absent."""
    if row is None or baseline is None:
        return None
    return float(Decimal(str(row)) - Decimal(str(baseline)))


def row_verdict(
    is_baseline: bool,
    has_baseline: bool,
    row_run: bool,
    baseline_run: bool,
    delta: Summary | None,
    published: float | None,
) -> str:
    """A row's verdict (``ROW_VERDICTS``).

    Arguments:
        is_baseline: the row is its group's baseline.
        has_baseline: the row has a baseline row.
        row_run: the row has at least one run.
        baseline_run: its baseline row has at least one run.
        delta: our delta against the baseline, paired by seed (``alps.stats.paired_delta``).
        published: the paper's delta (``published_delta``), None where it has none.

    Returns:
        ``not run`` (the row, or the baseline it is compared with, has no run), ``baseline``, ``no
        baseline``, or ``alps.stats.verdict``'s.
    """
    if not row_run:
        return NOT_RUN
    if is_baseline:
        return BASELINE
    if not has_baseline:
        return NO_BASELINE
    if not baseline_run or delta is None:
        return NOT_RUN
    return verdict(delta, published)


@dataclass(frozen=True)
class Comparison:
    """One row against its baseline: per column, our delta paired by seed and the paper's; the verdict."""

    baseline: int | None
    """The baseline row's index, or None (the row is one, or has none)."""
    deltas: dict[str, Summary]
    """Column -> ``alps.stats.paired_delta`` (row - baseline), for the columns both rows have."""
    published_deltas: dict[str, float]
    """Column -> the paper's delta, where it has both values."""
    verdict: str
    """``ROW_VERDICTS``' on the verdict column; ``""`` where the table has no verdict column."""


def compare_rows(
    table_id: str,
    keys: Sequence[Mapping[str, str]],
    values: Sequence[Mapping[str, Mapping[int, float]]],
    published: Sequence[Mapping[str, float | None]],
    judged: str | None,
) -> list[Comparison]:
    """Every row of a table against its baseline row (``pair_rows``).

    Arguments:
        table_id: the table.
        keys: each row's key columns.
        values: each row's values, column -> seed -> value (``alps.aggregation.SeedValues.by_seed``); a
            row without runs has none.
        published: each row's published values by column (None where the paper has none).
        judged: the verdict column (``verdict_column``), or None for no verdicts.

    Returns:
        One ``Comparison`` per row, in row order.
    """
    pairing = pair_rows(table_id, keys)
    out = []
    for i, row in enumerate(values):
        base = pairing.baseline_of.get(i)
        deltas: dict[str, Summary] = {}
        papers: dict[str, float] = {}
        if base is not None:
            deltas = {
                c: paired_delta(v, values[base][c], decimals=DECIMALS)
                for c, v in row.items()
                if c in values[base]
            }
            for column in published[i]:
                paper = published_delta(published[i].get(column), published[base].get(column))
                if paper is not None:
                    papers[column] = paper
        verdict_text = ""
        if judged is not None:
            verdict_text = row_verdict(
                i in pairing.baselines,
                base is not None,
                bool(row),
                base is not None and bool(values[base]),
                deltas.get(judged),
                papers.get(judged),
            )
        out.append(Comparison(base, deltas, papers, verdict_text))
    return out


def delta_text(delta: Summary | None) -> str:
    """A delta with its 95 % interval: ``"+1.23 [+0.24, +2.22]"``; one seed pair ``"+1.23 (n = 1)"``;
    none ``""``."""
    if delta is None or delta.mean is None:
        return ""
    if delta.low is None or delta.high is None:
        return f"{_signed(delta.mean)} (n = {delta.n})"
    return f"{_signed(delta.mean)} [{_signed(delta.low)}, {_signed(delta.high)}]"


def _signed(value: float) -> str:
    return f"{float(Decimal(str(value)).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)) + 0.0:+.2f}"


def count_verdicts(verdicts: Sequence[str]) -> dict[str, int]:
    """How many rows have each verdict, every verdict listed (zeros included), in ``ROW_VERDICTS`` order."""
    return {v: sum(1 for x in verdicts if x == v) for v in ROW_VERDICTS}


def verdict_line(counts: Mapping[str, int], column: str | None) -> str:
    """The summary line of a table's verdicts, e.g. ``Verdicts on the mIoU delta ...: 3 reproduced, ...``."""
    if column is None:
        return "Verdicts: none (the table has no verdict column)."
    compared = ", ".join(f"{counts.get(v, 0)} {v}" for v in COMPARED_VERDICTS)
    others = ", ".join(f"{counts.get(v, 0)} {v}" for v in (BASELINE, NO_BASELINE, NOT_RUN))
    return (
        f"Verdicts on the {column} delta against each row's baseline (95 % interval paired by seed): "
        f"{compared}; {others}."
    )
