"""Detection boxes for SAMRS* labels: DOTA box files, mmrotate Task1 submissions, and windows of sources.

Two layouts are read (``BoxSource`` tells them apart by the file names in the folder):

**Per-image DOTA files** (``<name>.txt``, one per image, as in DOTA's ``labelTxt`` folders):

* optional header lines ``imagesource:...`` and ``gsd:...`` (anywhere; their values are ignored);
* oriented boxes ``x1 y1 x2 y2 x3 y3 x4 y4 classname [difficult] [score]``;
* horizontal boxes ``xmin ymin xmax ymax classname [difficult|score]`` (and ``[difficult] [score]``).

A single token after the class name is ``difficult`` if it is an integer (``0``, ``1``) and a ``score`` if
it has a decimal point or exponent (``0.87``); two tokens are ``difficult score``. Class names are single
tokens (DOTA writes ``small-vehicle``). Blank lines are skipped. Anything else is a ``BoxFileError`` naming
the file and the line.

**mmrotate Task1 submission** (what ``tools/test.py --format-only`` writes for DOTA, see
``docs/samrs_star.md``): one ``Task1_<classname>.txt`` per class, lines ``image_id score x1 y1 ... x4 y4``;
also read from the ``.zip`` mmrotate packs them into. An image absent from every class file had no
detection, so it has no boxes.

**Which boxes belong to a manifest image** (``BoxSource.boxes_for_image``), in this order:

1. boxes named after the image's ``image_id`` (``<image_id>.txt``, or that id in a Task1 submission) are in
   the image's own pixel coordinates: they are clipped to the image;
2. else boxes named after the stem of the manifest's ``source`` (the source file's name without folders
   and suffix: ``folder`` tiles of ``P0706.png`` look for ``P0706.txt``, iSAID patches of ``P0706`` too)
   are in source-image coordinates: they are shifted by ``(window_x, window_y)`` and those that overlap the
   window are kept, their horizontal box clipped to it (``boxes_in_window``);
3. else, with per-image files, it is an error (a forgotten detector output would otherwise silently become
   an unlabeled image: write an empty ``<name>.txt`` for an image without objects); with a Task1
   submission the image has no boxes.

Converters cut windows without resampling (image pixel = source pixel - window offset; iSAID pads the
border patches), which is the mapping rule 2 uses.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from alps.io.atomic import atomic_write_text

HEADER_KEYS: tuple[str, ...] = ("imagesource", "gsd")
"""DOTA header keys (``imagesource:GoogleEarth``, ``gsd:0.146``); their lines carry no box."""

TASK1_PREFIX = "Task1_"
"""File name prefix of mmrotate's (and DOTA's) Task1 submission files: ``Task1_<class>.txt``."""

_HEADER = re.compile(r"^\s*(" + "|".join(HEADER_KEYS) + r")\s*:", re.IGNORECASE)
_INTEGER = re.compile(r"^[+-]?\d+$")
_EXPECTED = (
    "expected 'x1 y1 x2 y2 x3 y3 x4 y4 classname [difficult] [score]' or "
    "'xmin ymin xmax ymax classname [difficult|score]'"
)


class BoxFileError(ValueError):
    """A box file is malformed; the message names the file and the line, and what was expected."""


@dataclass(frozen=True, eq=False)
class Box:
    """One detection box.

    Attributes:
        polygon: ``(4, 2)`` float64 corners ``(x, y)`` in pixels, read-only (a horizontal box's corners
            run top-left, top-right, bottom-right, bottom-left).
        hbb: ``(x0, y0, x1, y1)``, the horizontal bounding rectangle of the polygon; after
            ``boxes_in_window`` it is clipped to the window while ``polygon`` is only shifted.
        class_name: the detector's class name.
        difficult: DOTA's difficult flag (0 when the file has none).
        score: the detection score, or None when the file has none (ground-truth files).
        origin: the file the box was read from (provenance for error messages; not compared).
        line: its 1-based line number in ``origin`` (0 when not read from a file; not compared).
    """

    polygon: NDArray[np.float64]
    hbb: tuple[float, float, float, float]
    class_name: str
    difficult: int = 0
    score: float | None = None
    origin: str = ""
    line: int = 0

    def __post_init__(self) -> None:
        polygon = np.array(self.polygon, dtype=np.float64)
        if polygon.shape != (4, 2) or not np.isfinite(polygon).all():
            raise ValueError(f"{self.where}: a box polygon is 4 finite (x, y) corners, got {polygon!r}")
        polygon.setflags(write=False)
        object.__setattr__(self, "polygon", polygon)
        hbb = tuple(float(v) for v in self.hbb)
        if len(hbb) != 4 or not all(math.isfinite(v) for v in hbb) or hbb[0] > hbb[2] or hbb[1] > hbb[3]:
            raise ValueError(f"{self.where}: hbb must be finite (x0, y0, x1, y1) with x0 <= x1, y0 <= y1")
        object.__setattr__(self, "hbb", hbb)
        if not self.class_name or self.class_name != self.class_name.strip():
            raise ValueError(f"{self.where}: empty class name or surrounding whitespace: {self.class_name!r}")
        if self.difficult < 0:
            raise ValueError(f"{self.where}: difficult must be >= 0, got {self.difficult}")
        if self.score is not None and not math.isfinite(self.score):
            raise ValueError(f"{self.where}: score must be finite, got {self.score}")

    @classmethod
    def from_polygon(
        cls,
        polygon: ArrayLike,
        class_name: str,
        difficult: int = 0,
        score: float | None = None,
        *,
        origin: str = "",
        line: int = 0,
    ) -> Box:
        """A box from its four corners; ``hbb`` is their horizontal bounding rectangle.

        Arguments:
            polygon: 4 ``(x, y)`` corners (or 8 numbers ``x1 y1 ... x4 y4``).
            class_name: the class name.
            difficult: DOTA's difficult flag.
            score: detection score, if any.
            origin: the file it came from (for messages).
            line: its line in ``origin``.

        Returns:
            The box.
        """
        corners = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        if corners.shape != (4, 2):
            raise ValueError(f"{origin or 'box'}: a polygon has 4 corners, got {corners.shape[0]}")
        x0, y0 = corners.min(axis=0)
        x1, y1 = corners.max(axis=0)
        return cls(corners, (x0, y0, x1, y1), class_name, difficult, score, origin, line)

    @classmethod
    def from_hbb(
        cls,
        hbb: Sequence[float],
        class_name: str,
        difficult: int = 0,
        score: float | None = None,
        *,
        origin: str = "",
        line: int = 0,
    ) -> Box:
        """A horizontal box ``(xmin, ymin, xmax, ymax)``; its polygon is the rectangle's corners.

        Returns:
            The box.

        Raises:
            ValueError: ``xmin > xmax`` or ``ymin > ymax``.
        """
        x0, y0, x1, y1 = (float(v) for v in hbb)
        if x0 > x1 or y0 > y1:
            where = f"{origin}, line {line}" if origin else "box"
            raise ValueError(f"{where}: xmin > xmax or ymin > ymax in ({x0}, {y0}, {x1}, {y1})")
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        return cls(np.asarray(corners), (x0, y0, x1, y1), class_name, difficult, score, origin, line)

    @property
    def where(self) -> str:
        """``"<origin>, line <n>"`` for messages (``"box"`` when the box was not read from a file)."""
        if not self.origin:
            return "box"
        return f"{self.origin}, line {self.line}" if self.line else self.origin

    def _key(self) -> tuple[Any, ...]:
        return (self.polygon.tobytes(), self.hbb, self.class_name, self.difficult, self.score)

    def __eq__(self, other: object) -> bool:
        # Provenance (origin, line) is left out: the same detection read from a Task1 submission and from a
        # per-image file is the same box.
        if not isinstance(other, Box):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _number(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def _fail(origin: str, line: int, message: str) -> BoxFileError:
    return BoxFileError(f"{origin}, line {line}: {message}")


def _coordinates(tokens: Sequence[str], origin: str, line: int) -> list[float]:
    values = []
    for token in tokens:
        value = float(token)
        if not math.isfinite(value):
            raise _fail(origin, line, f"coordinate {token!r} is not a finite number")
        values.append(value)
    return values


def _trailing(tokens: Sequence[str], origin: str, line: int) -> tuple[int, float | None]:
    """``(difficult, score)`` from the tokens after the class name."""
    if len(tokens) > 2:
        raise _fail(origin, line, f"{len(tokens)} tokens after the class name, at most 2; {_EXPECTED}")
    difficult, score = 0, None
    if len(tokens) == 2 or (tokens and _INTEGER.match(tokens[0])):
        if not _INTEGER.match(tokens[0]) or int(tokens[0]) < 0:
            raise _fail(origin, line, f"difficult flag {tokens[0]!r} is not an integer >= 0; {_EXPECTED}")
        difficult = int(tokens[0])
        tokens = tokens[1:]
    if tokens:
        score = _number(tokens[0])
        if score is None or not math.isfinite(score):
            raise _fail(origin, line, f"score {tokens[0]!r} is not a finite number; {_EXPECTED}")
    return difficult, score


def parse_dota_line(text: str, *, origin: str = "<text>", line: int = 0) -> Box | None:
    """Parse one line of a per-image DOTA box file.

    Arguments:
        text: the line.
        origin: the file name, for messages and ``Box.origin``.
        line: the 1-based line number, for messages and ``Box.line``.

    Returns:
        The box, or None for a blank or header (``imagesource:``/``gsd:``) line.

    Raises:
        BoxFileError: the line is not one of the formats of the module docstring.
    """
    tokens = text.split()
    if not tokens or _HEADER.match(text):
        return None
    for count in (8, 4):
        if len(tokens) > count and all(_number(t) is not None for t in tokens[:count]):
            if _number(tokens[count]) is not None:
                continue  # more numbers: not this format (e.g. 8 coordinates tried as 4)
            values = _coordinates(tokens[:count], origin, line)
            difficult, score = _trailing(tokens[count + 1 :], origin, line)
            name = tokens[count]
            if count == 8:
                return Box.from_polygon(values, name, difficult, score, origin=origin, line=line)
            if values[0] > values[2] or values[1] > values[3]:
                raise _fail(origin, line, f"horizontal box with xmin > xmax or ymin > ymax: {values}")
            return Box.from_hbb(values, name, difficult, score, origin=origin, line=line)
    numbers = next((i for i, t in enumerate(tokens) if _number(t) is None), len(tokens))
    if numbers == len(tokens):
        problem = f"no class name after the {numbers} number(s)"
    else:
        problem = f"{numbers} number(s) before the class name {tokens[numbers]!r}, need 8 or 4"
    if numbers == 0 and len(tokens) == 10:
        problem += (
            " (a Task1 submission line 'image_id score x1 ... y4'? those go in Task1_<class>.txt files)"
        )
    raise _fail(origin, line, f"{problem}; {_EXPECTED}: {text.strip()!r}")


def _decode(data: bytes, origin: str) -> str:
    try:
        # utf-8-sig: files written on Windows often start with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BoxFileError(f"{origin}: not a UTF-8 text file ({exc}); is it a box .txt file?") from exc


def parse_dota_text(text: str, origin: str = "<text>") -> list[Box]:
    """Parse the content of a per-image DOTA box file (see ``read_dota_boxes``)."""
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        box = parse_dota_line(line, origin=origin, line=number)
        if box is not None:
            boxes.append(box)
    return boxes


def read_dota_boxes(path: str | os.PathLike[str]) -> list[Box]:
    """Read one per-image DOTA box file (format in the module docstring).

    Arguments:
        path: the ``.txt`` file.

    Returns:
        Its boxes in file order (header and blank lines skipped).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        BoxFileError: a malformed line (the message names the file and the line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"box file {path} does not exist")
    return parse_dota_text(_decode(path.read_bytes(), str(path)), str(path))


def _task1_members(path: Path) -> list[tuple[str, str, bytes]]:
    """``(class name, origin, bytes)`` of every ``Task1_<class>.txt`` in a folder or zip, sorted by name."""
    found: list[tuple[str, str, bytes]] = []
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as archive:
                for member in sorted(archive.namelist()):
                    name = PurePosixPath(member).name
                    if name.startswith(TASK1_PREFIX) and name.endswith(".txt"):
                        found.append((name[len(TASK1_PREFIX) : -4], f"{path}:{member}", archive.read(member)))
        except zipfile.BadZipFile as exc:
            raise BoxFileError(f"{path}: not a readable zip file ({exc})") from exc
    else:
        for file in sorted(path.glob(f"{TASK1_PREFIX}*.txt")):
            found.append((file.name[len(TASK1_PREFIX) : -4], str(file), file.read_bytes()))
    seen: dict[str, str] = {}
    for class_name, origin, _ in found:
        if not class_name:
            raise BoxFileError(f"{origin}: a Task1 file name has the class after 'Task1_'; this one has none")
        if class_name in seen:
            raise BoxFileError(f"{origin}: class {class_name!r} also comes from {seen[class_name]}")
        seen[class_name] = origin
    return found


def read_task1_boxes(path: str | os.PathLike[str]) -> dict[str, list[Box]]:
    """Read an mmrotate/DOTA Task1 submission: ``Task1_<class>.txt`` files in a folder or a zip.

    Each line is ``image_id score x1 y1 x2 y2 x3 y3 x4 y4`` (mmrotate writes the coordinates with two
    decimals); the class is the file name's part after ``Task1_``.

    Arguments:
        path: the submission folder, or the ``.zip`` mmrotate writes beside the files.

    Returns:
        ``{image_id: boxes}``; each image's boxes in class-file order (sorted file names), then line order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        BoxFileError: no Task1 file, two files of one class, or a malformed line (file and line named).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Task1 submission {path} does not exist")
    members = _task1_members(path)
    if not members:
        raise BoxFileError(f"{path}: no {TASK1_PREFIX}<class>.txt file found")
    boxes: dict[str, list[Box]] = {}
    for class_name, origin, data in members:
        for number, text in enumerate(_decode(data, origin).splitlines(), start=1):
            tokens = text.split()
            if not tokens:
                continue
            if len(tokens) != 10:
                raise _fail(
                    origin, number, f"{len(tokens)} tokens, expected 10: 'image_id score x1 y1 ... x4 y4'"
                )
            score = _number(tokens[1])
            if score is None or not math.isfinite(score) or any(_number(t) is None for t in tokens[2:]):
                raise _fail(origin, number, f"score and 8 coordinates must be numbers: {text.strip()!r}")
            corners = _coordinates(tokens[2:], origin, number)
            box = Box.from_polygon(corners, class_name, 0, score, origin=origin, line=number)
            boxes.setdefault(tokens[0], []).append(box)
    return boxes


def _format(value: float) -> str:
    # repr is the shortest text that reads back to the same float: a written file round-trips exactly.
    return repr(float(value))


def format_dota_line(box: Box) -> str:
    """One per-image DOTA line for ``box``: ``x1 y1 ... x4 y4 classname difficult [score]``.

    Raises:
        ValueError: the class name holds whitespace (a DOTA line splits on it).
    """
    if any(c.isspace() for c in box.class_name):
        raise ValueError(f"{box.where}: class {box.class_name!r} has whitespace; a DOTA line cannot hold it")
    fields = [_format(v) for v in box.polygon.ravel()] + [box.class_name, str(box.difficult)]
    if box.score is not None:
        fields.append(_format(box.score))
    return " ".join(fields)


def write_dota_boxes(path: str | os.PathLike[str], boxes: Iterable[Box]) -> Path:
    """Write boxes as a per-image DOTA file (oriented form, ``difficult`` always, ``score`` when known).

    Arguments:
        path: the ``.txt`` file to write (atomically; its folder is created).
        boxes: the boxes; an empty iterable writes an empty file (an image without objects).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    atomic_write_text(path, "".join(format_dota_line(box) + "\n" for box in boxes))
    return path


def task1_to_dota(
    task1: str | os.PathLike[str], out_dir: str | os.PathLike[str], image_ids: Iterable[str] = ()
) -> list[Path]:
    """Convert a Task1 submission into per-image DOTA files (one ``<image_id>.txt`` per image).

    Arguments:
        task1: the submission folder or zip (see ``read_task1_boxes``).
        out_dir: the folder to write the files into.
        image_ids: images to write a file for even without detections (an empty file), so that the
            per-image layout's missing-file check can tell "no objects" from "not detected".

    Returns:
        The written files, sorted.
    """
    per_image = read_task1_boxes(task1)
    out = Path(out_dir)
    names = sorted(set(per_image) | set(image_ids))
    return [write_dota_boxes(out / f"{name}.txt", per_image.get(name, [])) for name in names]


def boxes_in_window(boxes: Iterable[Box], x: int, y: int, width: int, height: int) -> list[Box]:
    """Boxes of a source image moved into the frame of a window cut out of it.

    Arguments:
        boxes: boxes in source-image pixel coordinates.
        x: the window's column offset in the source (``window_x``).
        y: its row offset (``window_y``).
        width: its width in source pixels (``window_w``).
        height: its height (``window_h``).

    Returns:
        The boxes whose horizontal box overlaps the window with a positive area, in input order, shifted by
        ``(-x, -y)``: ``polygon`` shifted, ``hbb`` shifted and clipped to ``[0, width] x [0, height]``.
        Boxes that only touch the window's edge, or have no area, are dropped.
    """
    kept = []
    offset = np.array([x, y], dtype=np.float64)
    for box in boxes:
        x0, y0, x1, y1 = box.hbb
        cx0, cy0 = max(x0 - x, 0.0), max(y0 - y, 0.0)
        cx1, cy1 = min(x1 - x, float(width)), min(y1 - y, float(height))
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        kept.append(
            Box(
                box.polygon - offset,
                (cx0, cy0, cx1, cy1),
                box.class_name,
                box.difficult,
                box.score,
                box.origin,
                box.line,
            )
        )
    return kept


@dataclass(frozen=True)
class ImageBoxes:
    """The boxes of one manifest image, in its pixel coordinates.

    Attributes:
        boxes: the boxes that overlap the image (or its window), ``hbb`` clipped to it.
        matched: the name the boxes were found under (an image id or a source stem), "" if none.
        rule: ``"image"`` (own coordinates), ``"source"`` (shifted by the window) or ``"none"``.
        listed: how many boxes were listed under ``matched`` (``listed - len(boxes)`` lie outside).
    """

    boxes: list[Box]
    matched: str
    rule: str
    listed: int


class BoxSource:
    """The detection boxes of a dataset: a folder of per-image DOTA files or a Task1 submission.

    Arguments:
        path: a folder of ``<name>.txt`` DOTA files, a folder of ``Task1_<class>.txt`` files, or the
            Task1 ``.zip``. A folder holding both kinds is refused (which one was meant is unclear).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        BoxFileError: no box file in ``path``, both layouts in one folder, or (Task1) a malformed line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"box folder {self.path} does not exist")
        self._task1: dict[str, list[Box]] | None = None
        self._files: dict[str, Path] = {}
        # The last per-image file read: the tiles of one source come one after another in id order, and
        # boxes are immutable, so its boxes are shared instead of parsing the file once per tile.
        self._last: tuple[str, list[Box]] | None = None
        if self.path.is_file():
            if self.path.suffix.lower() != ".zip":
                raise BoxFileError(
                    f"{self.path}: give the folder of box files (or a Task1 .zip), not a single file"
                )
            self._task1 = read_task1_boxes(self.path)
            return
        texts = sorted(p for p in self.path.glob("*.txt") if p.is_file())
        task1 = [p for p in texts if p.name.startswith(TASK1_PREFIX)]
        if task1 and len(task1) != len(texts):
            other = next(p for p in texts if not p.name.startswith(TASK1_PREFIX))
            raise BoxFileError(
                f"{self.path}: holds both Task1 submission files ({task1[0].name}) and per-image box files "
                f"({other.name}); keep one layout per folder"
            )
        if task1:
            self._task1 = read_task1_boxes(self.path)
        elif texts:
            self._files = {p.stem: p for p in texts}
        else:
            raise BoxFileError(f"{self.path}: no box file (<image>.txt or {TASK1_PREFIX}<class>.txt) found")

    @property
    def layout(self) -> str:
        """``"task1"`` or ``"dota"`` (per-image files)."""
        return "task1" if self._task1 is not None else "dota"

    def names(self) -> list[str]:
        """The image names (file stems, or Task1 image ids) that have boxes, sorted."""
        return sorted(self._task1 if self._task1 is not None else self._files)

    def get(self, name: str) -> list[Box] | None:
        """The boxes listed under ``name`` (a file stem or a Task1 image id), or None if not listed.

        Raises:
            BoxFileError: the per-image file is malformed.
        """
        if self._task1 is not None:
            return self._task1.get(name)
        file = self._files.get(name)
        if file is None:
            return None
        if self._last is None or self._last[0] != name:
            self._last = (name, read_dota_boxes(file))
        return list(self._last[1])

    def boxes_for_image(
        self,
        image_id: str,
        source: str,
        window: tuple[int, int, int, int],
        size: tuple[int, int],
    ) -> ImageBoxes:
        """The boxes of one manifest image, by the matching rule of the module docstring.

        Arguments:
            image_id: the manifest's ``image_id``.
            source: the manifest's ``source`` (may be empty).
            window: ``(window_x, window_y, window_w, window_h)`` from the manifest.
            size: ``(height, width)`` of the image.

        Returns:
            The boxes in the image's pixel coordinates, with where they came from.

        Raises:
            BoxFileError: per-image layout and no file for the image; a window larger than the image (a
                resampled window, which this mapping does not support); a malformed box file.
        """
        height, width = size
        x, y, window_w, window_h = window
        own = self.get(image_id)
        if own is not None:
            return ImageBoxes(boxes_in_window(own, 0, 0, width, height), image_id, "image", len(own))
        stem = PurePosixPath(source.replace("\\", "/")).stem if source else ""
        listed = self.get(stem) if stem else None
        if listed is not None:
            if window_w > width or window_h > height:
                raise BoxFileError(
                    f"image {image_id}: its window ({window_w}x{window_h} source pixels) is larger than the "
                    f"image ({width}x{height}); source boxes map to resampled windows only through a "
                    f"per-image file {image_id}.txt in image coordinates"
                )
            return ImageBoxes(boxes_in_window(listed, x, y, window_w, window_h), stem, "source", len(listed))
        if self._task1 is not None:
            return ImageBoxes([], "", "none", 0)
        tried = f"{image_id}.txt" + (f" or {stem}.txt" if stem and stem != image_id else "")
        raise BoxFileError(
            f"{self.path}: no box file for image {image_id} (looked for {tried}); if the image has no "
            "objects, create an empty file for it"
        )


__all__ = [
    "HEADER_KEYS",
    "TASK1_PREFIX",
    "Box",
    "BoxFileError",
    "BoxSource",
    "ImageBoxes",
    "boxes_in_window",
    "format_dota_line",
    "parse_dota_line",
    "parse_dota_text",
    "read_dota_boxes",
    "read_task1_boxes",
    "task1_to_dota",
    "write_dota_boxes",
]
