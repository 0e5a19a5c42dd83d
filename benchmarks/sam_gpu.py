"""SAM AMG seconds per image on a GPU: stock AMG against the engine, fp32 against bf16, masks compared.

For each SAM architecture (``vit_b``, ``vit_h``; random weights from ``alps.masks.sam.build_sam``, seed 0,
so no download is needed) and each image, in the same process on the same device:

- **stock**: segment_anything's own ``SamAutomaticMaskGenerator`` (COCO RLE output);
- **fast**: ``alps.masks.fast_amg.ExactFastAMG`` with the same settings; its records are compared with
  stock's as JSON text (every RLE, score, box and point) and must be identical;
- **engine fp32**: ``alps.masks.sam.SamMaskGenerator`` (fast path, keeps the embedding for the features);
- **engine bf16**: the same with the image encoder under bfloat16 autocast (``--bf16``); its masks are
  matched to the fp32 engine's (best IoU per fp32 mask, pycocotools) and the embeddings compared.

Each configuration runs once untimed on the image (CUDA kernels, cuDNN autotuning, allocator), then
``--repeats`` timed times (once if the warm-up took over 10 s); the median is printed (CUDA
synchronised). Random weights give speckled masks;
the thresholds below (as in ``labeling_throughput.py``) keep mask counts of the order a trained SAM gives:
logit cut 0.16, ``pred_iou_thresh`` 0.04, ``stability_score_thresh`` 0, ``box_nms_thresh`` 1.

    python benchmarks/sam_gpu.py --images a.png b.png [--models vit_b vit_h] [--points-per-side 32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from segment_anything import SamAutomaticMaskGenerator

from alps.masks.fast_amg import ExactFastAMG
from alps.masks.sam import SamConfig, SamMaskGenerator, build_sam

MASK_THRESHOLD = 0.16  # see the module docstring: random weights give logits within +-0.2


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function: Callable[[], Any], repeats: int, slow: float = 10.0) -> tuple[float, Any]:
    """Median wall seconds of ``repeats`` calls after one untimed warm-up call, and the last result.

    A configuration whose warm-up call took over ``slow`` seconds is timed once (a device lease is short).
    """
    synchronize()
    start = time.perf_counter()
    result = function()
    synchronize()
    if time.perf_counter() - start > slow:
        repeats = 1
    seconds = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        result = function()
        synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def records_text(records: list[dict[str, Any]]) -> list[str]:
    """Each AMG record as JSON text (types included), the comparison the fast-path tests make."""
    return [json.dumps(record, sort_keys=True) for record in records]


def match_masks(reference: list[dict[str, Any]], other: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean best IoU of each reference mask against ``other``, and the share matched at IoU >= 0.9."""
    if not reference or not other:
        return (1.0, 1.0) if len(reference) == len(other) else (0.0, 0.0)
    ious = np.asarray(mask_utils.iou(reference, other, [0] * len(other)))
    best = ious.max(axis=1)
    return float(best.mean()), float((best >= 0.9).mean())


def bench_model(model_type: str, images: list[Path], args: argparse.Namespace, out: dict[str, Any]) -> None:
    torch.manual_seed(0)
    sam = build_sam(model_type).to(args.device).eval()
    sam.mask_threshold = MASK_THRESHOLD
    config = SamConfig(
        points_per_side=args.points_per_side,
        pred_iou_thresh=0.04,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
    )
    amg_kwargs = asdict(config)
    stock = SamAutomaticMaskGenerator(sam, output_mode="coco_rle", **amg_kwargs)
    fast = ExactFastAMG(sam, output_mode="coco_rle", **amg_kwargs)
    engine = SamMaskGenerator(sam, config)
    engine_bf16 = SamMaskGenerator(sam, config, bf16=True)
    for path in images:
        image = np.asarray(Image.open(path).convert("RGB"))
        row: dict[str, Any] = {"model": model_type, "image": path.name, "size": list(image.shape[:2])}
        with torch.inference_mode():
            row["stock_s"], stock_records = timed(partial(stock.generate, image), args.repeats)
            row["fast_s"], fast_records = timed(partial(fast.generate, image), args.repeats)
        row["engine_fp32_s"], fp32_set = timed(partial(engine.generate, image, path.stem), args.repeats)
        row["engine_bf16_s"], bf16_set = timed(partial(engine_bf16.generate, image, path.stem), args.repeats)
        row["masks_stock"] = len(stock_records)
        row["masks_stock_nonempty"] = sum(record["area"] > 0 for record in stock_records)
        row["fast_identical_to_stock"] = records_text(stock_records) == records_text(fast_records)
        row["masks_engine_fp32"] = len(fp32_set.rles)
        row["masks_engine_bf16"] = len(bf16_set.rles)
        row["bf16_mean_best_iou"], row["bf16_share_iou90"] = match_masks(fp32_set.rles, bf16_set.rles)
        difference = np.abs(fp32_set.embedding - bf16_set.embedding)
        row["bf16_embedding_max_abs"] = float(difference.max())
        row["bf16_embedding_rel"] = float(difference.mean() / max(np.abs(fp32_set.embedding).mean(), 1e-12))
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", type=Path, required=True)
    parser.add_argument("--models", nargs="+", default=["vit_b", "vit_h"])
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda", help="cpu only to try the script (vit_tiny)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("sam_gpu.py: no CUDA device (use --device cpu only to try the script)")
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "points_per_side": args.points_per_side,
        "repeats": args.repeats,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "rows": [],
    }
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}), flush=True)
    for model_type in args.models:
        bench_model(model_type, args.images, args, out)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the previous model's generators are gone with bench_model's frame
    header = ("model", "image", "stock", "fast", "fp32", "bf16")
    print("{:6s} {:28s} {:>7s} {:>7s} {:>7s} {:>7s}  stock/fast  masks".format(*header))
    for row in out["rows"]:
        print(
            f"{row['model']:6s} {row['image']:28s} {row['stock_s']:7.3f} {row['fast_s']:7.3f} "
            f"{row['engine_fp32_s']:7.3f} {row['engine_bf16_s']:7.3f}  x{row['stock_s'] / row['fast_s']:.2f}"
            f"  {row['masks_stock']} (identical: {row['fast_identical_to_stock']})"
        )


if __name__ == "__main__":
    main()
