"""``python -m alps.cli``: the ``alps`` command."""

from alps.cli import run

run()
