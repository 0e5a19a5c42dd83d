"""Atomic writes of files and whole folders: a reader (or a resumed run) never sees a half-written output.

The one place that builds beside a target and renames it into place: ``atomic_output`` for a file,
``atomic_directory`` for a folder (dataset converters, painted shards, PL datasets).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
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


# ------------------------------------------------------------------------------------- whole directories


def rename_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux's ``renameat2(RENAME_EXCHANGE)``; False if unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, exchange_flag = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange_flag) == 0


def building_sibling(target: Path) -> Path:
    """A new, empty, hidden folder beside ``target``, unique to this call.

    Same filesystem as ``target`` (so the final rename is atomic) and never shared with a concurrent run.
    ``mkdir`` (not ``mkdtemp``) so that the folder gets the usual umask-derived permissions.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    built = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    built.mkdir()
    return built


def replace_directory(
    built: Path,
    target: Path,
    *,
    may_replace: Callable[[Path], bool] | None = None,
    refusal: str = "",
    exchange: Callable[[Path, Path], bool] | None = None,
) -> None:
    """Rename the finished folder ``built`` onto ``target``, replacing what is there atomically.

    Arguments:
        built: the complete new folder, a sibling of ``target``.
        target: the final folder; absent, or something ``may_replace`` accepts.
        may_replace: decides whether an existing ``target`` may be replaced (``None``: always).
        refusal: the ``FileExistsError`` message when it may not.
        exchange: the atomic swap to try first (``rename_exchange`` by default; tests replace it).

    Raises:
        FileExistsError: ``target`` exists and ``may_replace`` refuses it.
    """
    swap = rename_exchange if exchange is None else exchange
    if not target.exists() and not target.is_symlink():
        try:
            os.rename(built, target)
            return
        except OSError:
            if not target.exists():
                raise
            # Someone created target meanwhile: fall through to the replace path and its checks.
    if may_replace is not None and not may_replace(target):
        raise FileExistsError(refusal or f"{target} exists; refusing to replace it")
    if swap(built, target):
        shutil.rmtree(built, ignore_errors=True)  # now holds the previous folder
        return
    # Fallback without an atomic swap (non-Linux, or a filesystem without RENAME_EXCHANGE): for a moment
    # target is absent, but it is never half-written, and a failure puts the old folder back.
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    os.rename(target, old)
    try:
        os.rename(built, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike[str],
    *,
    may_replace: Callable[[Path], bool] | None = None,
    refusal: str = "",
    exchange: Callable[[Path, Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield an empty hidden sibling of ``path`` to build in; on success it replaces ``path`` whole.

    A reader (or a Snakemake rerun after a kill) sees ``path`` absent, the previous complete folder or the
    new complete one, never a half-written one. On any exception, KeyboardInterrupt included, the partial
    build is removed and ``path`` is untouched. An existing ``path`` is checked with ``may_replace`` before
    any work (a mistaken folder fails fast) and again at the swap.

    Arguments:
        path: the folder to create or replace.
        may_replace: decides whether an existing ``path`` may be replaced (``None``: always).
        refusal: the ``FileExistsError`` message when it may not.
        exchange: see ``replace_directory``.

    Returns:
        A context manager yielding the build folder.
    """
    final = Path(path).absolute()
    if may_replace is not None and final.exists() and not may_replace(final):
        raise FileExistsError(refusal or f"{final} exists; refusing to replace it")
    built = building_sibling(final)
    try:
        yield built
        replace_directory(built, final, may_replace=may_replace, refusal=refusal, exchange=exchange)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
