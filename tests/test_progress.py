"""alps.progress: a bar on a terminal, lines with rate and ETA in a log (Snakemake's, Slurm's) otherwise."""

from __future__ import annotations

import logging

import pytest

from alps import progress as progress_module
from alps.progress import Progress, track


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fake monotonic clock the test advances by hand."""
    now = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    return now


def test_log_lines_carry_count_rate_and_eta(clock: list[float], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="alps.progress")
    with Progress(10, "restarts", "restart", interval=5.0, terminal=False) as progress:
        for _ in range(4):
            clock[0] += 2.0
            progress.update()
    lines = [r.getMessage() for r in caplog.records]
    # 2 s per restart: a line once 5 s passed (after the 3rd), then the last line at the end.
    assert lines[0] == "restarts: 3/10 restart (30%), 2 s/restart, ETA 14 s"
    assert lines[-1] == "restarts: 4/10 restart (40%), 2 s/restart, ETA 12 s"
    assert len(lines) == 2


def test_finished_work_says_how_long_it_took(clock: list[float], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="alps.progress")
    items = list(range(200))
    seen = []
    for item in track(items, "tiles", "tile", interval=1.0):
        clock[0] += 0.01
        seen.append(item)
    assert seen == items
    assert caplog.records[-1].getMessage() == "tiles: 200/200 tile (100%), 100 tile/s, took 2 s"


def test_short_work_stays_quiet(clock: list[float], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="alps.progress")
    for _ in track(range(5), "images", "img", interval=30.0):
        clock[0] += 1.0
    assert caplog.records == []


def test_unknown_total_reports_elapsed(clock: list[float]) -> None:
    progress = Progress(None, "blocks", "block", terminal=False)
    clock[0] += 90.0
    progress.update(3)
    assert progress.line() == "blocks: 3 block, 30 s/block, elapsed 1 min 30 s"
