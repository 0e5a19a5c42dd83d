"""The experiment as a small DAG of jobs, run by a few worker processes (two single-threaded on 2 cores).

Jobs: ``prepare`` (the labeled set), ``masks/<backend>/<shard>`` (masks + features of a pool shard),
``pl/<backend>`` (k-means, painting, PL dataset), ``pretrain/<backend>/<seed>``, ``finetune/<arm>/<seed>``.
A job starts once the jobs it depends on are done; among the ready ones the one with the longest estimated
path to the end starts first (so the labeling and pre-training chain is not left waiting behind the
scratch fine-tunings, which fill the gaps). Every job skips work whose output exists, so a rerun after a
kill resumes; each job's wall and CPU time go to ``<jobs>/<job>.json`` (kept from the run that did the
work), its output (mmengine's lines) to ``<logs>/<job>.log``.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alps.effect.data import prepare_job
from alps.effect.labels import masks_job, pl_job, pool_items, shard_ranges
from alps.effect.layout import EffectLayout
from alps.effect.training import SCRATCH, finetune_job, pretrain_job
from alps.io.atomic import atomic_write_text
from alps.progress import Progress

log = logging.getLogger(__name__)

# Rough seconds per unit on one CPU core, only to order the ready jobs (never reported).
_PER_IMAGE = {"coco": 0.5, "felzenszwalb": 3.5, "slic": 3.5}
_PER_ITER = 0.8
_PER_EVAL = 20.0


class JobError(RuntimeError):
    """A job failed; the message names it and its log."""


@dataclass(frozen=True)
class Job:
    """One unit of work: ``func(*args)`` once ``deps`` are done; ``cost`` orders the ready jobs."""

    name: str
    func: Callable[..., dict[str, Any]]
    args: tuple[Any, ...]
    deps: tuple[str, ...]
    cost: float


def arms(layout: EffectLayout) -> list[str]:
    """The arms: no pre-training, then one per mask backend."""
    return [SCRATCH, *layout.settings.mask_backends]


def plan(layout: EffectLayout, labeled_raw: Path, pool_dir: Path) -> list[Job]:
    """Every job of the experiment, dependencies first."""
    settings = layout.settings
    n_pool = len(pool_items(pool_dir, settings))
    jobs = [Job("prepare", prepare_job, (layout, labeled_raw), (), 40.0)]
    for backend in settings.mask_backends:
        shards = shard_ranges(n_pool, settings)
        names = []
        for index, (start, stop) in enumerate(shards):
            names.append(f"masks/{backend}/{index:03d}")
            cost = (stop - start) * _PER_IMAGE[backend]
            jobs.append(Job(names[-1], masks_job, (layout, pool_dir, backend, index), (), cost))
        jobs.append(Job(f"pl/{backend}", pl_job, (layout, pool_dir, backend), tuple(names), 60.0))
        for seed in settings.seeds:
            cost = settings.pretrain_iters * _PER_ITER
            jobs.append(
                Job(
                    f"pretrain/{backend}/{seed}",
                    pretrain_job,
                    (layout, backend, seed),
                    (f"pl/{backend}",),
                    cost,
                )
            )
    finetune_cost = settings.finetune_iters * _PER_ITER + settings.curve_points * _PER_EVAL
    for arm in arms(layout):
        for seed in settings.seeds:
            deps = ("prepare",) if arm == SCRATCH else ("prepare", f"pretrain/{arm}/{seed}")
            jobs.append(Job(f"finetune/{arm}/{seed}", finetune_job, (layout, arm, seed), deps, finetune_cost))
    return jobs


def _priorities(jobs: Sequence[Job]) -> dict[str, float]:
    """Each job's cost plus the longest chain of costs that waits on it."""
    dependents: dict[str, list[str]] = {j.name: [] for j in jobs}
    for job in jobs:
        for dep in job.deps:
            dependents[dep].append(job.name)
    by_name = {j.name: j for j in jobs}
    memo: dict[str, float] = {}

    def path(name: str) -> float:
        if name not in memo:
            memo[name] = by_name[name].cost + max((path(d) for d in dependents[name]), default=0.0)
        return memo[name]

    return {j.name: path(j.name) for j in jobs}


def _ready(pending: dict[str, Job], done: set[str], priority: dict[str, float]) -> list[Job]:
    """The pending jobs whose dependencies are done, the longest path to the end first."""
    ready = (j for j in pending.values() if set(j.deps) <= done)
    return sorted(ready, key=lambda j: (-priority[j.name], j.name))


def replay(jobs: Sequence[Job], seconds: dict[str, float], workers: int) -> float:
    """The wall time ``run_jobs`` would take if each job took ``seconds[name]`` (missing: 0).

    Fed each job's CPU seconds, it estimates the wall time on ``workers`` otherwise idle cores of a run
    measured on a loaded machine (single-threaded jobs; the order is ``run_jobs``'s own).
    """
    priority = _priorities(jobs)
    pending = {j.name: j for j in jobs}
    done: set[str] = set()
    running: list[tuple[float, str]] = []
    now = 0.0
    while pending or running:
        for job in _ready(pending, done, priority)[: max(0, workers - len(running))]:
            del pending[job.name]
            heapq.heappush(running, (now + float(seconds.get(job.name, 0.0)), job.name))
        if not running:
            break
        now, name = heapq.heappop(running)
        done.add(name)
    return now


def _file_name(job: str) -> str:
    return job.replace("/", "__")


def _init_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch  # the worker's own torch: set before any model is built

    torch.set_num_threads(threads)
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("alps")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    # The pipeline logs one line per image ("<id>: N masks"); the progress lines say enough.
    logging.getLogger("alps.pipeline").setLevel(logging.WARNING)


def _execute(
    name: str, func: Callable[..., dict[str, Any]], args: tuple[Any, ...], log_path: Path
) -> dict[str, Any]:
    """Run one job with its stdout and stderr (mmengine's lines, warnings) in its log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    wall, cpu = time.monotonic(), time.process_time()
    with (
        open(log_path, "a", encoding="utf-8") as stream,
        contextlib.redirect_stdout(stream),
        contextlib.redirect_stderr(stream),
    ):
        result = func(*args)
    return {
        "job": name,
        "wall_s": round(time.monotonic() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "loadavg_end": list(os.getloadavg()),
        "result": result,
    }


def _record(layout: EffectLayout, record: dict[str, Any]) -> None:
    path = layout.jobs / f"{_file_name(record['job'])}.json"
    if record["result"].get("skipped") and path.is_file():
        return  # the work was done by an earlier run, whose timing is the one that counts
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")


def job_seed(name: str) -> int | None:
    """The seed of a ``pretrain/<backend>/<seed>`` or ``finetune/<arm>/<seed>`` job; None for the others."""
    stage, *rest = name.split("/")
    return int(rest[-1]) if stage in ("pretrain", "finetune") else None


def job_records(layout: EffectLayout) -> dict[str, dict[str, Any]]:
    """The timing record of every job of these settings done so far, by job name.

    Runs with other seeds share the folder; only the jobs of ``layout.settings.seeds`` are returned.
    """
    records = {}
    for path in sorted(layout.jobs.glob("*.json")):
        record = json.loads(path.read_text())
        if not (isinstance(record, dict) and "job" in record):
            continue
        seed = job_seed(record["job"])
        if seed is None or seed in layout.settings.seeds:
            records[record["job"]] = record
    return records


def run_jobs(
    jobs: Sequence[Job], layout: EffectLayout, workers: int, threads: int, *, processes: bool = True
) -> None:
    """Run ``jobs`` after their dependencies, ``workers`` at a time (in-process with ``processes=False``).

    Raises:
        JobError: a job failed (the jobs already running are finished first, so their work is kept).
    """
    priority = _priorities(jobs)
    pending = {j.name: j for j in jobs}
    done: set[str] = set()
    failed: list[str] = []
    running: dict[Future[dict[str, Any]], str] = {}
    context = multiprocessing.get_context("spawn")
    executor = (
        ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,))
        if processes
        else None
    )
    try:
        with Progress(len(jobs), "effect jobs", "job", terminal=False) as progress:
            while pending or running:
                ready = [] if failed else _ready(pending, done, priority)
                for job in ready[: max(0, workers - len(running))]:
                    del pending[job.name]
                    log.info("start %s", job.name)
                    log_path = layout.logs / f"{_file_name(job.name)}.log"
                    if executor is None:
                        future: Future[dict[str, Any]] = Future()
                        try:
                            future.set_result(_execute(job.name, job.func, job.args, log_path))
                        except Exception as exc:
                            future.set_exception(exc)
                    else:
                        future = executor.submit(_execute, job.name, job.func, job.args, log_path)
                    running[future] = job.name
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    try:
                        record = future.result()
                    except Exception as exc:
                        failed.append(
                            f"{name} ({type(exc).__name__}: {exc}; log: {layout.logs / _file_name(name)}.log)"
                        )
                        continue
                    _record(layout, record)
                    done.add(name)
                    progress.update()
                    log.info("done %s in %.0f s", name, record["wall_s"])
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    if failed:
        raise JobError("job failed: " + "; ".join(failed))
