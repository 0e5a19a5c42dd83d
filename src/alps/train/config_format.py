"""Format a config's Python text once per process, not each time mmengine asks for it.

mmengine's ``Config.pretty_text`` runs yapf over the whole config every time it is read, and one training
run reads it about ten times for the same config: the dumped config, the log, the visualizer, the runtime
info and every checkpoint's meta (besides ``alps.train.configs.config_text``). For the paper's models each
pass takes 0.5-0.7 s, several seconds per run, most of a short run's overhead. ``memoise_format_code``
puts a small cache in front of the ``FormatCode`` that mmengine's config module calls: the same source
and style give the same text, so only the first pass formats.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

CACHED_TEXTS = 16
"""Formatted configs kept (least recently used dropped first): a process trains a few configs at a time."""


def _memoised(format_code: Callable[..., Any]) -> Callable[..., Any]:
    cache: OrderedDict[tuple[str, str], Any] = OrderedDict()

    @functools.wraps(format_code)
    def cached(unformatted_source: str, *args: Any, **kwargs: Any) -> Any:
        key = (unformatted_source, repr((args, sorted(kwargs.items()))))
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        result = format_code(unformatted_source, *args, **kwargs)
        cache[key] = result
        if len(cache) > CACHED_TEXTS:
            cache.popitem(last=False)
        return result

    cached.alps_memoised = True  # type: ignore[attr-defined]
    return cached


def memoise_format_code() -> None:
    """Cache mmengine's config formatting for this process (idempotent)."""
    from mmengine.config import config as mm_config

    if not getattr(mm_config.FormatCode, "alps_memoised", False):
        mm_config.FormatCode = _memoised(mm_config.FormatCode)
