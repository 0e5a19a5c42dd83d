"""The Snakemake workflow on the demo configuration: config validation, a full run, resumption."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO_ROOT

BIN = Path(sys.executable).parent


def snakemake(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        # Targets go before --configfile, which would take them for more config files.
        [str(BIN / "snakemake"), *args, "--cores", "2", "--configfile", str(config)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def write_config(tmp_path: Path, **changes: object) -> Path:
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labeling.cluster.k": 1}, "1 is less than the minimum of 2"),
        ({"labeling.bogus": 3}, "'bogus' was unexpected"),
        (
            {"labeling.masks": {"backend": "sam", "sam": {"checkpoint": "nope/sam_vit_h.pth"}}},
            "labeling.masks.sam.checkpoint: nope/sam_vit_h.pth does not exist",
        ),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, change, message):
    result = snakemake("-n", config=write_config(tmp_path, **change))
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def small_study(tmp_path: Path, **changes: object) -> Path:
    """The demo with 4-iteration training and a smaller study: Table 1 (baseline, backbone) and Table 5
    (area 0.3 vs 1.0), plus the binary set, which is labeled but not trained."""
    study = {
        "pseudo_labels": {
            "demo-pl": {"dataset": "demo", "label": "Demo-PL", "evaluate": True},
            "demo-binary": {"dataset": "demo", "variant": "binary", "of": "demo-pl", "label": "Binary Mask"},
            "demo-pl-area1.0": {"dataset": "demo", "area_threshold": 1.0, "label": "Demo-PL (area 1.0)"},
        },
        "training.schedules": {"demo": 4},
        "training.log_interval": 2,
        "tables": {
            "1": {
                "finetune_datasets": ["demo"],
                "pretrained": ["demo-pl"],
                "inits": ["backbone"],
                "baseline": True,
            },
            "5": {
                "finetune_datasets": ["demo"],
                "pretrained": ["demo-pl", "demo-pl-area1.0"],
                "inits": ["backbone"],
            },
        },
    }
    return write_config(tmp_path, **{**study, **changes})


@pytest.mark.slow
def test_demo_dag_runs_resumes_and_reruns_only_what_changed(tmp_path):
    config = small_study(tmp_path)
    first = snakemake(config=config)
    assert first.returncode == 0, first.stderr[-3000:]
    results = tmp_path / "results"
    for path in (
        "pl/demo-pl/dataset_card.json",
        "pl/demo-binary/dataset_card.json",
        "pl/demo-pl-area1.0/dataset_card.json",
        "metrics/label_quality/demo-pl.json",
        "pseudo_labels/demo-pl/cluster/kmeans.npz",
        "logs/cluster/demo-pl.log",
        "figures/demo-pl/s2_r00_c00.png",
        "figures/demo-binary/s2_r00_c00.png",
        "metrics/tables.json",
    ):
        assert (results / path).is_file(), path
    assert len(list((results / "pl/demo-pl/ann_dir/train").glob("*.png"))) == 37
    binary = json.loads((results / "pl/demo-binary/dataset_card.json").read_text())
    assert binary["num_classes"] == 2 and binary["variant"] == "binary"
    # The area-1.0 set keeps masks the 0.3 gate drops, so it labels more pixels from the same features.
    wide = json.loads((results / "pl/demo-pl-area1.0/dataset_card.json").read_text())
    narrow = json.loads((results / "pl/demo-pl/dataset_card.json").read_text())
    assert wide["coverage"] > narrow["coverage"]

    check_training_outputs(tmp_path)
    check_tables(tmp_path)

    dry = snakemake("-n", config=config)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr

    # Losing one feature shard reruns that shard's features and everything downstream, not the masks.
    (results / "labeling/demo/features/train/shard_0001.npz").unlink()
    plan = snakemake("-n", config=config)
    assert plan.returncode == 0
    assert job_counts(plan.stdout + plan.stderr) == {
        "features": 1,
        "cluster": 2,  # demo-pl and demo-pl-area1.0 share the features
        "paint": 4,  # 2 shards x 2 sets; demo-binary reads demo-pl's painted shards
        "pl_dataset": 3,
        "label_quality": 1,
        "figures": 3,
        "pretrain": 2,
        "finetune": 2,  # the baseline does not depend on the pseudo-labels
        "tables": 1,
        "gallery": 2,  # the cluster gallery of each alps set (rules/gallery.smk)
        "all": 1,
        "total": 22,
    }


def job_counts(output: str) -> dict[str, int]:
    """The job table of a Snakemake dry run (the first one; Snakemake prints it twice)."""
    lines = output[output.index("Job stats:") :].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2:
            break
        counts[parts[0]] = int(parts[1])
    return counts


def check_training_outputs(tmp_path):
    train = tmp_path / "results" / "train"
    pretrain = json.loads((train / "pretrain/segformer-b0/demo-pl/demo/seed0/metrics.json").read_text())
    assert pretrain["role"] == "pretrain" and pretrain["iter"] == 4 and pretrain["seed"] == 0
    for run, init in (("scratch/demo/none/seed0", "none"), ("demo-pl/demo/backbone/seed0", "backbone")):
        metrics = json.loads((train / "finetune/demo/segformer-b0" / run / "metrics.json").read_text())
        assert metrics["init"] == init and metrics["evaluated"] and metrics["split"] == "val"
        assert set(metrics["per_class"]["IoU"]) == {"other", "vegetation", "water"}
        assert 0 <= metrics["metrics"]["mIoU"] <= 100


def check_tables(tmp_path):
    tables = tmp_path / "results" / "tables"
    for table in ("1", "5"):
        for suffix in ("csv", "md", "tex"):
            assert (tables / f"table{table}.{suffix}").is_file(), f"table{table}.{suffix}"
    backbone = json.loads(
        (
            tmp_path / "results/train/finetune/demo/segformer-b0/demo-pl/demo/backbone/seed0/metrics.json"
        ).read_text()
    )
    markdown = (tables / "table1.md").read_text()
    assert f"{backbone['metrics']['mIoU']:.2f} (no published value)" in markdown
    # Every demo cell was run; the paper has no demo rows to compare with.
    for table in ("1", "5"):
        frame = pd.read_csv(tables / f"table{table}.csv", keep_default_na=False)
        assert set(frame["status"]) == {"no published value"}, table
    dvc_metrics = json.loads((tmp_path / "results/metrics/tables.json").read_text())
    assert set(dvc_metrics) == {"table1", "table5"}
    assert dvc_metrics["table1"]["demo | SegFormer-B0 | Backbone | Demo-PL | demo"]["mIoU"] == round(
        backbone["metrics"]["mIoU"], 2
    )


@pytest.mark.slow
def test_paper_dryrun_plans_the_full_study(tmp_path):
    """`make paper-dryrun`: the paper's study, planned on placeholder inputs, has every run of Tables 1-6."""
    plan = tmp_path / "plan.log"
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "paper-dryrun.sh"), "config/paper.yaml"],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PAPER_DRYRUN_LOG": str(plan)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "total" in result.stdout
    # Shards of 1000 images (alps.placeholders.PAPER_IMAGE_COUNTS): iSAID 33,978 training patches -> 34,
    # SAMRS 73,560 -> 74, ATLAS 3,840 slices -> 4; labeling.label_val paints the val splits too with the
    # models fitted on train: iSAID 11,644 -> 12, SAMRS 31,526 -> 32, ATLAS has none.
    isaid, samrs, atlas = 34 + 12, 74 + 32, 4
    assert job_counts(result.stdout) == {
        "masks_and_features": isaid + samrs + atlas,  # the sam encoder: features come with the masks
        "cluster": 7,  # iSAID-PL, SAMRS-PL, ATLAS-PL and four area thresholds (0.3 is SAMRS-PL)
        "paint": isaid + 5 * samrs + atlas,  # the binary set reuses iSAID-PL's painting
        "box_labels": samrs,  # SAMRS*
        "pl_dataset": 9,
        "figures": 9,
        "label_quality": 2,  # iSAID-PL and ATLAS-PL (SAMRS's subsets share no label codes: not scored)
        # iSAID-PL and SAMRS-PL x 8 methods, SAMRS-PL 320k x 8, SAMRS* 2, binary 2, Mixed-PL 2,
        # areas 4, ATLAS-PL 1; each for training.seeds [0, 1, 2].
        "pretrain": (8 + 8 + 8 + 2 + 2 + 2 + 4 + 1) * 3,
        # Tables 1 and 2: 8 methods x (baseline + overall/backbone/head x 2 PL sets) x 2 datasets; 3a SAMRS*
        # 2 x 2; 3b binary and Mixed-PL 2 x 2; 4 the 320k runs 8 x 2; 5 four areas; 6 UNet x 2; x 3 seeds.
        "finetune": (8 * 7 * 2 + 4 + 4 + 16 + 4 + 2) * 3,
        "tables": 1,
        "gallery": 7,  # one per alps set, like the clustering
        "all": 1,
        "total": 1409,
    }
    _assert_training_jobs_load_imagenet_backbones(plan.read_text(), result.stdout)


def _assert_training_jobs_load_imagenet_backbones(plan: str, summary: str) -> None:
    """Every training job of the eight methods passes paper.yaml's backbone as --pretrained, 2 GPUs each."""
    import shlex

    training = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())["training"]
    backbones = training["pretrained_backbones"]
    from alps.train.models import PAPER_MODELS

    assert sorted(backbones) == sorted(PAPER_MODELS)
    commands = [
        line[line.index("alps ") :]
        for line in plan.splitlines()
        if re.search(r"alps (pretrain|finetune) ", line)
    ]
    prefixes = [
        line[: line.index("alps ")]
        for line in plan.splitlines()
        if re.search(r"alps (pretrain|finetune) ", line)
    ]
    assert len(commands) == (35 + 142) * 3
    # Table 6: ATLAS-PL pre-training and 2 fine-tunes, per seed.
    unet = sum("--model unet-s5-d16 " in c for c in commands)
    assert unet == 3 * 3
    # Each seed's job trains with its seed, in its own folder; a fine-tuning from its seed's pre-training.
    for command in commands:
        seed = re.search(r"--seed (\d+) ", command).group(1)
        assert f"/seed{seed} " in command
        assert "--from" not in command or f"/seed{seed}/iter_" in command
    assert f"training jobs: {len(commands)}, with --pretrained: {len(commands) - unet}" in summary
    for command, prefix in zip(commands, prefixes, strict=True):
        args = shlex.split(command.split(" > ")[0])
        model = args[args.index("--model") + 1]
        assert prefix.endswith("torchrun --standalone --nproc_per_node=2 --no-python ")
        assert args[args.index("--launcher") + 1] == "pytorch"
        if model in PAPER_MODELS:
            assert args[args.index("--pretrained") + 1] == backbones[model], command
        else:  # the medical UNet: mmseg trains it from scratch
            assert "--pretrained" not in args
    # Each training job claims its 2 GPUs (Slurm: --gpus=2).
    blocks = [b for b in plan.split("\n\n") if re.search(r"rule (pretrain|finetune):", b)]
    assert len(blocks) == len(commands)
    assert all(re.search(r"resources: .*\bgpu=2\b", b) for b in blocks)


@pytest.mark.slow
def test_a_run_killed_inside_a_mask_shard_resumes_without_corrupt_output(tmp_path):
    """SIGKILL to the whole Snakemake process group while a masks job runs, then the same command again."""
    import hashlib
    import re
    import signal
    import time

    config = write_config(
        tmp_path, **{"labeling.masks.felzenszwalb": {"scale": 150.0, "sigma": 0.8, "min_size": 5}}
    )
    results = tmp_path / "results"
    shard = results / "labeling/demo/masks/train/shard_0000.parquet"
    prepared = snakemake(str(results / "datasets/demo/manifest.csv"), config=config)
    assert prepared.returncode == 0, prepared.stderr[-3000:]

    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [str(BIN / "snakemake"), str(shard), "--cores", "1", "--configfile", str(config)]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = results / "logs/masks/demo_train_shard_0000.log"
    deadline = time.monotonic() + 120
    # `alps masks` logs "<image id>: <n> masks" after each image: wait for the first one.
    while time.monotonic() < deadline and not re.search(
        r": \d+ masks", log.read_text() if log.exists() else ""
    ):
        time.sleep(0.2)
    time.sleep(1.0)  # inside the shard: the job has started working on its images
    assert process.poll() is None, (
        "the masks job finished before it could be killed; the test needs a slower shard"
    )
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    # A hard kill leaves Snakemake's lock behind (in the repository's .snakemake, shared by every test);
    # `--unlock` is the documented first step after one, so it comes before any assertion can fail.
    unlocked = snakemake(str(shard), "--unlock", config=config)
    assert unlocked.returncode == 0, unlocked.stderr[-3000:]
    # Atomic writes: nothing at the shard's path, no half-written Parquet file.
    assert not shard.exists()
    resumed = snakemake(str(shard), config=config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    clean_config = write_config(
        fresh, **{"labeling.masks.felzenszwalb": {"scale": 150.0, "sigma": 0.8, "min_size": 5}}
    )
    clean_shard = fresh / "results/labeling/demo/masks/train/shard_0000.parquet"
    clean = snakemake(str(clean_shard), config=clean_config)
    assert clean.returncode == 0, clean.stderr[-3000:]
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (shard, clean_shard)]
    assert digest[0] == digest[1]


def _rule_resources(plan: str, rule: str) -> list[str]:
    """The ``resources:`` lines of a rule's jobs in a Snakemake dry run."""
    blocks = [b for b in plan.split("\n\n") if re.search(rf"^rule {rule}:", b.strip(), re.M)]
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip().startswith("resources:")]


@pytest.fixture(scope="module")
def prepared_demo(tmp_path_factory) -> Path:
    """The demo dataset prepared by its rule, so that a dry run sees its shards."""
    tmp_path = tmp_path_factory.mktemp("demo")
    config = write_config(tmp_path)
    result = snakemake(str(tmp_path / "results/datasets/demo/manifest.csv"), config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path


@pytest.mark.parametrize(
    ("sam_device", "expected"),
    [
        ("cpu", {"masks_and_features": 0, "box_labels": 0}),
        ("cuda", {"masks_and_features": 1, "box_labels": 1}),
    ],
)
def test_labeling_jobs_claim_a_gpu_only_where_sam_runs_on_cuda(prepared_demo, sam_device, expected):
    """SAM on the CPU claims no `gpu` (a Slurm GPU held for nothing otherwise); on CUDA it claims one."""
    from alps.miniature import tiny_sam_checkpoint

    tmp_path = prepared_demo
    checkpoint = tiny_sam_checkpoint(tmp_path / "sam_tiny.pth")
    (tmp_path / "boxes").mkdir(exist_ok=True)
    config = write_config(
        tmp_path,
        **{
            "labeling.masks": {
                "backend": "sam",
                "sam": {"checkpoint": str(checkpoint), "model_type": "vit_tiny", "device": sam_device},
            },
            "labeling.encoder": {"name": "sam"},
            "pseudo_labels.demo-star": {
                "dataset": "demo",
                "variant": "boxes",
                "label": "Demo*",
                "boxes": {"dir": str(tmp_path / "boxes"), "classes": ["plane", "ship"]},
            },
        },
    )
    # No --resources: Snakemake would cap each claim at the global amount and hide it.
    plan = snakemake("-n", config=config)
    output = plan.stdout + plan.stderr
    assert plan.returncode == 0, output[-3000:]
    for rule, gpus in expected.items():
        lines = _rule_resources(output, rule)
        assert lines, f"no {rule} job planned"
        assert all(re.search(rf"\bgpu={gpus}\b", line) for line in lines), (rule, lines)


def test_each_seed_is_its_own_job_from_its_own_pre_training(prepared_demo):
    """training.seeds [0, 1]: every training job twice, each with its --seed, in its seed folder, a
    fine-tuning from the pre-training of its seed; training.deterministic and reinit_classifier reach the
    commands."""
    config = write_config(
        prepared_demo,
        **{"training.seeds": [0, 1], "training.deterministic": True, "training.reinit_classifier": True},
    )
    plan = snakemake("-n", "--printshellcmds", config=config)
    output = plan.stdout + plan.stderr
    assert plan.returncode == 0, output[-3000:]
    counts = job_counts(output)
    assert (counts["pretrain"], counts["finetune"]) == (4 * 2, 7 * 2)
    commands = [line for line in output.splitlines() if re.search(r"alps (pretrain|finetune) ", line)]
    assert len(commands) == 22
    for command in commands:
        seed = re.search(r"--seed (\d+) ", command).group(1)
        assert f"/seed{seed} " in command and "--deterministic" in command
        if "--from" in command:
            assert re.search(rf"--from \S+/seed{seed}/iter_100\.pth", command)
            init = re.search(r"--init (\w+)", command).group(1)
            assert ("--reinit-classifier" in command) is ("alps finetune" in command), command
            assert init in ("overall", "backbone", "head")
    assert {re.search(r"--seed (\d+) ", c).group(1) for c in commands} == {"0", "1"}
