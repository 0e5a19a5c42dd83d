"""Values that several stages share, in one place; this module imports nothing of the package's.

The configuration schema (``alps/schemas/config.schema.yaml``), the study plan, the stages and the CLI take
these from here, so that a default is defined once (``tests/test_config_defaults.py`` checks the schema).
"""

from __future__ import annotations

AREA_THRESHOLD = 0.3
"""The paper's filtering gate (masks covering more than this fraction of the image are not clustered):
the default of ``labeling.area_threshold`` in the schema and of the ``--area-threshold`` options."""

INIT_MODES: tuple[str, ...] = ("none", "overall", "backbone", "head")
"""How a training run is initialised from a pre-training (the paper's sub-models; ``none``: from scratch):
the ``--init`` choices of ``alps pretrain`` / ``alps finetune`` and what ``alps.train.surgery`` loads."""

SHARD_SIZE = 64
"""Images per shard of the labeling jobs: the default of ``labeling.shard_size`` and of ``--shard-size``."""
