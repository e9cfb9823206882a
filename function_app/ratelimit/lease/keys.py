"""Where the limiter's shared rows live: one partition per (scope, key), one row per shard.

Keys are encoded with core.table_keys.encode_key (Table-safe and reversible); a partition key
too long for Table Storage is hashed instead.
"""

from __future__ import annotations

import hashlib

from function_app.core.table_keys import encode_key

_HASHED = "h."
_MAX_KEY = 512  # Table keys are capped at 1 KiB; longer ids are hashed (rate rows only)


def bucket_partition(scope: str, key: str) -> str:
    """PartitionKey of a shared bucket: one partition per (scope, key) spreads the load.

    Always contains ':' after the scope, so it never collides with `SWEEP_PARTITION`.
    """
    encoded = encode_key(f"{scope}:{key}")
    if len(encoded) > _MAX_KEY:
        digest = hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()
        return f"{_HASHED}{scope}:{digest}"
    return encoded


def shard_row(shard: int) -> str:
    return f"s{shard}"


SWEEP_PARTITION = "_sweep"
SWEEP_ROW = "lease"
