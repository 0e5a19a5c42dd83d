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

from alps.masks.base import MaskSet


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
        try:
            data = json.loads(self.json_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.json_path}: not valid JSON ({exc})") from exc
        missing = {"images", "annotations"} - set(data)
        if missing:
            raise ValueError(f"{self.json_path}: not a COCO instances file, missing keys {sorted(missing)}")
        self._images: dict[str, dict[str, Any]] = {}
        for image in data["images"]:
            self._images[Path(image["file_name"]).stem] = image
        self._annotations: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for annotation in data["annotations"]:
            self._annotations[annotation["image_id"]].append(annotation)

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
        height, width = int(info["height"]), int(info["width"])
        if image.shape[:2] != (height, width):
            raise ValueError(
                f"{self.json_path}: image {image_id!r} is {width}x{height} there but "
                f"{image.shape[1]}x{image.shape[0]} on disk"
            )
        rles = []
        for annotation in sorted(self._annotations.get(info["id"], []), key=lambda a: a["id"]):
            segmentation = annotation["segmentation"]
            if isinstance(segmentation, list):
                parts = mask_utils.frPyObjects(segmentation, height, width)
                rle = mask_utils.merge(parts) if parts else None
            elif isinstance(segmentation["counts"], list):
                rle = mask_utils.frPyObjects(segmentation, height, width)
            else:
                rle = dict(segmentation)
                if isinstance(rle["counts"], str):
                    rle["counts"] = rle["counts"].encode("ascii")
            if rle is not None and mask_utils.area(rle) > 0:
                rles.append({"size": [height, width], "counts": rle["counts"]})
        n = len(rles)
        return MaskSet(image_id, height, width, rles, np.ones(n, np.float32), np.ones(n, np.float32))
