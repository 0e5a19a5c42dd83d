"""Instance masks read from a COCO json: oracle masks, or masks drawn by annotators or box prompts.

Categories are ignored: the masks enter the pipeline exactly as SAM's would, which isolates the quality of
the mask-class association (features + clustering) from the quality of the masks.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pycocotools import mask as mask_utils

from alps.limits import check_pixels
from alps.masks.base import MaskSet
from alps.masks.rle import check_polygons, check_rle

MAX_COCO_BYTES = 2 << 30
"""The largest COCO file read (2 GiB; iSAID's training annotations are 0.5 GB)."""


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _whole(value: Any) -> Any:
    """A size as an int (COCO writers may store 512.0); anything else is left for the size check."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _annotation_order(entry: tuple[int, dict[str, Any]]) -> tuple[int, int, str]:
    """Annotations by id (numbers before strings), then by position in the file."""
    order, annotation = entry
    key = annotation.get("id", order)
    return (0, key, "") if isinstance(key, int) else (1, 0, str(key))


class CocoMaskSource:
    """Serve the annotations of a COCO instances file, looked up by image file stem.

    Arguments:
        json_path: a COCO instances json (polygons or RLE; ``iscrowd`` annotations included).

    Raises:
        FileNotFoundError / ValueError: the file is missing or is not a COCO instances file.
    """

    name = "coco"

    def __init__(self, json_path: str | os.PathLike[str]) -> None:
        self.json_path = Path(json_path)
        if not self.json_path.is_file():
            raise FileNotFoundError(f"COCO json {self.json_path} does not exist (pass it with --coco-json)")
        size = self.json_path.stat().st_size
        if size > MAX_COCO_BYTES:
            raise ValueError(f"{self.json_path}: {size:,} bytes, over the limit of {MAX_COCO_BYTES:,}")
        try:
            data = json.loads(self.json_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{self.json_path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{self.json_path}: not a COCO instances file (the top level is not an object)")
        missing = {"images", "annotations"} - set(data)
        if missing:
            raise ValueError(f"{self.json_path}: not a COCO instances file, missing keys {sorted(missing)}")
        if not isinstance(data["images"], list) or not isinstance(data["annotations"], list):
            raise ValueError(f"{self.json_path}: 'images' and 'annotations' must be lists")
        self._images: dict[str, dict[str, Any]] = {}
        for index, image in enumerate(data["images"]):
            self._add_image(index, image)
        self._annotations: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for index, annotation in enumerate(data["annotations"]):
            where = f"{self.json_path}: annotation {index}"
            if not isinstance(annotation, dict) or not {"image_id", "segmentation"} <= set(annotation):
                raise ValueError(f"{where}: an annotation is an object with 'image_id' and 'segmentation'")
            if not _is_id(annotation["image_id"]) or not _is_id(annotation.get("id", index)):
                raise ValueError(f"{where}: 'image_id' and 'id' must be numbers or strings")
            self._annotations[annotation["image_id"]].append(annotation)

    def _add_image(self, index: int, image: Any) -> None:
        where = f"{self.json_path}: image {index}"
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
            raise ValueError(f"{where}: an image is an object with a 'file_name'")
        if not _is_id(image.get("id")):
            raise ValueError(f"{where}: 'id' must be a number or a string")
        height, width = _whole(image.get("height")), _whole(image.get("width"))
        check_pixels(height, width, where, "image")
        self._images[Path(image["file_name"]).stem] = {**image, "height": height, "width": width}

    def has_image(self, image_id: str) -> bool:
        """Whether the COCO file lists an image with this file stem."""
        return image_id in self._images

    def generate(self, image: NDArray[np.uint8], image_id: str) -> MaskSet:
        """Return the annotated masks of the image whose file stem is ``image_id``.

        Raises:
            KeyError: the COCO file has no such image.
            ValueError: the COCO file's image size disagrees with the image read from disk.
        """
        if image_id not in self._images:
            raise KeyError(f"{self.json_path}: no image with file stem {image_id!r}")
        info = self._images[image_id]
        height, width = info["height"], info["width"]
        if image.shape[:2] != (height, width):
            raise ValueError(
                f"{self.json_path}: image {image_id!r} is {width}x{height} there but "
                f"{image.shape[1]}x{image.shape[0]} on disk"
            )
        rles = []
        annotations = self._annotations.get(info["id"], [])
        for order, annotation in sorted(enumerate(annotations), key=_annotation_order):
            where = f"{self.json_path}: annotation {annotation.get('id', order)!r} of image {image_id!r}"
            segmentation = annotation["segmentation"]
            # Checked before pycocotools' C code sees it (alps.masks.rle).
            if isinstance(segmentation, list):
                polygons = check_polygons(segmentation, height, width, where)
                rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
            else:
                checked = check_rle(segmentation, height, width, where)
                if isinstance(checked["counts"], list):
                    rle = mask_utils.frPyObjects(checked, height, width)
                else:
                    rle = checked
            if mask_utils.area(rle) > 0:
                rles.append({"size": [height, width], "counts": rle["counts"]})
        n = len(rles)
        return MaskSet(image_id, height, width, rles, np.ones(n, np.float32), np.ones(n, np.float32))
