"""The output folder of ``alps label``, as far as it is needed before any model is loaded.

``alps label`` shares its output folder with its user (``alps.io.outputs.OutputSet``). A publication that
a killed run left half done is finished (or refused, when its journal names files the run did not own)
before the command checks anything else, so that a rerun that fails on its arguments still leaves the
folder whole. Kept free of heavy imports: the CLI calls it before torch is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from alps.io.outputs import OutputSet

LABEL_OUTPUT_SET = "alps-label"
"""Names ``alps label``'s lock, record and build folder in OUT (``alps.io.outputs``)."""
LABEL_WRITER = "alps label"


def label_output_set(out_dir: str | os.PathLike[str]) -> OutputSet:
    """The ``OutputSet`` of an ``alps label`` output folder."""
    return OutputSet(out_dir, LABEL_OUTPUT_SET, LABEL_WRITER)


def repair_label_output(out_dir: str | os.PathLike[str]) -> bool:
    """Finish a publication of ``alps label`` into ``out_dir`` that a killed run left half done.

    Returns:
        Whether there was one.

    Raises:
        OutputSetError: its journal would retire or overwrite files the run did not record as its own.
    """
    if not Path(out_dir).is_dir():
        return False
    return label_output_set(out_dir).repair()
