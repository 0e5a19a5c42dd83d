"""Atomic writes of files and whole folders: a reader (or a resumed run) never sees a half-written output.

The one place that builds beside a target and renames it into place: ``atomic_output`` for a file,
``atomic_directory`` for a folder (dataset converters, painted shards, PL datasets). A build folder that a
killed process (SIGKILL, a lost node) left behind is swept by the next build of the same target
(``sweep_stale_builds``): only folders of our exact name pattern, holding our owner marker, whose process is
gone from this host.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

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


BUILD_OWNER = f".build-owner{TEMP_MARKER}"
"""The marker inside a build folder: who builds it (``{"pid", "host", "start"}``). Its name is a temporary
file's, so no data glob matches it; ``replace_directory`` removes it before the rename into place."""


def _build_name_pattern(target: Path) -> re.Pattern[str]:
    """``.<name>.tmp-<pid>-<8 hex>``: exactly the names ``building_sibling`` gives."""
    return re.compile(rf"\.{re.escape(target.name)}\.tmp-([1-9][0-9]*)-[0-9a-f]{{8}}")


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` from field 3 (state) on, or None where it cannot be read.

    The command name (field 2) may hold spaces and parentheses, so the fields are counted after its last
    ")".
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _process_start(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (field 22, Linux ``/proc``), or None where unreadable."""
    fields = _proc_stat(pid)
    return None if fields is None else fields[19]


def _process_alive(pid: int, start: str | None) -> bool:
    """Whether ``pid`` is a running process of this host, the same one that started at ``start``.

    A PID can be reused: with the start time recorded, another process under that PID counts as gone. A
    zombie (killed, not yet reaped) will never finish its build either. Unsure means alive.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    fields = _proc_stat(pid)
    if fields is None:
        return True
    if fields[0] in ("Z", "X"):
        return False
    return start is None or fields[19] == start


def _stale_owner(folder: Path, pid: int) -> bool:
    """Whether ``folder`` holds our owner marker, for ``pid`` on this host, and that process is gone."""
    marker = folder / BUILD_OWNER
    if marker.is_symlink() or not marker.is_file():
        return False
    try:
        owner = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(owner, dict) or owner.get("pid") != pid or owner.get("host") != socket.gethostname():
        return False  # not ours, or another host's process, whose liveness this host cannot see
    start = owner.get("start")
    return not _process_alive(pid, start if isinstance(start, str) else None)


def sweep_stale_builds(target: Path) -> list[Path]:
    """Remove the build folders of ``target`` that killed processes left behind; returns them.

    Only a sibling named exactly as ``building_sibling`` names it for ``target``, a real folder (not a
    link) holding the owner marker written there, with that name's PID, on this host, whose process is no
    longer running. Anything else (another target's build, a live process's, another host's, a look-alike
    without our marker) is left alone. A folder that cannot be removed is logged, not raised: the new
    build does not need it gone.
    """
    pattern = _build_name_pattern(target)
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return []
    swept = []
    for folder in siblings:
        match = pattern.fullmatch(folder.name)
        if match is None or folder.is_symlink() or not folder.is_dir():
            continue
        if not _stale_owner(folder, int(match.group(1))):
            continue
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:  # a concurrent build swept it first
            continue
        except OSError as exc:
            log.warning("could not remove the stale build folder %s: %s", folder, exc)
            continue
        log.info("removed %s, the build folder of a process that no longer runs", folder)
        swept.append(folder)
    return swept


def building_sibling(target: Path) -> Path:
    """A new, empty, hidden folder beside ``target``, unique to this call.

    Same filesystem as ``target`` (so the final rename is atomic) and never shared with a concurrent run.
    ``mkdir`` (not ``mkdtemp``) so that the folder gets the usual umask-derived permissions. Build folders
    of ``target`` left by killed processes are swept first (``sweep_stale_builds``); the new one holds the
    owner marker ``BUILD_OWNER`` until ``replace_directory`` renames it into place.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_builds(target)
    pid = os.getpid()
    built = target.with_name(f".{target.name}.tmp-{pid}-{secrets.token_hex(4)}")
    built.mkdir()
    _mark_owner(built)
    return built


def _mark_owner(folder: Path) -> None:
    pid = os.getpid()
    owner = {"pid": pid, "host": socket.gethostname(), "start": _process_start(pid)}
    (folder / BUILD_OWNER).write_text(json.dumps(owner) + "\n", encoding="utf-8")


def remove_build(folder: Path) -> None:
    """Remove a build folder of ``building_sibling``, its owner marker last.

    Killed midway, what is left still carries the marker, so the next build of the same target sweeps it
    (``sweep_stale_builds``).
    """
    if folder.is_symlink() or not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.name == BUILD_OWNER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


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
    # The owner marker of building_sibling is not part of the output.
    (built / BUILD_OWNER).unlink(missing_ok=True)
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
        # `built` now holds the previous folder: marked as ours first, so that a kill while it is being
        # removed leaves something the next build sweeps.
        _mark_owner(built)
        remove_build(built)
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
    """Yield a hidden sibling of ``path`` to build in; on success it replaces ``path`` whole.

    The folder is empty but for the owner marker ``BUILD_OWNER`` (a temporary file's name), which lets a
    later build sweep it should this process be killed, and which is removed before the rename.

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
        remove_build(built)
        raise
