"""Config fields that settings/ fills: the component names the setting, settings/ reads it.

A component's config (the limiter's, the breakers', the cache's) marks each field taken from an
app setting with `from_setting(attr, default)`, where `attr` is the `Settings` field and `default`
the setting's parsed default, so a config built without settings (tests, the simulator) has the
documented values. `settings/configs.py` builds the config from the parsed settings through this
mark; tests/unit/test_settings.py checks that each default here is the setting's own. The arrow
goes settings -> component: no component imports settings/.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

SETTING = "setting"  # the field's metadata key naming its `Settings` attribute


def from_setting(attr: str, default: Any) -> Any:
    """A dataclass field read from `Settings.<attr>`; a dict default is copied per instance."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={SETTING: attr})
    return field(default=default, metadata={SETTING: attr})
