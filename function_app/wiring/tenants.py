"""Wiring of gateway API keys (GATEWAY_AUTH): the key store, the cache, the auth stage, the
usage hand-over loop, and the wrappers (tenants/limits.py) that narrow the limits, budgets and
models of a request by the grant its key put on the request context.

With GATEWAY_AUTH=none there is no stage and no grant on any request, so the wrappers answer as
what they wrap and the gateway is exactly what it was without tenants.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from function_app.ratelimit.engine import LimiterEngine
from function_app.ratelimit.limits import ScopedLimit
from function_app.ratelimit.tokens import TokenLimits

from ..adapters.keystore_memory import MemoryKeyStore
from ..core.clock import Clock
from ..core.identity import ClientIdentity
from ..core.pipeline import Stage
from ..core.tasks import stop
from ..http.messages import GatewayRequest
from ..openai.bill import TokenLimiter
from ..routing.model_routes import ModelTable
from ..settings.specs import Settings
from ..stages.tenant_auth import authorize_operator, tenant_auth_stage
from ..tenants.access import TenantIdentity
from ..tenants.cache import KeyCache
from ..tenants.limits import BudgetLimiter, KeyLimitsFor, KeyModels, KeyTokenLimits
from ..tenants.spend import Spender
from ..tenants.store import KeyStore, KeyStoreUnavailable
from ..tenants.usage import UsageRecorder

log = logging.getLogger(__name__)


class Tenancy:
    def __init__(self, settings: Settings, clock: Clock, store: KeyStore | None):
        self.enabled = settings.gateway_auth != "none" and store is not None
        self._settings, self._clock, self.store = settings, clock, store
        self.recorder = UsageRecorder(settings.gateway_usage_flush_s)
        self.cache = KeyCache(store, clock, ttl_s=settings.gateway_key_cache_ttl_s,
                              lookups_per_s=settings.gateway_key_lookups_per_s) \
            if store is not None else None
        self._task: asyncio.Task | None = None

    def stages(self) -> list[Stage]:
        if not self.enabled:
            return []
        return [tenant_auth_stage(self._settings.gateway_auth, self.cache, self.recorder,
                                  self._clock, self._ensure_flushing)]

    async def authorize_operator(self, request: GatewayRequest) -> None:
        """Raise 401/403 unless `request` may read the operator endpoints: anyone holding the
        function key with GATEWAY_AUTH=none, an operator key otherwise (optional included:
        leaving one's tenant key out must not open other tenants' usage)."""
        if self.enabled:
            await authorize_operator(self.cache, self._clock, request)

    def identity(self, inner: ClientIdentity) -> ClientIdentity | TenantIdentity:
        return TenantIdentity(inner) if self.enabled else inner

    def limits_for(self, inner: Callable[[str | None, str | None], list[ScopedLimit]]
                   ) -> KeyLimitsFor:
        return KeyLimitsFor(inner)

    def token_limits(self, inner: TokenLimits) -> KeyTokenLimits:
        return KeyTokenLimits(inner, self._clock)

    def limiter(self, inner: LimiterEngine | None) -> TokenLimiter | None:
        """The limiter with budget handling (race retries, budget_exceeded): with keys, or
        when a model has a spend budget (MODEL_PRICES), which applies without keys too."""
        if inner is None or not (self.enabled or self._model_budgets()):
            return inner
        return BudgetLimiter(inner, self.recorder, self._clock)

    def _model_budgets(self) -> bool:
        return any(p.daily_budget or p.monthly_budget
                   for p in self._settings.model_prices.values())

    def spender(self) -> Spender:
        """Prices requests (MODEL_PRICES) and names their spend budgets: the model's always,
        the key's and tenant's when a key was used."""
        return Spender(self._settings.model_prices, self._clock,
                       self.recorder if self.enabled else None)

    def models(self, inner: ModelTable) -> KeyModels:
        return KeyModels(inner)

    def stats(self) -> dict[str, int]:
        return {**(self.cache.counters if self.cache else {}), "usage_dropped":
                self.recorder.dropped}

    async def flush(self, force: bool = False) -> None:
        """Hand the due usage counts to the store; a failed delta is kept for the next time."""
        for delta in self.recorder.due(self._clock.now(), force):
            try:
                await self.store.add_usage(delta)
            except KeyStoreUnavailable:
                self.recorder.restore(delta)
                log.warning("usage of key %s not stored yet; retrying later", delta.prefix)

    def _ensure_flushing(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        tick = min(5.0, self._settings.gateway_usage_flush_s / 2)
        while True:
            await self._clock.sleep(tick)
            with contextlib.suppress(Exception):
                await self.flush()

    async def close(self) -> None:
        await stop(self._task)
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.flush(force=True)
            await self.store.close()


def open_tenancy(settings: Settings, clock: Clock, store: KeyStore | None = None) -> Tenancy:
    """`store` replaces the Table store (tests); without storage settings keys live in memory
    (one instance, and only what tests put there)."""
    if settings.gateway_auth != "none" and store is None:
        from ..adapters.keystore_table import open_key_store  # the Table SDK only when used

        store = open_key_store(settings.rate_limit_storage_connection,
                               settings.table_storage_endpoint, table=settings.gateway_keys_table)
        if store is None:
            log.warning("GATEWAY_AUTH is on but no table storage is set: keys live in memory")
            store = MemoryKeyStore()
    return Tenancy(settings, clock, store)
