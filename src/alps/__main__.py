"""``python -m alps``: the ``alps`` command."""

import sys

from alps.cli import main

sys.exit(main())
