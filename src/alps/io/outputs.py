"""The one output rule: a command deletes or replaces only what it recorded as its own, and publishes whole.

Two shapes of output, one rule (a record of the files a publication put there, with their SHA-256; only
files recorded and unchanged are ever replaced or removed; everything else in the way stops the run, named):

- **a folder the command owns** (``output_folder``: ``alps paint``, ``gallery``, ``pl-dataset``,
  ``mosaic``, ``apply-class-map``, ``prepare``, ``predict``): OUT is absent, empty, or a previous output of
  the same command, recorded in ``OUT/.alps-output.json``; it must not be, contain or lie inside one of the
  command's inputs. The new output is built in a hidden sibling and swapped in with one atomic rename, so a
  kill at any point leaves the previous complete output or the new one (``alps.io.atomic``);
- **one file the command owns** (``output_file``: ``alps vectorize``): absent, or recorded in the hidden
  sidecar ``.<name>.alps-output.json`` beside it;
- **outputs in a folder the command shares with its user** (``OutputSet``, ``alps label``), below.

``alps label IMAGES OUT`` writes masks, features, the k-means model, labels, colour maps and a card into
``OUT``, a folder the user chose and may keep other files in. ``OutputSet`` makes that safe:

- **one run at a time**: a lock (``OUT/.<name>.lock``, ``fcntl.flock``); a second run on the same ``OUT`` is
  refused with a message instead of mixing its files with the first one's;
- **all or nothing**: the run writes into a build folder (``OUT/.<name>.build``); ``OUT`` changes only when
  the run succeeded, and then every output is swapped in at once (a failed rerun leaves the previous
  outputs as they were, a removed image does not leave its old label behind);
- **nothing we did not write is deleted**: a record (``OUT/.<name>.json``) lists every file the last
  publication put into ``OUT`` with its SHA-256. A rerun replaces or removes only recorded files whose
  content is unchanged; any other file where an output goes (a hand-made label in ``labels/``, a file of
  another tool, an edited output, outputs of a version without the record) stops the run, naming it;
- **kill -9 safe**: publication is a few renames, driven by a journal (``OUT/.<name>.publish.json``) that
  the next run (under the lock) finishes before anything else; leftovers of killed runs (the build folder,
  temporary files of ``alps.io.atomic``) are swept at start.

The record and the journal are files anyone who can write ``OUT`` can write: they are checked to name only
top-level entries of ``OUT`` and files inside them, and a recorded file is only replaced while its content
still has the recorded digest, so a forged record cannot make a run delete anything outside ``OUT`` or any
file whose content its forger did not already know.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from alps.io.atomic import (
    BUILD_OWNER,
    atomic_output,
    atomic_write_text,
    building_sibling,
    is_temp_name,
    remove_build,
    replace_directory,
)
from alps.io.digest import file_sha256

RECORD_FORMAT = "alps-output-set/1"
_SHOWN = 5  # problem paths named in one message


class OutputSetError(ValueError):
    """The run cannot write its outputs: another run holds the folder, or a file there is not ours."""


@dataclass(frozen=True)
class OutputRecord:
    """What one publication put into the folder.

    Attributes:
        entries: the top-level names it created (files and folders).
        files: every file under those entries (relative POSIX path) -> SHA-256 of its content.
    """

    entries: tuple[str, ...]
    files: dict[str, str]

    def to_json(self, writer: str) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "writer": writer, "entries": list(self.entries), "files": self.files}


def _check_entry(name: Any, where: Path) -> str:
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or name.startswith(".")
        or "/" in name
        or "\\" in name
    ):
        raise OutputSetError(f"{where}: {name!r} is not a top-level output name; the file is damaged")
    return name


def _check_file(rel: Any, entries: set[str], where: Path) -> str:
    parts = rel.split("/") if isinstance(rel, str) else []
    if not parts or parts[0] not in entries or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise OutputSetError(f"{where}: {rel!r} is not a file under a recorded output; the file is damaged")
    return rel


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputSetError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(value, dict):
        raise OutputSetError(f"{path}: expected a JSON object")
    return value


def _parse_record(value: Any, where: Path) -> OutputRecord:
    if not isinstance(value, dict) or value.get("format") != RECORD_FORMAT:
        raise OutputSetError(f"{where}: not a record of format {RECORD_FORMAT}")
    raw_entries, raw_files = value.get("entries"), value.get("files")
    if not isinstance(raw_entries, list) or not isinstance(raw_files, dict):
        raise OutputSetError(f"{where}: 'entries' must be a list and 'files' an object")
    entries = tuple(_check_entry(e, where) for e in raw_entries)
    allowed = set(entries)
    files: dict[str, str] = {}
    for rel, digest in raw_files.items():
        if not isinstance(digest, str) or len(digest) != 64:
            raise OutputSetError(f"{where}: {rel!r} has no SHA-256 digest")
        files[_check_file(rel, allowed, where)] = digest
    return OutputRecord(entries, files)


def _walk_files(root: Path, entry: str) -> list[tuple[str, Path]]:
    """Every non-directory under ``root / entry`` (itself, if it is a file) as (relative path, path)."""
    top = root / entry
    if top.is_symlink() or not top.is_dir():
        return [(entry, top)]
    found = []
    for folder, dirs, files in os.walk(top):  # does not follow symbolic links to folders
        base = Path(folder)
        rel_base = base.relative_to(root).as_posix()
        found += [(f"{rel_base}/{name}", base / name) for name in files]
        # A link to a folder is listed in `dirs` but not walked: report it as a file that is not ours.
        found += [(f"{rel_base}/{name}", base / name) for name in dirs if (base / name).is_symlink()]
    return sorted(found)


def _digests(root: Path, entries: Iterable[str]) -> dict[str, str]:
    return {rel: file_sha256(path) for entry in entries for rel, path in _walk_files(root, entry)}


def foreign_files(
    folder: Path, entries: Iterable[str], record: OutputRecord, writer: str, *, deep: bool = True
) -> list[str]:
    """Files under ``folder / entry`` (for each entry) that are not recorded and unchanged, as messages.

    Arguments:
        folder: the output folder.
        entries: the top-level names to look under (absent ones are skipped).
        record: what the last publication recorded.
        writer: the command, as messages name it.
        deep: compare contents with the recorded SHA-256 (else names and kinds only: the quick check
            before the work; the deep one runs before anything is replaced).
    """
    problems: list[str] = []
    recorded = set(record.entries)
    for entry in entries:
        if not os.path.lexists(folder / entry):
            continue
        for rel, path in _walk_files(folder, entry):
            if entry not in recorded or rel not in record.files:
                problems.append(f"{path} (not written by {writer})")
            elif path.is_symlink() or not path.is_file():
                problems.append(f"{path} (not a plain file)")
            elif deep and file_sha256(path) != record.files[rel]:
                problems.append(f"{path} (changed since {writer} wrote it)")
    return problems


def _refusal(problems: list[str], writer: str, folder: Path, record_name: str) -> str:
    shown = "; ".join(problems[:_SHOWN])
    more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    return (
        f"{writer} replaces only the files its previous run in {folder} recorded in {record_name}, and will "
        f"not replace or delete: {shown}{more}. Move these out of {folder} (or delete them), or choose "
        "another output folder"
    )


class OutputSet:
    """The outputs one command owns in a shared folder; use as a context manager (see the module doc).

    Example::

        with OutputSet(out, "alps-label", "alps label") as outputs:
            outputs.check(["labels", "masks.parquet"])  # fail fast, before the long work
            write_everything_into(outputs.build_dir)
            outputs.publish()

    Arguments:
        folder: the output folder (created if missing).
        name: names the hidden lock, record, journal and build folder (``.<name>.lock`` ...).
        writer: the command, as messages name it (``alps label``).
    """

    def __init__(self, folder: str | os.PathLike[str], name: str, writer: str) -> None:
        self.folder = Path(folder)
        self.name = name
        self.writer = writer
        self._lock_fd: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.folder / f".{self.name}.lock"

    @property
    def record_path(self) -> Path:
        return self.folder / f".{self.name}.json"

    @property
    def journal_path(self) -> Path:
        return self.folder / f".{self.name}.publish.json"

    @property
    def build_dir(self) -> Path:
        """Where the run writes its outputs, as they are to appear in ``folder``."""
        return self.folder / f".{self.name}.build"

    @property
    def _old_dir(self) -> Path:
        return self.folder / f".{self.name}.old"

    # ------------------------------------------------------------------------------------- lifetime

    def __enter__(self) -> OutputSet:
        if os.path.lexists(self.folder) and not self.folder.is_dir():
            raise OutputSetError(f"the output folder {self.folder} exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._finish_cut_publication()
            self._sweep()
            self.build_dir.mkdir()
        except BaseException:
            self._unlock()
            raise
        return self

    def repair(self) -> bool:
        """Finish a publication a killed run left half done (under the lock); True if there was one.

        What a run does first; a command calls it before it checks its arguments too, so that a rerun
        that fails on them still leaves OUT whole (or refuses, naming what is wrong).
        """
        if not os.path.lexists(self.journal_path):
            return False
        self._lock()
        try:
            self._finish_cut_publication()
        finally:
            self._unlock()
        return True

    def _finish_cut_publication(self) -> None:
        if os.path.lexists(self.journal_path):
            journal = self._read_journal()
            self._verify_journal(journal)
            self._roll_forward(journal)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # A publication cut short (the journal is there) is finished by the next run from the build
            # folder, as after a kill; anything else built is dropped.
            if self.build_dir.exists() and not self.journal_path.exists():
                shutil.rmtree(self.build_dir)
        finally:
            self._unlock()

    def _lock(self) -> None:
        # O_NOFOLLOW: a planted link must not make us truncate and write whatever file it points to.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.lock_path, flags, 0o666)
        except OSError as exc:
            raise OutputSetError(
                f"cannot open the lock file {self.lock_path} ({exc.strerror}); it must be a plain file "
                f"{self.writer} creates: remove whatever is there"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip()
            os.close(fd)
            holder = holder or "an unknown process"
            raise OutputSetError(
                f"{self.folder} is in use by another `{self.writer}` run ({holder} holds {self.lock_path}); "
                "wait for it to finish, or choose another output folder"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Who holds it, for the message above (the lock is the flock, not this text).
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            # The lock file stays: removing it would let a third run lock a new file while a second one
            # still waits on the old one.
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _sweep(self) -> None:
        """Remove what killed runs left: the build and retired folders, temporary files of our outputs."""
        for leftover in (self.build_dir, self._old_dir):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            elif os.path.lexists(leftover):
                leftover.unlink()
        record = self.read_record()
        ours = (self.record_path.name, self.journal_path.name, *record.entries)
        for path in self.folder.iterdir():
            # Only temporary files of our own names: another program may be writing its own beside them.
            if is_temp_name(path.name) and any(path.name.startswith(f".{name}.") for name in ours):
                path.unlink(missing_ok=True)
        for entry in record.entries:
            for _, path in _walk_files(self.folder, entry):
                if is_temp_name(path.name):
                    path.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------ checking

    def read_record(self) -> OutputRecord:
        """The record of the last publication (empty when there was none)."""
        if not os.path.lexists(self.record_path):
            return OutputRecord((), {})
        try:
            return _parse_record(_read_json(self.record_path), self.record_path)
        except OutputSetError as exc:
            raise OutputSetError(
                f"{exc}: {self.writer} cannot tell its earlier outputs in {self.folder} from other files; "
                f"move them out by hand and delete {self.record_path.name}, or choose another output folder"
            ) from exc

    def check(self, names: Iterable[str]) -> None:
        """Refuse now (not after hours of work) if publishing ``names`` would replace a file not ours.

        Arguments:
            names: the top-level outputs the run will publish.

        Raises:
            OutputSetError: which files are in the way, and what to do.
        """
        record = self.read_record()
        self._refuse_foreign(sorted(set(names) | set(record.entries)), record)

    def _refuse_foreign(self, entries: Iterable[str], record: OutputRecord) -> None:
        problems = foreign_files(self.folder, entries, record, self.writer)
        if problems:
            raise OutputSetError(_refusal(problems, self.writer, self.folder, self.record_path.name))

    # ---------------------------------------------------------------------------------- publishing

    def publish(self) -> OutputRecord:
        """Swap the build folder's outputs into the folder, replacing the previous run's, all at once.

        Returns:
            The new record.

        Raises:
            OutputSetError: a file in the way is not ours (nothing was changed then).
        """
        old = self.read_record()
        entries = tuple(sorted(p.name for p in self.build_dir.iterdir() if not is_temp_name(p.name)))
        for entry in entries:
            _check_entry(entry, self.build_dir)
        retire = sorted(e for e in set(entries) | set(old.entries) if os.path.lexists(self.folder / e))
        self._refuse_foreign(retire, old)
        record = OutputRecord(entries, _digests(self.build_dir, entries))
        journal = {"retire": retire, "publish": list(entries), "record": record.to_json(self.writer)}
        atomic_write_text(self.journal_path, json.dumps(journal, indent=1) + "\n")
        self._roll_forward(journal)
        return record

    def _read_journal(self) -> dict[str, Any]:
        journal = _read_json(self.journal_path)
        retire, publish = journal.get("retire"), journal.get("publish")
        if not isinstance(retire, list) or not isinstance(publish, list):
            raise OutputSetError(f"{self.journal_path}: damaged ('retire' and 'publish' must be lists)")
        for name in (*retire, *publish):
            _check_entry(name, self.journal_path)
        _parse_record(journal.get("record"), self.journal_path)
        return journal

    def _verify_journal(self, journal: dict[str, Any]) -> None:
        """Refuse a journal that would retire or overwrite anything its run did not record as its own.

        The journal is a file anyone who can write OUT can write: before it is carried out, every entry it
        retires that is still in OUT must be an entry of the current record, unchanged (content hashes),
        every entry it publishes must come from the build folder, replace nothing, and match the new
        record, and the new record must name exactly the published entries.
        """
        old = self.read_record()
        new = _parse_record(journal["record"], self.journal_path)
        problems: list[str] = []
        if set(new.entries) != set(journal["publish"]):
            problems.append(f"{self.journal_path} (its record does not list what it publishes)")
        for leftover in (self.build_dir, self._old_dir):
            if leftover.is_symlink() or (os.path.lexists(leftover) and not leftover.is_dir()):
                problems.append(f"{leftover} (not a folder {self.writer} made)")
        waiting = [n for n in journal["retire"] if not os.path.lexists(self._old_dir / n)]
        problems += foreign_files(self.folder, waiting, old, self.writer)
        unpublished = [n for n in journal["publish"] if os.path.lexists(self.build_dir / n)]
        for name in unpublished:
            if os.path.lexists(self.folder / name) and name not in waiting:
                problems.append(f"{self.folder / name} (would be overwritten)")
        problems += foreign_files(self.build_dir, unpublished, new, self.writer)
        if problems:
            raise OutputSetError(
                f"{self.journal_path.name} (an interrupted publication) cannot be finished: "
                + _refusal(problems, self.writer, self.folder, self.record_path.name)
                + f"; if you did not move files by hand, delete {self.journal_path.name} and "
                f"{self.build_dir.name}"
            )

    def _roll_forward(self, journal: dict[str, Any]) -> None:
        """Carry out a publication (again, after a kill: every step can be repeated)."""
        # Every old output goes aside before any new one comes in, so a repeated step never confuses
        # them: an entry in the retired folder was retired, an entry still in the build was not published.
        self._old_dir.mkdir(exist_ok=True)
        for name in journal["retire"]:
            if os.path.lexists(self.folder / name) and not os.path.lexists(self._old_dir / name):
                os.replace(self.folder / name, self._old_dir / name)
        for name in journal["publish"]:
            if os.path.lexists(self.build_dir / name):
                os.replace(self.build_dir / name, self.folder / name)
        atomic_write_text(self.record_path, json.dumps(journal["record"], indent=1, sort_keys=True) + "\n")
        self.journal_path.unlink()
        shutil.rmtree(self._old_dir)


# ------------------------------------------------------------------------------- folders and files owned

OWNED_RECORD = ".alps-output.json"
"""The record inside a folder a command owns (``output_folder``)."""
SNAKEMAKE_TIMESTAMP = ".snakemake_timestamp"
"""Snakemake's empty marker in a ``directory()`` output: the one foreign file an owned folder may hold
(Snakemake writes it again after the job)."""
_DISPOSABLE = (OWNED_RECORD, SNAKEMAKE_TIMESTAMP)


def _overlap(out: Path, source: Path) -> str | None:
    """How ``out`` overlaps the input ``source`` (a file or a folder), or None."""
    out_real, real = Path(os.path.realpath(out)), Path(os.path.realpath(source))
    if out_real == real:
        return "is"
    if real.is_relative_to(out_real):
        return "contains"
    if source.is_dir() and out_real.is_relative_to(real):
        return "lies inside"
    return None


def check_separate(
    out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]], writer: str
) -> None:
    """Refuse an output that is, contains, or lies inside (a folder) one of the command's inputs.

    Arguments:
        out: the output folder or file.
        inputs: the command's input files and folders (a manifest's folder, for a dataset).
        writer: the command, as the message names it.

    Raises:
        OutputSetError: naming the input and what to do.
    """
    for source in inputs:
        how = _overlap(Path(out), Path(source))
        if how is not None:
            raise OutputSetError(
                f"the output {out} {how} the input {source}; {writer} writes a new output and never "
                "replaces or mixes with its inputs: choose an output outside every input"
            )


def _owned_record(
    folder: Path, writer: str, replaces: Iterable[str] = ()
) -> tuple[OutputRecord | None, str | None]:
    """The record of ``folder`` if ``writer`` (or one of ``replaces``) wrote it, else None and why not."""
    path = folder / OWNED_RECORD
    if path.is_symlink() or not path.is_file():
        return None, f"there is no {OWNED_RECORD}: {writer} did not write this folder"
    try:
        value = _read_json(path)
        record = _parse_record(value, path)
    except OutputSetError as exc:
        return None, str(exc)
    if value.get("writer") not in (writer, *replaces):
        return None, f"{path} says it was written by {value.get('writer')!r}, not {writer}"
    return record, None


def folder_problems(
    folder: str | os.PathLike[str], writer: str, *, deep: bool = True, replaces: Iterable[str] = ()
) -> list[str]:
    """Why ``folder`` may not be replaced by a new output of ``writer`` (empty: it may).

    It may when it is absent, empty, or holds only files that ``writer``'s previous publication (or one of
    ``replaces``': commands whose output is the same kind of thing) recorded in ``OWNED_RECORD``, unchanged
    (``deep``: by content; a recorded file that is gone is fine: Snakemake deletes a job's declared output
    files before it reruns the job).
    """
    path = Path(folder)
    if not os.path.lexists(path):
        return []
    if path.is_symlink():
        return [f"{path} is a symbolic link; give the folder itself"]
    if not path.is_dir():
        return [f"{path} exists and is not a folder"]
    entries = sorted(p.name for p in path.iterdir() if p.name not in _DISPOSABLE)
    if not entries:
        return []
    record, why = _owned_record(path, writer, replaces)
    if record is None:
        shown = ", ".join(entries[:_SHOWN]) + (
            f" and {len(entries) - _SHOWN} more" if len(entries) > _SHOWN else ""
        )
        return [f"{path} holds {shown} and {why}"]
    return foreign_files(path, entries, record, writer, deep=deep)


def _refuse_folder(folder: Path, writer: str, *, deep: bool, replaces: Iterable[str] = ()) -> None:
    problems = folder_problems(folder, writer, deep=deep, replaces=replaces)
    if problems:
        raise OutputSetError(
            f"{writer} replaces an existing output folder only when it holds nothing but {writer}'s own "
            f"earlier output ({OWNED_RECORD}): "
            + "; ".join(problems[:_SHOWN])
            + (f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else "")
            + f". Move these out of {folder} (or delete them), or choose another output folder"
        )


def _record_build(built: Path, writer: str) -> OutputRecord:
    entries = tuple(sorted(p.name for p in built.iterdir() if p.name not in (BUILD_OWNER, OWNED_RECORD)))
    for entry in entries:
        _check_entry(entry, built)
    record = OutputRecord(entries, _digests(built, entries))
    (built / OWNED_RECORD).write_text(
        json.dumps(record.to_json(writer), indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    return record


def check_output_folder(
    out: str | os.PathLike[str],
    writer: str,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    replaces: Iterable[str] = (),
) -> None:
    """``output_folder``'s first check, for a command to fail before its long work, not after it."""
    final = Path(out).absolute()
    check_separate(final, inputs, writer)
    if Path.cwd().resolve().is_relative_to(final.resolve()):
        raise OutputSetError(
            f"the output folder {out} is (or holds) the current directory, which a new output would replace; "
            "give a new folder for the output"
        )
    _refuse_folder(final, writer, deep=False, replaces=replaces)


@contextlib.contextmanager
def output_folder(
    out: str | os.PathLike[str],
    writer: str,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    replaces: Iterable[str] = (),
    exchange: Callable[[Path, Path], bool] | None = None,
) -> Iterator[Path]:
    """The one rule for a command that writes a folder: yield an empty folder to build the output in.

    Before any work, ``out`` is checked (``check_separate`` against ``inputs``; ``folder_problems``
    without reading contents). On success the build gets its record (``OWNED_RECORD``: every file with
    its SHA-256), ``out`` is checked again by content, and the build is swapped in with one atomic rename
    (``alps.io.atomic.replace_directory``). On any error, KeyboardInterrupt included, the build is removed
    and ``out`` is as it was.

    Arguments:
        out: the output folder.
        writer: the command (``alps paint``): only its own earlier output is replaced.
        inputs: the command's input files and folders.
        replaces: other commands whose output this one may replace (the same kind of output: a PL
            dataset of ``alps pl-dataset`` or ``alps apply-class-map``, at one path of the workflow).
        exchange: the atomic swap (``alps.io.atomic.rename_exchange`` by default; tests replace it).

    Raises:
        OutputSetError: ``out`` overlaps an input, or holds something that is not ``writer``'s output.
    """
    final = Path(out).absolute()
    replaces = tuple(replaces)
    check_output_folder(final, writer, inputs=inputs, replaces=replaces)
    built = building_sibling(final)
    try:
        yield built
        _record_build(built, writer)
        _refuse_folder(final, writer, deep=True, replaces=replaces)
        replace_directory(
            built,
            final,
            may_replace=lambda folder: not folder_problems(folder, writer, deep=False, replaces=replaces),
            refusal=f"{final} changed while {writer} ran; it was left as it was",
            exchange=exchange,
        )
    except BaseException:
        remove_build(built)
        raise


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.alps-output.json")


def file_problem(path: str | os.PathLike[str], writer: str) -> str | None:
    """Why the file ``path`` may not be replaced by ``writer`` (None: absent, or its recorded output)."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_file():
        return f"{path} exists and is not a plain file"
    sidecar = _sidecar(path)
    try:
        value = _read_json(sidecar) if sidecar.is_file() and not sidecar.is_symlink() else None
    except OutputSetError:
        value = None
    if not value or value.get("writer") != writer or value.get("format") != RECORD_FORMAT:
        return f"{path} exists and was not written by {writer} (no {sidecar.name} beside it)"
    digests = value.get("sha256")
    if not isinstance(digests, list) or file_sha256(path) not in digests:
        return f"{path} changed since {writer} wrote it"
    return None


@contextlib.contextmanager
def output_file(
    path: str | os.PathLike[str], writer: str, *, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Iterator[Path]:
    """The one rule for a command that writes one file: yield a temporary path beside ``path``.

    ``path`` must be absent or ``writer``'s recorded output (the hidden sidecar ``.<name>.alps-output.json``
    holds its SHA-256), and must not be one of ``inputs``. The file appears whole (``atomic_output``); the
    sidecar accepts the old and the new digest while the file is swapped, so a kill leaves a file it
    recognises.
    """
    final = Path(path)
    check_separate(final, inputs, writer)
    problem = file_problem(final, writer)
    if problem is not None:
        raise OutputSetError(f"{writer} will not replace {problem}; move it away or choose another output")
    old = [file_sha256(final)] if os.path.lexists(final) else []
    # The temporary file keeps the suffix: GDAL and others pick the format (and warn) by it.
    with atomic_output(final, suffix=final.suffix) as tmp:
        yield tmp
        digest = file_sha256(tmp)
        record = {"format": RECORD_FORMAT, "writer": writer, "sha256": sorted({*old, digest})}
        atomic_write_text(_sidecar(final), json.dumps(record) + "\n")
    atomic_write_text(_sidecar(final), json.dumps({**record, "sha256": [digest]}) + "\n")
