"""mmengine's config formatting, cached per process (``alps.train.config_format``)."""

from __future__ import annotations

from typing import Any

import pytest
from mmengine.config import Config
from mmengine.config import config as mm_config

from alps.train import config_format
from alps.train.configs import config_text


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """mmengine's ``FormatCode`` replaced by the unmemoised yapf call, counting what it formats."""
    from yapf.yapflib.yapf_api import FormatCode

    calls: list[str] = []

    def counting(source: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(source)
        return FormatCode(source, *args, **kwargs)

    monkeypatch.setattr(mm_config, "FormatCode", counting)
    return calls


def test_each_text_is_formatted_once(counted: list[str]) -> None:
    cfg = Config({"model": {"type": "EncoderDecoder", "channels": [1, 2, 3]}, "work_dir": "/tmp/a"})
    plain = cfg.pretty_text
    assert len(counted) == 1
    config_format.memoise_format_code()
    wrapper = mm_config.FormatCode
    config_format.memoise_format_code()  # idempotent: no cache in front of the cache
    assert mm_config.FormatCode is wrapper
    assert config_text(cfg) == cfg.pretty_text == plain  # the same text as without the cache
    assert len(counted) == 2  # formatted once more (the cache was empty), then read from it
    other = Config({"model": {"type": "EncoderDecoder", "channels": [1, 2, 4]}, "work_dir": "/tmp/a"})
    assert other.pretty_text != plain and len(counted) == 3


def test_the_cache_is_bounded(counted: list[str]) -> None:
    config_format.memoise_format_code()
    configs = [Config({"value": i}) for i in range(config_format.CACHED_TEXTS + 1)]
    texts = [cfg.pretty_text for cfg in configs]
    assert configs[-1].pretty_text == texts[-1]
    assert len(counted) == config_format.CACHED_TEXTS + 1
    assert configs[0].pretty_text == texts[0]  # formatted again: the least recently used text was dropped
    assert len(counted) == config_format.CACHED_TEXTS + 2
