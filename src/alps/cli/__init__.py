"""The ``alps`` command: one sub-command per stage, plus ``label`` (all labeling stages in one process).

Every Snakemake rule calls one of these; each sub-command is a thin layer over a library function.
``alps.cli.parsers`` holds the sub-commands' parsers by stage group (light: ``alps --help`` imports them
all); ``alps.cli.commands`` what each runs, imported only when it runs; ``alps.cli.options`` what several
share (argument types, option groups, the help format).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from alps import __version__, limits
from alps.cli.options import finish
from alps.cli.parsers import datasets, geo, labeling, tables, training

log = logging.getLogger("alps")

INTERRUPTED = 128 + signal.SIGINT
"""What ``main`` returns after Ctrl-C: the status a shell reports for a command that SIGINT ended."""

COMMANDS: tuple[Callable[[Any], argparse.ArgumentParser], ...] = (
    datasets.add_prepare,
    labeling.add_masks,
    labeling.add_features,
    labeling.add_cluster,
    labeling.add_paint,
    training.add_pretrain,
    training.add_finetune,
    datasets.add_figures,
    datasets.add_pl_dataset,
    labeling.add_box_labels,
    datasets.add_evaluate_labels,
    tables.add_placeholders,
    labeling.add_label,
    tables.add_tables,
    labeling.add_gallery,
    labeling.add_apply_class_map,
    geo.add_vectorize,
    geo.add_mosaic,
    training.add_predict,
)
"""Every sub-command's parser, in the order ``alps --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``alps`` command."""
    parser = argparse.ArgumentParser(prog="alps", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"alps {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        finish(add(sub))
    return parser


def _command(run: str) -> Callable[[argparse.Namespace], None]:
    """The function a parser names (``"<module>:<function>"`` of ``alps.cli.commands``), imported now."""
    module, name = run.split(":")
    function: Callable[[argparse.Namespace], None] = getattr(
        importlib.import_module(f"alps.cli.commands.{module}"), name
    )
    return function


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``alps`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if os.environ.get("SLURM_JOB_ID"):
        # Logs tell which cluster job wrote them (the Slurm integration test reads this line).
        log.info("running as Slurm job %s on %s", os.environ["SLURM_JOB_ID"], socket.gethostname())
    try:
        limits.configure(args.max_pixels, args.max_tiles)
        _command(args.run)(args)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        # Expected failures (bad input, missing files) get one clear line, not a traceback.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"alps {args.command}: error: {_one_line(message)}", file=sys.stderr)
        if args.verbose:
            raise
        return 2
    except KeyboardInterrupt:
        # Outputs are published whole or not at all (alps.io.outputs): nothing half-written is left.
        print(
            f"alps {args.command}: interrupted; nothing half-written was published (a rerun finishes or "
            "discards what was begun)",
            file=sys.stderr,
        )
        if args.verbose:
            raise
        return INTERRUPTED
    except MemoryError:
        print(
            f"alps {args.command}: error: out of memory; lower --max-pixels (or {limits.PIXELS_ENV}) so that "
            "oversized inputs are refused up front, or run on a machine with more memory",
            file=sys.stderr,
        )
        if args.verbose:
            raise
        return 1
    except Exception as exc:
        # A failure nobody foresaw is still one line (and a traceback with -v): it is a bug to report.
        print(
            f"alps {args.command}: error: unexpected {type(exc).__name__}: {_one_line(exc)} (a bug: rerun "
            "with -v for the traceback and report it)",
            file=sys.stderr,
        )
        if args.verbose:
            raise
        return 1
    finally:
        _leave_process_group()
    return 0


def run() -> NoReturn:
    """The ``alps`` executable (and ``python -m alps``): ``main``'s status, and after Ctrl-C death by SIGINT.

    A program that handles Ctrl-C ends by SIGINT's default action once it has cleaned up, so that its caller
    knows it was interrupted: a shell loop over ``alps`` runs stops instead of going on to the next one (an
    exit status of 130 does not tell it). It also makes the outcome one thing: under ``python -m``, CPython
    ends a process whose Ctrl-C was handled by SIGINT anyway if the signal landed in code it ran from a string
    (``exec``, as dataclasses and named tuples are made during imports), so the status was a matter of timing.
    """
    status = main()
    if status == INTERRUPTED:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.raise_signal(signal.SIGINT)
    sys.exit(status)


def _one_line(message: object) -> str:
    """A message on one line, at most 2000 characters (an input's value may be long)."""
    text = " ".join(str(message).split())
    return text if len(text) <= 2000 else text[:1997] + "..."


def _leave_process_group() -> None:
    """Destroy the torch.distributed process group a training command joined (torchrun runs).

    A process that exits with its gloo/NCCL group alive can be aborted in the group's destructor
    ("terminate called without an active exception", SIGABRT) after its work is done, failing the job.
    Checked through ``sys.modules`` so that commands that never import torch do not import it here.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["COMMANDS", "INTERRUPTED", "build_parser", "main", "run"]
