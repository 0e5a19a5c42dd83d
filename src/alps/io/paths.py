"""Ids that become file names: every one is checked before it is joined to an output folder.

Image ids come from mask shards, feature shards, manifests and COCO files that anyone may have written; a
scene name comes from a manifest's ``source``. Joined to an output folder unchecked, an id such as
``/etc/x`` or ``../../x`` writes outside it. ``safe_name`` accepts exactly the ids that name one file in
one folder, and ``confined`` joins them: the one place where an id becomes a path.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_NAME_BYTES = 200
"""The longest id (UTF-8 bytes): file systems allow 255 per name, and outputs add suffixes."""


class UnsafeNameError(ValueError):
    """An id cannot be a file name; the message names where it came from."""


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be one file name, or None when it can.

    A name is a non-empty string of at most ``MAX_NAME_BYTES`` UTF-8 bytes without ``/``, ``\\``, NUL or
    control characters, not ``.`` or ``..``, and not starting with ``.`` (hidden names are the
    temporary files of ``alps.io.atomic``, never data).
    """
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name:
        return "is empty"
    if name.startswith("."):
        return "starts with '.' (hidden and temporary files start so)"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode"
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes long (at most {MAX_NAME_BYTES})"
    return None


def safe_name(name: object, source: object, what: str = "id") -> str:
    """``name`` if it can name one file in one folder (``name_problem``), else ``UnsafeNameError``.

    Arguments:
        name: the id.
        source: the file it was read from, as the message names it.
        what: what the id is (``image id``, ``scene name``...).
    """
    problem = name_problem(name)
    if problem is not None:
        raise UnsafeNameError(f"{source}: {what} {name!r} {problem}; it cannot name an output file")
    return name  # type: ignore[return-value]


def confined(root: str | os.PathLike[str], *names: str, source: object = "input") -> Path:
    """``root / names[0] / names[1] ...``, each name checked with ``safe_name``: a path inside ``root``.

    Arguments:
        root: the output folder (or a folder inside it).
        names: the path's parts below ``root``; each one file or folder name (ids with their suffix).
        source: where the names came from, for the message.

    Raises:
        UnsafeNameError: a name that is empty, hidden, ``..``, holds a separator, or is too long.
    """
    path = Path(root)
    for name in names:
        path = path / safe_name(name, source, "name")
    return path
