"""Configs of components (LimiterConfig, BreakerConfig, CacheConfig) whose fields are settings:
each such field names its setting, so its default is the setting's one default and
`load_settings` fills it from the parsed value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, fields
from typing import Any

from .specs import SPECS


def from_setting(attr: str) -> Any:
    """A field of a component's config (LimiterConfig, BreakerConfig, CacheConfig) read from
    `Settings.<attr>`: its default is that setting's parsed default, and `load_settings` fills
    it from the setting (`read_into`)."""
    spec = next(spec for spec in SPECS if spec.attr == attr)
    return field(default_factory=lambda: spec.parse(spec.default), metadata={"setting": attr})


def read_into[T](config: type[T], values: Mapping[str, Any], **others: Any) -> T:
    """`config` with every `from_setting` field taken from the parsed setting `values` and the
    rest from `others` (or their defaults)."""
    return config(**others, **{f.name: values[f.metadata["setting"]] for f in fields(config)
                               if "setting" in f.metadata})
