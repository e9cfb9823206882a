"""The errors every conditional-write store raises (rate-limit rows, routing breakers and probes).

Adapters translate their foreign errors into these at the boundary, and nothing else escapes:
`StoreConflict` (someone else changed or created the row: re-read and retry) and
`StoreUnavailable` (storage is down, slow or refused: back off), whose subclass `StoreRefused`
marks a misconfiguration.
"""

from __future__ import annotations

from .redact import redact_urls


class StoreError(Exception):
    """Base of the errors a store may raise."""


class StoreConflict(StoreError):
    """The row changed since it was read (HTTP 412), already exists (409) or has gone."""


class StoreUnavailable(StoreError):
    """Storage failed, timed out or refused the request. The message is logged: any URL in it
    (a storage SDK's text may hold one, with a SAS query) is cut to its display form."""

    def __init__(self, message: str = ""):
        super().__init__(redact_urls(message))


class StoreRefused(StoreUnavailable):
    """Storage answered but refused us: credentials or permissions (401/403) or a missing table.

    A misconfiguration rather than an outage: handled like StoreUnavailable (failure mode,
    back-off, retries) but reported loudly. The message names the cause, never a secret.
    """
