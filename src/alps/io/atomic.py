"""Atomic file writes: a reader (or a resumed run) never sees a half-written output."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

TEMP_MARKER = ".alps-tmp"
"""Every temporary file ends with this (before an optional ``suffix``): no data glob (``*.png``,
``*.parquet``) of ours matches it, and a sweep can recognise it (``is_temp_name``)."""


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file name of ``atomic_output`` (``.<name>.<token>.alps-tmp[sfx]``)."""
    return name.startswith(".") and TEMP_MARKER in name


def _create_temp(final: Path, suffix: str) -> Path:
    """Create an empty, new temporary file beside ``final``, with the umask's permissions.

    ``tempfile.mkstemp`` would create it 0600 whatever the umask, and ``os.replace`` keeps that mode,
    so colleagues could not read the outputs; ``os.open`` with 0666 lets the umask decide, as for any file.
    """
    for _ in range(100):
        tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}{TEMP_MARKER}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {final}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic on POSIX; it is
    hidden and named ``.<name>.<token>.alps-tmp``, so that a file left by a killed process is never read
    as data. On any exception the temporary file is removed and an existing ``path`` is left untouched.
    The output gets the permissions the umask gives a new file.

    Arguments:
        path: the final output path; its parent directory is created.
        suffix: appended to the temporary name, for libraries that pick a format from the file name (most
            take an explicit format instead; prefer that).

    Returns:
        A context manager yielding the temporary path to write to.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(final, suffix or "")
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
