"""Metric and log labels whose number stays bounded whatever the traffic.

Client ids (addresses, key hashes, principals) are hashed with a per-deployment key, so neither
an address nor a key can be read or guessed back from a label; at most `cap` distinct hashed
clients get a label of their own, later ones share OTHER.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

OTHER = "_other"
NONE = "-"


HASHES_KEPT = 4096


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class ClientLabels:
    """Hashed client ids: `hashed` for logs (every client), `label` for metrics (capped)."""

    def __init__(self, key: str, cap: int):
        # blake2b takes a key of at most 64 bytes: a longer setting is reduced first.
        raw = key.encode()
        self._key = raw if len(raw) <= 64 else hashlib.sha256(raw).digest()
        self._cap = cap
        self._labels: dict[str, str] = {}
        # The request log's hashes, kept for the next request of the same client (a hash is
        # three calls); client ids are the client's, so the table is emptied when full.
        # Telemetry.finish reads it too (`in` and a subscript, a call less): it is emptied in
        # place, never replaced, and holds nothing but hashed() results.
        self.hashes: dict[str, str] = {}
        self._hashes = self.hashes

    def hashed(self, client_id: str | None) -> str:
        if not client_id:
            return NONE
        hashes = self._hashes
        if client_id in hashes:  # `in` and a subscript: no method call, once a request
            return hashes[client_id]
        label = self._labels.get(client_id)
        if label is not None and label != OTHER:
            return label
        found = hashlib.blake2b(client_id.encode(), key=self._key, digest_size=8).hexdigest()
        if len(self._hashes) >= HASHES_KEPT:
            self._hashes.clear()
        self._hashes[client_id] = found
        return found

    def label(self, client_id: str | None) -> str:
        if not client_id:
            return NONE
        label = self._labels.get(client_id)
        if label is None:
            label = self.hashed(client_id) if len(self._labels) < self._cap else OTHER
            if label != OTHER:
                self._labels[client_id] = label
        return label


class BoundedNames:
    """Names from a known set (models, backends) pass; anything else is OTHER."""

    def __init__(self, known: Iterable[str]):
        self._known = frozenset(known)

    def __call__(self, name: str | None) -> str:
        if not name:
            return NONE
        return name if name in self._known else OTHER


class FirstNames:
    """The first `cap` distinct names pass (MCP tool names, which come from clients and
    servers); later ones are OTHER, so the label set stays bounded."""

    def __init__(self, cap: int):
        self._seen: set[str] = set()
        self._cap = cap

    def __call__(self, name: str) -> str:
        if name in self._seen:
            return name
        if len(self._seen) >= self._cap or len(name) > 128:
            return OTHER
        self._seen.add(name)
        return name
