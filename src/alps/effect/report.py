"""The experiment's report: every seed's numbers, each arm's spread, its delta against no pre-training
(paired by seed), the learning curves, the cost, and a plain statement of what the numbers say.

All statistics come from ``alps.stats`` on the per-seed values kept in the same report (``summarize``,
``paired_delta``, ``verdict``), so anyone can recompute them from ``report.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from alps.effect.jobs import arms, job_records
from alps.effect.layout import WRITER, EffectLayout
from alps.effect.training import CURVE_NAME, SCRATCH
from alps.io.outputs import OutputSetError, file_problem, output_file
from alps.stats import Summary, paired_delta, summarize, verdict
from alps.train import configs
from alps.train.runner import METRICS_NAME

PAPER_DELTA = 0.29
"""The paper's closest published delta: SegFormer on iSAID, pre-trained on iSAID-PL, overall init
(Table 1: 64.89 - 64.60 mIoU). Its setting differs (MiT-B5, ImageNet backbone, 160k iterations)."""

PAPER_ROW = "Table 1, SegFormer-MiT-B5, iSAID-PL -> iSAID, overall init: 64.89 vs 64.60 baseline"

BETTER, WORSE, NOISE, TOO_FEW = "better", "worse", "within noise", "inconclusive (n < 2)"


def effect_of(delta: Summary) -> str:
    """What a paired delta says on its own: its 95 % interval above zero, below it, or across it."""
    if delta.n < 2 or delta.low is None or delta.high is None:
        return TOO_FEW
    if delta.low > 0:
        return BETTER
    if delta.high < 0:
        return WORSE
    return NOISE


def initialisation(model: str, imagenet: bool) -> str:
    """How every arm's network starts, in words."""
    if not imagenet:
        return f"{model} from random weights in every arm (no ImageNet backbone)"
    return (
        f"{model}'s backbone from ImageNet in every arm (before pre-training, and in the fine-tuning without "
        f"pre-training): {configs.official_pretrained(model)}"
    )


def _summary(s: Summary) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return {"n": s.n, "mean": r(s.mean), "std": r(s.std), "low": r(s.low), "high": r(s.high)}


def chance_miou(dataset: Path, split: str = "val") -> float:
    """mIoU (percent) of predicting background everywhere, scored as mmseg does (classes with a union)."""
    counts = np.zeros(256, np.int64)
    for path in sorted((dataset / "ann_dir" / split).glob("*.png")):
        counts += np.bincount(np.asarray(Image.open(path)).ravel(), minlength=256)
    present = int((counts[:255] > 0).sum())
    return round(100 * counts[0] / counts[:255].sum() / max(present, 1), 2)


def _seed_record(work: Path) -> dict[str, Any] | None:
    path = work / METRICS_NAME
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    curve = json.loads((work / CURVE_NAME).read_text()) if (work / CURVE_NAME).is_file() else {"val": []}
    return {
        **metrics["metrics"],
        "per_class_IoU": metrics["per_class"].get("IoU", {}),
        "iter": metrics["iter"],
        "curve": [[point["iter"], point.get("mIoU")] for point in curve["val"]],
    }


def _cost(layout: EffectLayout, arm: str, records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Wall and CPU seconds of the arm's jobs (each in its own process on ``threads`` threads).

    On a loaded machine wall seconds grow with the load; CPU seconds do not (much), so both are kept.
    """

    def wall(prefix: str) -> dict[str, float]:
        return {k: float(v["wall_s"]) for k, v in records.items() if k.startswith(prefix)}

    prefixes = [f"finetune/{arm}/"]
    finetune = wall(prefixes[0])
    cost: dict[str, Any] = {"finetune_s": finetune}
    total = sum(finetune.values())
    if arm != SCRATCH:
        prefixes += [f"masks/{arm}/", f"pl/{arm}", f"pretrain/{arm}/"]
        labeling = sum(wall(prefixes[1]).values()) + sum(wall(prefixes[2]).values())
        pretrain = wall(prefixes[3])
        cost.update(labeling_s=round(labeling, 1), pretrain_s=pretrain)
        total += labeling + sum(pretrain.values())
    cost["total_s"] = round(total, 1)
    cost["total_cpu_s"] = round(
        sum(float(v["cpu_s"]) for k, v in records.items() if k.startswith(tuple(prefixes))), 1
    )
    return cost


def _per_class(seeds: Mapping[int, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    names: list[str] = []
    for record in seeds.values():
        names += [n for n in record["per_class_IoU"] if n not in names]
    out = {}
    for name in names:
        values = [r["per_class_IoU"].get(name) for r in seeds.values()]
        numbers = [v for v in values if v is not None]
        out[name] = {**_summary(summarize(numbers)), "absent_in": len(values) - len(numbers)}
    return out


def _curve_mean(seeds: Mapping[int, Mapping[str, Any]]) -> list[list[float]]:
    by_iter: dict[int, list[float]] = {}
    for record in seeds.values():
        for it, value in record["curve"]:
            if value is not None:
                by_iter.setdefault(int(it), []).append(float(value))
    return [[it, round(float(np.mean(v)), 3)] for it, v in sorted(by_iter.items())]


def build_report(layout: EffectLayout, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The report's content from the runs' ``metrics.json``, ``curve.json`` and job records.

    Arguments:
        layout: the experiment's paths and settings.
        extra: facts gathered by the caller (wall time of the command, load average, PL cards, split).

    Returns:
        The JSON-ready report.
    """
    settings = layout.settings
    records = job_records(layout)
    report_arms: dict[str, Any] = {}
    for arm in arms(layout):
        seeds = {s: r for s in settings.seeds if (r := _seed_record(layout.finetune(arm, s))) is not None}
        report_arms[arm] = {
            "seeds": seeds,
            "mIoU": _summary(summarize(r["mIoU"] for r in seeds.values())),
            "per_class_IoU": _per_class(seeds),
            "curve_mean": _curve_mean(seeds),
            "cost": _cost(layout, arm, records),
        }
    base = {s: r["mIoU"] for s, r in report_arms[SCRATCH]["seeds"].items()}
    for arm in arms(layout)[1:]:
        treated = {s: r["mIoU"] for s, r in report_arms[arm]["seeds"].items()}
        delta = paired_delta(treated, base)
        report_arms[arm]["delta_vs_scratch"] = {
            **_summary(delta),
            "per_seed": {s: round(treated[s] - base[s], 3) for s in sorted(set(treated) & set(base))},
        }
        report_arms[arm]["effect"] = effect_of(delta)
        report_arms[arm]["verdict_vs_paper"] = verdict(delta, PAPER_DELTA)
    report = {
        "question": "Does pre-training on ALPS pseudo-labels of an unlabeled pool improve fine-tuning?",
        "settings": settings.as_dict(),
        "initialisation": initialisation(settings.model, settings.imagenet),
        "paper_reference": {"delta": PAPER_DELTA, "row": PAPER_ROW},
        "arms": report_arms,
        **extra,
    }
    report["reading"] = reading(report)
    return report


def reading(report: Mapping[str, Any]) -> list[str]:
    """Plain sentences on what the numbers say (the report's conclusion), from the numbers alone."""
    arms_ = report["arms"]
    base = arms_[SCRATCH]
    lines = []
    chance = report.get("chance_mIoU")
    curve = base["curve_mean"]
    if base["mIoU"]["mean"] is not None:
        text = f"No pre-training reaches {base['mIoU']['mean']:.2f} mIoU (std {_f(base['mIoU']['std'])})"
        if chance is not None:
            text += f"; predicting background everywhere scores {chance:.2f}"
        lines.append(text + ".")
    if len(curve) >= 2:
        (i0, v0), (i1, v1) = curve[-2], curve[-1]
        lines.append(
            f"Its mean learning curve moves {v1 - v0:+.2f} mIoU over the last {i1 - i0} iterations "
            f"({v0:.2f} at {i0}, {v1:.2f} at {i1}); the seed-to-seed std is {_f(base['mIoU']['std'])}."
        )
    for arm, entry in arms_.items():
        if arm == SCRATCH:
            continue
        d = entry["delta_vs_scratch"]
        if d["mean"] is None:
            lines.append(f"{arm}: no paired seeds.")
            continue
        interval = f"[{_f(d['low'])}, {_f(d['high'])}]"
        text = (
            f"Pre-training on {arm} pseudo-labels: {entry['mIoU']['mean']:.2f} mIoU, delta {d['mean']:+.2f} "
            f"(95% interval {interval}, n = {d['n']}): {entry['effect']}"
        )
        if d["low"] is not None and d["high"] is not None:
            half = (d["high"] - d["low"]) / 2
            text += f"; with these seeds a delta under ±{half:.2f} is not told from noise"
        lines.append(text + ".")
    effects = [e["effect"] for a, e in arms_.items() if a != SCRATCH]
    if effects and all(e != BETTER for e in effects):
        lines.append("The pseudo-label pre-training effect does not appear in this experiment.")
    return lines


def _f(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def markdown(report: Mapping[str, Any], plot_name: str) -> str:
    """The report as Markdown: the reading, the arms table, per-class IoU, cost, settings."""
    arms_ = report["arms"]
    lines = ["# The ALPS effect, measured", "", *[f"- {line}" for line in report["reading"]], ""]
    lines += [f"![arms and learning curves]({plot_name})", ""]
    lines += [
        "| arm | n | mIoU mean | std | delta vs scratch | 95% interval | effect | vs paper "
        "| wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, e in arms_.items():
        d = e.get("delta_vs_scratch")
        delta = f"{d['mean']:+.2f}" if d and d["mean"] is not None else "-"
        interval = f"[{_f(d['low'])}, {_f(d['high'])}]" if d else "-"
        lines.append(
            f"| {arm} | {e['mIoU']['n']} | {_f(e['mIoU']['mean'])} | {_f(e['mIoU']['std'])} | {delta} | "
            f"{interval} | {e.get('effect', '-')} | {e.get('verdict_vs_paper', '-')} | "
            f"{e['cost']['total_s']:.0f} | {e['cost'].get('total_cpu_s', 0):.0f} |"
        )
    lines += [
        "",
        "Per seed (mIoU):",
        "",
        "| arm | " + " | ".join(f"seed {s}" for s in report["settings"]["seeds"]) + " |",
        "|---|" + "---|" * len(report["settings"]["seeds"]),
    ]
    for arm, e in arms_.items():
        cells = [_f(e["seeds"].get(s, {}).get("mIoU")) for s in report["settings"]["seeds"]]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    classes = list(next(iter(arms_.values()))["per_class_IoU"])
    lines += [
        "",
        "Per-class IoU (mean over seeds; - : absent from labels and predictions):",
        "",
        "| class | " + " | ".join(arms_) + " |",
        "|---|" + "---|" * len(arms_),
    ]
    for name in classes:
        cells = [
            _f(e["per_class_IoU"].get(name, {}).get("mean"))
            if e["per_class_IoU"].get(name, {}).get("n")
            else "-"
            for e in arms_.values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", *_wall_lines(report.get("wall", {}))]
    lines += [
        "",
        f"Initialisation: {report['initialisation']}.",
        "",
        f"Paper reference for the verdict column: {report['paper_reference']['row']}.",
        "",
        "Settings:",
        "",
        "```json",
        json.dumps(report["settings"], indent=1),
        "```",
        "",
    ]
    return "\n".join(lines)


def _wall_lines(wall: Mapping[str, Any]) -> list[str]:
    """The command's wall time with the machine's load, and what idle cores would take."""
    run = wall.get("this_invocation")
    if not run:
        return []
    lines = [
        f"Wall time of this invocation: {run['wall_s'] / 60:.1f} min on {run['cpus']} CPUs (load average "
        f"{run['loadavg_start'][1]:.1f} at the start, {run['loadavg_end'][1]:.1f} at the end, 5-minute)."
    ]
    if len(wall.get("invocations", [])) > 1:
        total = sum(float(i["wall_s"]) for i in wall["invocations"])
        lines[0] += f" All {len(wall['invocations'])} invocations: {total / 60:.1f} min."
    if wall.get("estimated_idle_wall_s") is not None:
        lines.append(
            f"The jobs took {wall['job_cpu_s'] / 60:.1f} CPU minutes; replayed by their CPU time on "
            f"otherwise idle cores they would take {wall['estimated_idle_wall_s'] / 60:.1f} min of wall time."
        )
    return [line for text in lines for line in (text, "")][:-1]


def plot(report: Mapping[str, Any], path: Path) -> None:
    """Per-seed mIoU of each arm with its mean and 95 % interval, and the mean learning curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms_ = report["arms"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for x, (arm, e) in enumerate(arms_.items()):
        values = [r["mIoU"] for r in e["seeds"].values()]
        left.scatter([x] * len(values), values, color="0.5", zorder=2)
        m = e["mIoU"]
        if m["mean"] is not None:
            low, high = (m["low"], m["high"]) if m["low"] is not None else (m["mean"], m["mean"])
            left.errorbar(
                [x + 0.15],
                [m["mean"]],
                yerr=[[m["mean"] - low], [high - m["mean"]]],
                fmt="o",
                color="C0",
                capsize=4,
                zorder=3,
            )
        right.plot(*zip(*e["curve_mean"], strict=True), marker="o", label=arm) if e["curve_mean"] else None
    left.set_xticks(range(len(arms_)), list(arms_))
    left.set_ylabel("mIoU on the eval split (%)")
    left.set_title("per seed (grey), mean and 95% interval (blue)")
    if report.get("chance_mIoU") is not None:
        left.axhline(report["chance_mIoU"], color="0.7", linestyle=":", label="background everywhere")
        right.axhline(report["chance_mIoU"], color="0.7", linestyle=":")
    right.set_xlabel("fine-tuning iteration")
    right.set_ylabel("mIoU, mean over seeds (%)")
    right.set_title("learning curves")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def write_report(
    report: Mapping[str, Any], out: Path, names: Sequence[str] = ("report.json", "report.md", "effect.png")
) -> list[Path]:
    """``report.json``, ``report.md`` and the plot in ``out``, by the output rule (``output_file``).

    Each file appears whole and replaces only this command's own earlier report; all three are checked
    before any is written, so a file of someone else's there stops the run with none of them changed.

    Raises:
        OutputSetError: one of the three paths holds a file this command did not write.
    """
    json_path, md_path, png_path = paths = [out / n for n in names]
    problems = [p for p in (file_problem(path, WRITER) for path in paths) if p is not None]
    if problems:
        raise OutputSetError(f"{WRITER} will not replace {'; '.join(problems)}; move it away")
    with output_file(json_path, WRITER) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    with output_file(md_path, WRITER) as tmp:
        tmp.write_text(markdown(report, png_path.name), encoding="utf-8")
    with output_file(png_path, WRITER) as tmp:
        plot(report, tmp)
    return paths
