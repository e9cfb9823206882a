"""Table Storage that refuses the gateway (wrong key) or lacks the table: StoreRefused, loudly.

Against the real Azurite: a refused credential is a misconfiguration, not an outage, so the
adapter says so (StoreRefused), the limiter logs it as an error, reports it on its health and
keeps retrying; a right key afterwards (or the table appearing) brings it back.
"""

from __future__ import annotations

import base64
import logging
import re
import uuid

import pytest

from function_app.adapters.limitstore_table import open_limit_storage
from function_app.core.clock import SystemClock
from function_app.core.store_errors import StoreRefused
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.store import RowKey

WRONG_KEY = base64.b64encode(b"not-the-key" * 6).decode()
pytestmark = pytest.mark.asyncio


def wrong_key(connection_string: str) -> str:
    return re.sub(r"AccountKey=[^;]+", f"AccountKey={WRONG_KEY}", connection_string)


async def test_a_wrong_key_is_refused_not_unavailable(azurite):
    storage = open_limit_storage(wrong_key(azurite.connection_string),
                                 buckets_table=f"rl{uuid.uuid4().hex[:10]}")
    try:
        with pytest.raises(StoreRefused, match="403"):
            await storage.buckets.read(RowKey("p", "r"))
        with pytest.raises(StoreRefused):
            await storage.overrides.read_all()
    finally:
        await storage.close()


async def test_the_limiter_logs_a_refusal_reports_it_and_keeps_failing_open(azurite, caplog):
    storage = open_limit_storage(wrong_key(azurite.connection_string),
                                 buckets_table=f"rl{uuid.uuid4().hex[:10]}")
    limiter = Limiter(storage.buckets, SystemClock(), LimiterConfig(failure_mode="open"), "gw",
                      background=False)
    scoped = [ScopedLimit("client", "c1", Limit(10.0, 20.0))]
    try:
        with caplog.at_level(logging.ERROR):
            assert not await limiter.probe()
            decision = await limiter.acquire(scoped)
        assert decision.allowed and decision.degraded
        assert limiter.storage_state["state"] == "refused"
        assert "403" in str(limiter.storage_state["detail"])
        assert WRONG_KEY not in str(limiter.storage_state)
        assert any("REFUSED" in r.getMessage() for r in caplog.records)
        assert limiter.counters["storage_refused"] >= 1
    finally:
        await limiter.close()
        await storage.close()
