"""The gateway's settings: the specs (specs.py: one `Settings` field per setting, with its name,
default, parser and help), the value parsers (parsers.py), and `load_settings` (load.py)."""

from .load import SettingsError, load_settings
from .specs import SPECS, Settings

__all__ = ["SPECS", "Settings", "SettingsError", "load_settings"]
