"""The limiter's knobs, read once from the settings object (or anything with the same fields)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from function_app.core.ratelimit.scopes import LimitDefaults, defaults_from


@dataclass(frozen=True)
class LimiterConfig:
    """See the matching RATE_LIMIT_* settings in core/settings.py for each field's meaning."""

    enabled: bool = True
    storage_timeout_s: float = 0.5
    failure_mode: str = "open"  # "open" (local safe capacity) or "closed" (deny, 503)
    expected_instances: int = 4
    lease_s: float = 0.25
    lease_ttl_s: float = 4.0
    exact_below_rps: float = 1.0
    conflict_retries: int = 3
    sweep_interval_s: float = 300.0
    sweep_idle_s: float = 600.0
    overrides_refresh_s: float = 30.0
    # Derived or fixed; not settings.
    idle_return_s: float = 1.0  # give back a key's tokens after this long without use
    forget_s: float = 30.0  # drop an unused key's local state after this long
    backoff_min_s: float = 0.1
    # At most this long between storage attempts while it fails: storage that answers again is
    # noticed within about a second (maintenance probes it even without traffic).
    backoff_max_s: float = 1.0
    contention_retry_after_s: float = 1.0
    read_first_s: float = 5.0  # after a 412 on a row, read before writing for this long

    @property
    def tick_s(self) -> float:
        """Period of the maintenance pass (idle returns, expiry, sweep)."""
        return min(0.25, max(0.02, self.lease_s / 2))

    @property
    def hold_s(self) -> float:
        """A block (core.ratelimit.lease.block) is leased when the observed rate would spend it
        within this long: three quarters of a lease's life, so it is spent, not forfeited."""
        return 0.75 * self.lease_ttl_s

    @property
    def demand_tau_s(self) -> float:
        """Time constant of the observed-rate estimate that sizes leases."""
        return max(1.0, self.lease_s)


_SETTING_FOR = {
    "enabled": "rate_limit_enabled",
    "storage_timeout_s": "rate_limit_storage_timeout_s",
    "failure_mode": "rate_limit_failure_mode",
    "expected_instances": "rate_limit_expected_instances",
    "lease_s": "rate_limit_lease_s",
    "lease_ttl_s": "rate_limit_lease_ttl_s",
    "exact_below_rps": "rate_limit_exact_below_rps",
    "conflict_retries": "rate_limit_conflict_retries",
    "sweep_interval_s": "rate_limit_sweep_interval_s",
    "sweep_idle_s": "rate_limit_sweep_idle_s",
    "overrides_refresh_s": "rate_limit_overrides_refresh_s",
}


def config_from(settings: Any) -> LimiterConfig:
    """Build the config from a Settings-like object; missing attributes keep the defaults."""
    if isinstance(settings, LimiterConfig):
        return settings
    names = {f.name for f in fields(LimiterConfig)}
    values = {
        name: getattr(settings, attr)
        for name, attr in _SETTING_FOR.items()
        if name in names and hasattr(settings, attr)
    }
    return LimiterConfig(**values)


def limit_defaults_from(settings: Any) -> LimitDefaults:
    """GLOBAL_/CLIENT_ RPS and BURST (and the global shard count) from a Settings-like object."""
    return defaults_from(
        float(getattr(settings, "global_rps", 1000.0)),
        float(getattr(settings, "global_burst", 2000.0)),
        float(getattr(settings, "client_rps", 200.0)),
        float(getattr(settings, "client_burst", 400.0)),
        int(getattr(settings, "rate_limit_global_shards", 1)),
        frozenset(getattr(settings, "rate_limit_shadow_scopes", ())),
    )
