"""Fuzzing of what reaches pycocotools' C code: mask shards, COCO files and class maps (hypothesis).

Run as a script by ``tests/test_masks_rle.py``: a crash in C is a signal that ends this process, and the
test sees it as a return code instead of losing pytest. Every generated input must either be read or be
refused with a ValueError / OSError; anything else prints the input and exits 3.

    python tests/fuzz_inputs.py [--examples N] [--unchecked]

``--unchecked`` feeds the generated RLE strings to pycocotools without ``alps.masks.rle``: the control
that shows the harness sees a crash (it usually ends in SIGSEGV or SIGABRT within a few hundred inputs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from alps.classmap import load_class_map
from alps.masks.coco import CocoMaskSource
from alps.masks.rle import check_rle
from alps.masks.shards import MASK_SHARD_SCHEMA, read_mask_shard
from alps.paint import paint_labels

RLE_CHARS = st.binary(min_size=0, max_size=40).map(lambda b: bytes(48 + c % 64 for c in b))
SIZES = st.integers(1, 24)


@st.composite
def rle_strings(draw: Any) -> tuple[bytes, int, int]:
    """A valid RLE of a random mask, mutated (or not), or random characters of the RLE alphabet."""
    height, width = draw(SIZES), draw(SIZES)
    if draw(st.booleans()):
        return draw(RLE_CHARS), height, width
    seed = draw(st.integers(0, 2**32 - 1))
    mask = (np.random.default_rng(seed).random((height, width, 1)) < 0.5).astype(np.uint8)
    counts = bytearray(mask_utils.encode(np.asfortranarray(mask))[0]["counts"])
    for _ in range(draw(st.integers(0, 3))):
        if not counts:
            break
        at = draw(st.integers(0, len(counts) - 1))
        action = draw(st.sampled_from(["flip", "cut", "grow"]))
        if action == "flip":
            counts[at] = 48 + draw(st.integers(0, 63))
        elif action == "cut":
            del counts[at:]
        else:
            counts[at:at] = bytes([48 + draw(st.integers(0, 63))])
    return bytes(counts), height, width


def _use_with_pycocotools(rle: dict[str, Any]) -> None:
    mask_utils.area(rle)
    mask_utils.toBbox(rle)
    mask_utils.merge([rle, rle])
    mask_utils.decode(rle)


class Unexpected(Exception):
    """An input that was neither read nor refused cleanly."""


def _refused_or_read(action: Any, what: str, example: Any) -> None:
    try:
        action()
    except (ValueError, OSError):
        pass  # a clean refusal
    except Exception as exc:
        raise Unexpected(f"{what}: {example!r}: {type(exc).__name__}: {exc}") from exc


def fuzz_rle(examples: int, unchecked: bool) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None)
    @given(rle_strings())
    def run(case: tuple[bytes, int, int]) -> None:
        counts, height, width = case
        rle = {"size": [height, width], "counts": counts}

        def action() -> None:
            checked = rle if unchecked else check_rle(rle, height, width, "fuzz")
            _use_with_pycocotools(checked)

        _refused_or_read(action, "rle", case)

    run()


def _write_shard(path: Path, images: Any, rows: list[dict[str, Any]]) -> None:
    columns = {name: [row.get(name) for row in rows] for name in MASK_SHARD_SCHEMA.names}
    metadata = {b"alps.images": json.dumps({"version": 1, "images": images}).encode()}
    table = pa.table(columns, schema=MASK_SHARD_SCHEMA.with_metadata(metadata))
    pq.write_table(table, path)


IDS = st.one_of(
    st.sampled_from(["a", "b", "../../escape", "/abs/x", "", ".", "..", ".hidden", "a/b", "x\x00y"]),
    st.text(max_size=8),
)
NUMBERS = st.one_of(SIZES, st.sampled_from([0, -1, 10**12, None, "7", 2.5, True]))


def fuzz_shards(examples: int, folder: Path) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.lists(st.fixed_dictionaries({"image_id": IDS, "height": NUMBERS, "width": NUMBERS}), max_size=3),
        st.lists(st.tuples(IDS, rle_strings()), max_size=4),
    )
    def run(images: list[dict[str, Any]], masks: list[tuple[str, tuple[bytes, int, int]]]) -> None:
        rows = [
            {
                "image_id": image_id,
                "mask_id": i,
                "rle": counts,
                "area": 1,
                "bbox_x": 0.0,
                "bbox_y": 0.0,
                "bbox_w": 1.0,
                "bbox_h": 1.0,
                "predicted_iou": 1.0,
                "stability_score": 1.0,
            }
            for i, (image_id, (counts, _, _)) in enumerate(masks)
        ]
        path = folder / "shard.parquet"
        try:
            _write_shard(path, images, rows)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return  # not writable as Parquet: nothing to read

        def action() -> None:
            for mask_set in read_mask_shard(path):
                paint_labels(mask_set, np.zeros(len(mask_set), np.int64))

        _refused_or_read(action, "shard", (images, masks))

    run()


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(), st.text(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
COORDINATES = st.one_of(
    st.floats(-50, 50), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([5e8, -5e8, 1e300])
)


@st.composite
def segmentations(draw: Any) -> Any:
    kind = draw(st.sampled_from(["polygon", "rle", "counts", "junk"]))
    if kind == "polygon":
        return draw(st.lists(st.lists(COORDINATES, min_size=0, max_size=10), max_size=3))
    if kind == "rle":
        counts, height, width = draw(rle_strings())
        return {"size": [height, width], "counts": counts.decode("ascii")}
    if kind == "counts":
        return {
            "size": [draw(SIZES), draw(SIZES)],
            "counts": draw(st.lists(st.integers(-5, 600), max_size=8)),
        }
    return draw(JSON_VALUES)


@st.composite
def coco_files(draw: Any) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUES)  # anything at all, a list at the top level included
    image = {"id": draw(st.one_of(st.just(1), JSON_VALUES)), "file_name": "img.png"}
    image["height"], image["width"] = draw(NUMBERS), draw(NUMBERS)
    annotations = [
        {"id": i, "image_id": draw(st.one_of(st.just(1), JSON_VALUES)), "segmentation": draw(segmentations())}
        for i in range(draw(st.integers(0, 3)))
    ]
    return {"images": [image], "annotations": annotations}


def fuzz_coco(examples: int, folder: Path) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(coco_files())
    def run(data: Any) -> None:
        path = folder / "instances.json"
        path.write_text(json.dumps(data))

        def action() -> None:
            source = CocoMaskSource(path)
            if source.has_image("img"):
                info = source._images["img"]
                image = np.zeros((info["height"], info["width"], 3), np.uint8)
                for rle in source.generate(image, "img").rles:
                    mask_utils.decode(rle)

        _refused_or_read(action, "coco", data)

    run()


CLASS_MAP_TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.tuples(st.one_of(st.integers(-3, 300), st.text(max_size=3)), st.text(max_size=5)), max_size=6
    ).map(lambda pairs: "".join(f"{k}: {v!r}\n" for k, v in pairs)),
    st.integers(1, 9).map(
        lambda depth: (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
                for i in range(depth)
            )
            + f"0: *{chr(97 + depth)}\n"
        )
    ),
)


def fuzz_class_maps(examples: int, folder: Path) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None)
    @given(CLASS_MAP_TEXT, st.one_of(st.none(), st.integers(2, 255)))
    def run(text: str, k: int | None) -> None:
        path = folder / "map.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")

        def action() -> None:
            load_class_map(path, k).lut()

        _refused_or_read(action, "class map", (text, k))

    run()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--unchecked", action="store_true")
    args = parser.parse_args()
    if args.unchecked:
        fuzz_rle(args.examples, unchecked=True)
        return 0
    try:
        with tempfile.TemporaryDirectory() as folder:
            fuzz_rle(args.examples * 5, unchecked=False)
            fuzz_shards(args.examples, Path(folder))
            fuzz_coco(args.examples, Path(folder))
            fuzz_class_maps(args.examples, Path(folder))
    except Unexpected:
        traceback.print_exc()
        return 3
    print("no crash", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
