"""The error a bad setting raises, apart from the parsers so that importing the app (function
indexing, every cold start) does not load them; settings/load.py re-exports it."""


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""
