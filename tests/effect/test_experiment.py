"""The ALPS-effect experiment: settings, layout, job scheduling, the report's statistics, and the whole code
path end to end on a tiny subset of the real NWPU VHR-10 images."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from alps.effect import load_settings, run_effect
from alps.effect.jobs import Job, JobError, job_records, replay, run_jobs
from alps.effect.layout import EffectLayout
from alps.effect.report import BETTER, NOISE, TOO_FEW, WORSE, build_report, effect_of, write_report
from alps.effect.settings import SIZES
from alps.io.outputs import OutputSetError
from alps.stats import paired_delta, summarize

from conftest import shared_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_settings_file_replaces_the_preset_fields_it_names(tmp_path: Path) -> None:
    config = tmp_path / "effect.yaml"
    config.write_text("finetune_iters: 123\nseeds: [4, 5, 6]\n")
    settings = load_settings("cpu", config)
    assert settings.finetune_iters == 123 and settings.seeds == (4, 5, 6)
    assert settings.model == SIZES["cpu"].model
    config.write_text("finetune_itres: 1\n")
    with pytest.raises(ValueError, match="unknown setting"):
        load_settings("cpu", config)
    with pytest.raises(ValueError, match="unknown size"):
        load_settings("huge")


def test_a_training_change_reuses_the_labels_and_a_labeling_change_does_not(tmp_path: Path) -> None:
    base = EffectLayout(tmp_path, SIZES["cpu"])
    longer = EffectLayout(tmp_path, dataclasses.replace(SIZES["cpu"], finetune_iters=999))
    other_k = EffectLayout(tmp_path, dataclasses.replace(SIZES["cpu"], k=12))
    assert longer.pl("coco") == base.pl("coco") and longer.pretrain("coco", 0) == base.pretrain("coco", 0)
    assert longer.finetune("coco", 0) != base.finetune("coco", 0)
    assert other_k.pl("coco") != base.pl("coco") and other_k.pretrain("coco", 0) != base.pretrain("coco", 0)
    assert other_k.masks("coco", 0) == base.masks("coco", 0)  # K does not change masks or features
    felz = dataclasses.replace(SIZES["cpu"], mask_params={"felzenszwalb": {"scale": 400}})
    assert EffectLayout(tmp_path, felz).masks("coco", 0) == base.masks("coco", 0)
    assert EffectLayout(tmp_path, felz).masks("felzenszwalb", 0) != base.masks("felzenszwalb", 0)
    assert dataclasses.replace(SIZES["cpu"], workers=1).digest() == SIZES["cpu"].digest()


def test_more_seeds_reuse_the_seeds_done_and_a_report_counts_only_its_own(tmp_path: Path) -> None:
    three = EffectLayout(tmp_path, dataclasses.replace(SIZES["cpu"], seeds=(0, 1, 2)))
    four = EffectLayout(tmp_path, dataclasses.replace(SIZES["cpu"], seeds=(0, 1, 2, 3)))
    assert three.finetune("coco", 1) == four.finetune("coco", 1) and three.jobs == four.jobs
    four.jobs.mkdir(parents=True)
    for name in ("prepare", "pl/coco", "pretrain/coco/3", "finetune/scratch/2", "finetune/scratch/3"):
        (four.jobs / f"{name.replace('/', '__')}.json").write_text(json.dumps({"job": name, "cpu_s": 1.0}))
    assert set(job_records(three)) == {"prepare", "pl/coco", "finetune/scratch/2"}
    assert set(job_records(four)) == {
        "prepare",
        "pl/coco",
        "pretrain/coco/3",
        "finetune/scratch/2",
        "finetune/scratch/3",
    }


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [([1.0, 1.2, 0.9], BETTER), ([-1.0, -1.2, -0.9], WORSE), ([1.0, -1.0, 0.5], NOISE), ([2.0], TOO_FEW)],
)
def test_an_effect_is_claimed_only_when_its_interval_excludes_zero(
    deltas: list[float], expected: str
) -> None:
    assert effect_of(summarize(deltas)) == expected


def _write_run(work: Path, miou: float, per_class: dict[str, float | None]) -> None:
    work.mkdir(parents=True)
    metrics = {"metrics": {"mIoU": miou, "aAcc": 97.0}, "per_class": {"IoU": per_class}, "iter": 8}
    (work / "metrics.json").write_text(json.dumps(metrics))
    (work / "curve.json").write_text(
        json.dumps({"val": [{"iter": 4, "mIoU": miou - 1}, {"iter": 8, "mIoU": miou}]})
    )


VALUES = {"scratch": [20.0, 22.0, 21.0], "coco": [23.0, 25.0, 24.5], "felzenszwalb": [19.0, 23.0, 20.0]}


def _hand_made_report(tmp_path: Path) -> tuple[EffectLayout, dict[str, Any]]:
    """The report of three arms whose per-seed mIoUs are ``VALUES``."""
    layout = EffectLayout(tmp_path, dataclasses.replace(SIZES["toy"], seeds=(0, 1, 2)))
    for arm, per_seed in VALUES.items():
        for seed, miou in zip(layout.settings.seeds, per_seed, strict=True):
            _write_run(
                layout.finetune(arm, seed), miou, {"background": 97.0, "airplane": miou - 10, "ship": None}
            )
    return layout, json.loads(json.dumps(build_report(layout, {"chance_mIoU": 12.0})))


def test_the_report_statistics_are_computed_from_its_per_seed_numbers(tmp_path: Path) -> None:
    layout, report = _hand_made_report(tmp_path)
    settings, values = layout.settings, VALUES
    assert set(report["arms"]) == {"scratch", "coco", "felzenszwalb"}
    base = {int(s): r["mIoU"] for s, r in report["arms"]["scratch"]["seeds"].items()}
    for arm in ("coco", "felzenszwalb"):
        entry = report["arms"][arm]
        treated = {int(s): r["mIoU"] for s, r in entry["seeds"].items()}
        assert treated == dict(zip(settings.seeds, values[arm], strict=True))
        expected = paired_delta(treated, base)
        assert entry["delta_vs_scratch"]["mean"] == pytest.approx(expected.mean, abs=1e-3)
        assert entry["delta_vs_scratch"]["low"] == pytest.approx(expected.low, abs=1e-3)
        assert entry["mIoU"]["std"] == pytest.approx(summarize(values[arm]).std, abs=1e-3)
        assert entry["effect"] == effect_of(expected)
        assert entry["per_class_IoU"]["airplane"]["mean"] == pytest.approx(
            sum(values[arm]) / 3 - 10, abs=1e-3
        )
        assert entry["per_class_IoU"]["ship"]["n"] == 0 and entry["per_class_IoU"]["ship"]["absent_in"] == 3
    assert report["arms"]["coco"]["effect"] == BETTER and report["arms"]["felzenszwalb"]["effect"] == NOISE
    assert report["arms"]["scratch"]["curve_mean"] == [[4, 20.0], [8, 21.0]]
    assert not any("does not appear" in line for line in report["reading"])


def test_the_report_replaces_its_own_files_and_refuses_a_foreign_one(tmp_path: Path) -> None:
    _, report = _hand_made_report(tmp_path)
    paths = write_report(report, tmp_path)
    assert json.loads(paths[0].read_text())["arms"].keys() == VALUES.keys()
    assert Image.open(paths[2]).format == "PNG"
    write_report({**report, "reading": ["a second run"]}, tmp_path)  # its own earlier report: replaced
    assert json.loads(paths[0].read_text())["reading"] == ["a second run"]
    paths[1].write_text("my notes\n")  # edited by hand: no longer the experiment's
    before = paths[0].read_bytes()
    with pytest.raises(OutputSetError, match="report.md"):
        write_report(report, tmp_path)
    assert paths[0].read_bytes() == before and paths[1].read_text() == "my notes\n"


def _step(out: Path, name: str) -> dict[str, Any]:
    with open(out / "order.txt", "a") as f:
        f.write(name + "\n")
    if name == "bad":
        raise RuntimeError("broken input")
    return {"name": name}


def test_jobs_run_after_their_dependencies_and_a_failure_names_the_job(tmp_path: Path) -> None:
    layout = EffectLayout(tmp_path, SIZES["toy"])
    jobs = [
        Job("c", _step, (tmp_path, "c"), ("a", "b"), 1.0),
        Job("a", _step, (tmp_path, "a"), (), 1.0),
        Job("b", _step, (tmp_path, "b"), ("a",), 5.0),
    ]
    run_jobs(jobs, layout, workers=2, threads=1, processes=False)
    assert (tmp_path / "order.txt").read_text().split() == ["a", "b", "c"]
    assert set(job_records(layout)) == {"a", "b", "c"}
    with pytest.raises(JobError, match=r"bad \(RuntimeError: broken input; log: .*bad\.log\)"):
        run_jobs([Job("bad", _step, (tmp_path, "bad"), (), 1.0)], layout, 1, 1, processes=False)


def test_a_replay_by_job_seconds_follows_the_dependencies_and_the_longest_path_first() -> None:
    jobs = [
        Job("a", _step, (), (), 2.0),
        Job("b", _step, (), ("a",), 3.0),
        Job("c", _step, (), (), 1.0),
    ]
    seconds = {"a": 2.0, "b": 3.0, "c": 1.0}
    assert replay(jobs, seconds, workers=2) == 5.0  # a and c at once, b after a
    assert replay(jobs, seconds, workers=1) == 6.0  # one after another: a, b (the longer path), c
    assert replay(jobs, {"b": 3.0}, workers=2) == 3.0  # a job without a record takes no time


def _tiny_raw(tmp_path: Path) -> tuple[Path, Path]:
    """12 labeled and 6 pool images of the real NWPU VHR-10 samples, with their COCO files cut to them."""
    folders = []
    for name, annotation, n in (
        ("nwpu_vhr10_train", "instances_train.json", 12),
        ("nwpu_vhr10_pool", "instances_class_agnostic.json", 6),
    ):
        source = shared_data(name)
        data = json.loads((source / annotation).read_text())
        data["images"] = sorted(data["images"], key=lambda i: i["file_name"])[:n]
        ids = {i["id"] for i in data["images"]}
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
        raw = tmp_path / name
        (raw / "images").mkdir(parents=True)
        (raw / annotation).write_text(json.dumps(data))
        for image in data["images"]:
            os.symlink(source / "images" / image["file_name"], raw / "images" / image["file_name"])
        folders.append(raw)
    return folders[0], folders[1]


@pytest.mark.slow
def test_the_experiment_runs_end_to_end_on_a_tiny_subset_and_resumes(tmp_path: Path) -> None:
    labeled, pool = _tiny_raw(tmp_path)
    settings = SIZES["toy"]
    out = tmp_path / "effect"
    report = run_effect(out, settings, labeled, pool, processes=False)
    saved = json.loads((out / "report.json").read_text())
    assert saved["arms"].keys() == {"scratch", "coco", "felzenszwalb"}
    for entry in saved["arms"].values():
        assert sorted(entry["seeds"]) == ["0", "1", "2"]
        assert all(
            isinstance(r["mIoU"], float) and "background" in r["per_class_IoU"]
            for r in entry["seeds"].values()
        )
        assert entry["mIoU"]["mean"] == pytest.approx(
            summarize(r["mIoU"] for r in entry["seeds"].values()).mean, abs=1e-3
        )
        assert entry["cost"]["total_s"] > 0 and entry["cost"]["total_cpu_s"] > 0
    assert 0 < saved["wall"]["estimated_idle_wall_s"] <= saved["wall"]["job_cpu_s"]
    assert (
        saved["pseudo_labels"]["coco"]["k"] == settings.k
        and saved["pseudo_labels"]["felzenszwalb"]["masks"] > 0
    )
    assert (out / "report.md").read_text().startswith("# The ALPS effect, measured")
    assert "Wall time of this invocation" in (out / "report.md").read_text()
    assert Image.open(out / "effect.png").format == "PNG"
    layout = EffectLayout(out, settings)
    init = json.loads((layout.finetune("coco", 1) / "init_report.json").read_text())
    assert init["counts"]["loaded"] > 0  # the fine-tuning started from the pre-training
    assert not list(layout.finetune("coco", 1).glob("*.pth"))  # fine-tuned checkpoints are dropped
    before = job_records(layout)
    again = run_effect(out, settings, labeled, pool, processes=False)
    assert job_records(layout) == before  # nothing was redone
    assert json.dumps(again["arms"]["coco"]["seeds"]) == json.dumps(report["arms"]["coco"]["seeds"])
