"""Cards and other small JSON files a command reads (dataset, label and paint cards, class lists).

They travel with shared datasets and work directories, so any of them may be a JSON list, hold ``null``
where a number belongs, or be huge: each is read here, checked to be an object of bounded size, and its
numbers are checked where they are taken, so that a bad card is one line naming the file and the key.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

MAX_CARD_BYTES = 64 << 20
"""The largest card read (64 MiB; a label card lists every input scene, a paint card every image)."""


class CardError(ValueError):
    """A card that cannot be used; the message names the file and the key."""


def read_json_object(path: str | os.PathLike[str], what: str = "card") -> dict[str, Any]:
    """Read ``path`` as a JSON object.

    Raises:
        FileNotFoundError: no such file.
        CardError: too large, not JSON, or not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    size = path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise CardError(f"{path}: a {what} of {size:,} bytes, over the limit of {MAX_CARD_BYTES:,}")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CardError(f"{path}: not a JSON {what} ({exc})") from exc
    if not isinstance(value, dict):
        raise CardError(f"{path}: a {what} is a JSON object, this one is a {type(value).__name__}")
    return value


def card_int(card: dict[str, Any], key: str, path: object, low: int, high: int | None = None) -> int:
    """``card[key]`` as an integer in ``[low, high]``.

    Raises:
        CardError: missing, not an integer (``null``, a string, a float, a bool), or out of range.
    """
    value = card.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CardError(f"{path}: {key!r} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        raise CardError(f"{path}: {key!r} is {value}, expected {bound}")
    return value


def card_fraction(card: dict[str, Any], key: str, path: object) -> float:
    """``card[key]`` as a finite number in ``(0, 1]`` (an area threshold, a coverage)."""
    value = card.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CardError(f"{path}: {key!r} must be a finite number, got {value!r}")
    if not 0 < value <= 1:
        raise CardError(f"{path}: {key!r} is {value}, expected a fraction in (0, 1]")
    return float(value)


def card_strings(card: dict[str, Any], key: str, path: object) -> list[str] | None:
    """``card[key]`` as a list of strings, or None where the card has no such key."""
    if key not in card:
        return None
    value = card[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CardError(f"{path}: {key!r} must be a list of names")
    return value
