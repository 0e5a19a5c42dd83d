"""The ALPS effect, measured: does pre-training on pseudo-labels of an unlabeled pool help fine-tuning?

``make effect`` (``python -m alps.effect``) runs one controlled experiment on real imagery:

* **pseudo-labels** of the 370 unlabeled NWPU VHR-10 pool images, made by the project's labeling stages
  (``alps.effect.labels``: masks, EfficientNet-Lite0 features, k-means, painting, PL dataset) from (a) the
  pool's class-agnostic instance polygons as oracle masks and (b) the weight-free ``felzenszwalb`` backend;
* **the same model** (``segformer-lite0``: SegFormer's head on an ImageNet EfficientNet-Lite0) pre-trained
  on each PL dataset with each seed (``alps.effect.training``), then fine-tuned on the 150 labeled NWPU
  VHR-10 images (fixed, stratified 100/50 split, ``alps.effect.data``), against the same model
  fine-tuned without pre-training; seed s of a pre-training feeds fine-tuning seed s;
* **the report** (``alps.effect.report``): per seed mIoU and per-class IoU on the eval split, each arm's
  mean, std and 95 % interval, its delta against no pre-training paired by seed, the learning curves, the
  cost of each arm, the settings, and what the numbers say, whatever they say.

Jobs run two at a time on 2 cores (``alps.effect.jobs``); everything is cached under the output folder
and a rerun resumes (``alps.effect.layout``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from alps.effect.jobs import job_records, plan, replay, run_jobs
from alps.effect.layout import EffectLayout
from alps.effect.report import build_report, chance_miou, write_report
from alps.effect.settings import SIZES, EffectSettings, load_settings
from alps.io.atomic import atomic_write_text

log = logging.getLogger(__name__)

RUNS_NAME = "invocations.json"


def _pl_facts(layout: EffectLayout, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    facts = {}
    for backend in layout.settings.mask_backends:
        card_path = layout.pl(backend) / "dataset_card.json"
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
        masks = sum(
            int(r["result"].get("masks", 0))
            for name, r in records.items()
            if name.startswith(f"masks/{backend}/")
        )
        facts[backend] = {
            "images": card.get("images"),
            "k": card.get("num_classes"),
            "coverage": round(card["coverage"], 4) if "coverage" in card else None,
            "masks": masks or None,
            "class_pixels": card.get("class_pixels"),
        }
    return facts


def _stage_walls(records: dict[str, dict[str, Any]]) -> dict[str, float]:
    stages: dict[str, float] = {}
    for name, record in records.items():
        stage = name.split("/")[0]
        stages[stage] = round(stages.get(stage, 0.0) + float(record["wall_s"]), 1)
    return stages


def run_effect(
    out: str | os.PathLike[str],
    settings: EffectSettings,
    labeled_raw: str | os.PathLike[str],
    pool_dir: str | os.PathLike[str],
    *,
    processes: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the experiment and write ``report.json``, ``report.md`` and ``effect.png`` in ``out``.

    Arguments:
        out: the output folder (cache and report).
        settings: the experiment's settings (``load_settings``).
        labeled_raw: NWPU VHR-10's labeled images (``images/`` + ``instances_*.json``).
        pool_dir: the unlabeled pool (``images/`` + ``instances_class_agnostic.json``).
        processes: run jobs in ``settings.workers`` processes (False: one after another in this one).

    Returns:
        The report.
    """
    layout = EffectLayout(Path(out).absolute(), settings)
    labeled, pool = Path(labeled_raw), Path(pool_dir)
    for path, what in ((labeled, "the labeled NWPU VHR-10 set"), (pool, "the unlabeled pool")):
        if not (path / "images").is_dir():
            raise FileNotFoundError(f"{path}/images is missing: {what} is needed (see docs/effect.md)")
    start, load_start = time.time(), os.getloadavg()
    jobs = plan(layout, labeled, pool)
    log.info("%d jobs, %d at a time; cache %s", len(jobs), settings.workers, layout.out)
    run_jobs(jobs, layout, settings.workers, settings.threads, processes=processes)
    invocation = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start)),
        "wall_s": round(time.time() - start, 1),
        "loadavg_start": [round(v, 2) for v in load_start],
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    runs_path = layout.jobs / RUNS_NAME
    invocations = json.loads(runs_path.read_text()) if runs_path.is_file() else []
    invocations.append(invocation)
    atomic_write_text(runs_path, json.dumps(invocations, indent=2) + "\n")
    records = job_records(layout)
    split = json.loads((layout.finetune_data / "dataset_card.json").read_text())
    extra = {
        "finetune_data": {
            "train_images": len(split["images"]["train"]),
            "eval_images": len(split["images"]["val"]),
            "eval_split": "a hold-out of the train split" if settings.holdout else "the fixed eval split",
            "images": split["images"],
        },
        "chance_mIoU": chance_miou(layout.finetune_data),
        "pseudo_labels": _pl_facts(layout, records),
        "wall": {
            "this_invocation": invocation,
            "invocations": invocations,
            "job_seconds_by_stage": _stage_walls(records),
            "job_cpu_s": round(sum(float(r["cpu_s"]) for r in records.values()), 1),
            # On a loaded machine the wall time says little; the jobs replayed by their CPU seconds
            # (single-threaded) say what two idle cores would take.
            "estimated_idle_wall_s": round(
                replay(jobs, {n: float(r["cpu_s"]) for n, r in records.items()}, settings.workers), 1
            ),
            "jobs": {name: r["wall_s"] for name, r in records.items()},
        },
    }
    report = build_report(layout, extra)
    for path in write_report(report, layout.out):
        log.info("wrote %s", path)
    return report


__all__ = ["SIZES", "EffectSettings", "load_settings", "run_effect"]
