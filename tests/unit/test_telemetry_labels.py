"""The request log's client hashes, kept between requests, are the keyed hash every time."""

from __future__ import annotations

import hashlib

from function_app.telemetry import labels
from function_app.telemetry.labels import NONE, OTHER, ClientLabels


def _hash(key: bytes, client: str) -> str:
    return hashlib.blake2b(client.encode(), key=key, digest_size=8).hexdigest()


def test_kept_hashes_are_the_keyed_hash_past_the_table_size_and_the_label_cap(monkeypatch):
    monkeypatch.setattr(labels, "HASHES_KEPT", 8)
    clients = ClientLabels("k", cap=3)
    ids = [f"key:{i}" for i in range(20)]
    for round_ in range(3):
        for client in ids:
            assert clients.hashed(client) == _hash(b"k", client), (round_, client)
            if round_ == 1:
                label = clients.label(client)
                assert label in (_hash(b"k", client), OTHER)
    assert len(clients._hashes) <= 8
    assert [clients.label(c) for c in ids[:4]] == [_hash(b"k", c) for c in ids[:3]] + [OTHER]
    assert clients.hashed("") == clients.hashed(None) == NONE


def test_a_long_key_is_reduced_before_hashing():
    long_key = "x" * 100
    reduced = hashlib.sha256(long_key.encode()).digest()
    assert ClientLabels(long_key, cap=1).hashed("ip:1.2.3.4") == _hash(reduced, "ip:1.2.3.4")
