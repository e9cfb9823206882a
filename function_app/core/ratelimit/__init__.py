"""Pure rate-limit logic: token bucket, lease maths, key encoding, scope merging, interfaces."""

from .bucket import BucketState, Verdict, decide
from .model import Decision, Limit, ScopedLimit
from .scopes import LimitDefaults, OverrideIndex, effective_limits
from .store import (
    Override,
    OverrideStore,
    RateLimitStore,
    RowKey,
    StoreConflict,
    StoredRow,
    StoreUnavailable,
)

__all__ = [
    "BucketState",
    "Decision",
    "Limit",
    "LimitDefaults",
    "Override",
    "OverrideIndex",
    "OverrideStore",
    "RateLimitStore",
    "RowKey",
    "ScopedLimit",
    "StoreConflict",
    "StoreUnavailable",
    "StoredRow",
    "Verdict",
    "decide",
    "effective_limits",
]
