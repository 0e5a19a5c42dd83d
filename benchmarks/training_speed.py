"""Seconds per training iteration of the paper's methods, fp32 against mixed precision (AMP), on one device.

Fine-tunes each model with `alps.train.runner.finetune` (the real mmengine path, the config the workflow
uses) on a synthetic 3-class folder dataset of random 512 px images, and times the training iterations with
an mmengine hook: the median interval over the last iterations, after warm-up. The batch is each model's
official per-GPU batch from mmseg's own config (``configs.official_batch_size``) unless ``--batch-size``
sets one; ``--models paper`` runs the paper's eight methods. Prints one line per model and
precision and the AMP speed-up measured in the same run. On a GPU this is what the model's schedule
(80k or 160k) costs; on the CPU only fp32 runs (AMP is CUDA only). Random data: the timing, not the
accuracy, is the point. ``--determinism both`` times each model with mmengine's deterministic mode off
and on (``training.deterministic``, docs/training.md) and prints the cost of the deterministic mode as the
ratio of the two, measured in the same run.

    python benchmarks/training_speed.py --device cuda --models paper --precisions fp32 --iters 30
    python benchmarks/training_speed.py --device cpu --models segformer-b0 upernet-r18 --crop 128 \
        --precisions fp32 --determinism both --iters 12 --warmup 4 --workers 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.hooks import Hook
from PIL import Image

from alps.train.configs import MODELS, PAPER_MODELS, SCHEDULES, official_batch_size
from alps.train.runner import finetune


class IterationTimer(Hook):
    """Records the wall time after each training iteration (CUDA synchronised, so kernels are counted)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())


def synthetic_dataset(root: Path, size: int, images: int, seed: int = 0) -> Path:
    """A folder dataset (classes.json, img_dir/ann_dir train/val) of random images and blocky labels."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", images), ("val", 2)):
        for index in range(count):
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            label = np.kron(rng.integers(0, 3, (size // 64, size // 64)), np.ones((64, 64))).astype(np.uint8)
            for folder, array in (("img_dir", image), ("ann_dir", label)):
                path = root / folder / split / f"{split}_{index:03d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(path)
    classes = {"classes": ["a", "b", "c"], "palette": [[0, 0, 0], [255, 0, 0], [0, 255, 0]]}
    (root / "classes.json").write_text(json.dumps(classes))
    return root


def seconds_per_iter(
    model: str,
    dataset: Path,
    work_dir: Path,
    args: argparse.Namespace,
    amp: bool,
    batch_size: int,
    deterministic: bool | None = None,
) -> float:
    timer = IterationTimer()
    finetune(
        dataset,
        work_dir,
        model=model,
        dataset="folder",
        iters=args.iters,
        crop_size=args.crop,
        batch_size=batch_size,
        num_workers=args.workers,
        device=args.device,
        amp=amp,
        val_interval=args.iters * 10,  # no validation inside the timed loop
        resume=False,
        hooks=[timer],
        **({} if deterministic is None else {"deterministic": deterministic}),
    )
    intervals = np.diff(timer.stamps)[args.warmup :]
    return float(statistics.median(intervals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["upernet-r50", "segformer-b5"],
                        help="configs.MODELS keys, or 'paper' for the paper's eight")  # fmt: skip
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10, help="iterations left out of the median")
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--batch-size", type=int, help="default: each model's official per-GPU batch")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "amp"], default=["fp32", "amp"],
                        help="amp runs on CUDA only")  # fmt: skip
    parser.add_argument("--determinism", choices=["default", "both"], default="default",
                        help="both: time deterministic off and on (fp32)")  # fmt: skip
    args = parser.parse_args()
    if args.determinism == "both":
        determinism(args)
        return
    models = [name for model in args.models for name in (PAPER_MODELS if model == "paper" else [model])]
    precisions = [p == "amp" for p in args.precisions if p == "fp32" or args.device.startswith("cuda")]
    with tempfile.TemporaryDirectory() as tmp:
        dataset = synthetic_dataset(Path(tmp) / "data", args.crop, images=8)
        name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
        print(f"device {name}, torch {torch.__version__}, crop {args.crop}, median of iterations "
              f"{args.warmup + 1}..{args.iters}")  # fmt: skip
        for model in models:
            batch = args.batch_size or official_batch_size(model)
            timings = {}
            for amp in precisions:
                label = "amp" if amp else "fp32"
                work_dir = Path(tmp) / f"{model}-{label}"
                timings[label] = seconds_per_iter(model, dataset, work_dir, args, amp, batch)
                peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else 0.0
                schedule = MODELS[model].schedule
                hours = timings[label] * SCHEDULES[schedule] / 3600
                print(f"{model:20s} batch {batch} {label:5s} {timings[label]:.3f} s/iter  "
                      f"({hours:.1f} h per {schedule})  peak {peak:.1f} GiB", flush=True)  # fmt: skip
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
            if "amp" in timings:
                print(f"{model:20s} AMP speed-up x{timings['fp32'] / timings['amp']:.2f}")


def determinism(args: argparse.Namespace) -> None:
    """Seconds per iteration with the deterministic mode off, on, off, on (interleaved, so that a change of
    the machine's load hits both), and the ratio of the medians."""
    with tempfile.TemporaryDirectory() as tmp:
        dataset = synthetic_dataset(Path(tmp) / "data", args.crop, images=8)
        print(
            f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, crop "
            f"{args.crop}, median of iterations {args.warmup + 1}..{args.iters}, runs off/on/off/on"
        )
        for model in [m for name in args.models for m in (PAPER_MODELS if name == "paper" else [name])]:
            batch = args.batch_size or official_batch_size(model)
            timings: dict[bool, list[float]] = {False: [], True: []}
            for index, mode in enumerate((False, True, False, True)):
                work_dir = Path(tmp) / f"{model}-{index}"
                timings[mode].append(seconds_per_iter(model, dataset, work_dir, args, False, batch, mode))
            off, on = (statistics.median(timings[m]) for m in (False, True))
            runs = {m: ", ".join(f"{t:.3f}" for t in timings[m]) for m in (False, True)}
            print(
                f"{model:20s} batch {batch} deterministic off {off:.3f} s/iter ({runs[False]}), "
                f"on {on:.3f} s/iter ({runs[True]}): on/off x{on / off:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
