"""The error a bad setting raises, apart from the parsers so that importing the app (function
indexing, every cold start) does not load them; settings/load.py re-exports it."""


from ..core.redact import redact_urls


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it (and shows no URL's userinfo:
    it is logged, and a backend URL may carry a password)."""

    def __init__(self, message: str):
        super().__init__(redact_urls(message))
