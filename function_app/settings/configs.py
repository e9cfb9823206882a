"""Configs of components (LimiterConfig, BreakerConfig, CacheConfig) built from the parsed settings.

A component marks each config field taken from a setting with `core.fields.from_setting`, naming
the `Settings` attribute and repeating its default; `read_into` fills those fields here, so the
arrow goes from settings/ to the component and never back. `default_disagreements` lists the
marked fields whose default is not the setting's own (a unit test keeps it empty).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any

from ..core.fields import SETTING
from .specs import SPECS


def read_into[T](config: type[T], values: Mapping[str, Any], **others: Any) -> T:
    """`config` with every `from_setting` field taken from the parsed setting `values` and the
    rest from `others` (or their defaults)."""
    return config(**others, **{f.name: values[f.metadata[SETTING]] for f in fields(config)
                               if SETTING in f.metadata})


def default_disagreements(config: type) -> list[str]:
    """The `config` fields marked with a setting whose default differs from that setting's
    parsed default (or that name no setting)."""
    parsed = {spec.attr: spec.parse(spec.default) for spec in SPECS}
    built = config()  # every marked field has a default
    return [f"{config.__name__}.{f.name}" for f in fields(config) if SETTING in f.metadata
            and parsed.get(f.metadata[SETTING], MISSING) != getattr(built, f.name)]
