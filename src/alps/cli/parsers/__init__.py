"""The ``alps`` sub-commands' parsers, by stage group; light to import (``alps --help`` imports them all).

Each ``add_*`` function adds one command's parser and returns it; the parser names the function that runs
the command (``alps.cli.commands``), imported only when that command runs.
"""

from __future__ import annotations

import argparse
from typing import Any


def command(sub: Any, name: str, module: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A new sub-command ``name`` run by ``alps.cli.commands.<module>.cmd_<name>`` (``-`` read as ``_``)."""
    parser: argparse.ArgumentParser = sub.add_parser(name, **kwargs)
    parser.set_defaults(run=f"{module}:cmd_{name.replace('-', '_')}")
    return parser
