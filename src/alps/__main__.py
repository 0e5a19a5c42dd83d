"""``python -m alps``: the ``alps`` command."""

from alps.cli import run

run()
