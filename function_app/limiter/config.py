"""The limiter's knobs. `load_settings` builds them once from the RATE_LIMIT_* settings
(settings/load.py); the defaults here serve tests and the simulator and equal the settings' own
(tests/unit/test_settings.py checks that)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from function_app.core.ratelimit.scopes import LimitDefaults


@dataclass(frozen=True)
class LimiterConfig:
    """See the matching RATE_LIMIT_* settings in settings/specs.py for each field's meaning."""

    enabled: bool = True
    storage_timeout_s: float = 0.5
    failure_mode: str = "open"  # "open" (local safe capacity) or "closed" (deny, 503)
    expected_instances: int = 4
    lease_s: float = 0.25
    lease_ttl_s: float = 2.0
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
    def demand_tau_s(self) -> float:
        """Time constant of the observed-rate estimate that sizes leases."""
        return max(0.1, self.lease_s)


def config_from(settings: Any) -> LimiterConfig:
    """The config itself, or the one `load_settings` built into a Settings (`settings.limiter`)."""
    return settings if isinstance(settings, LimiterConfig) else settings.limiter


def limit_defaults_from(settings: Any) -> LimitDefaults:
    """GLOBAL_/CLIENT_ RPS and BURST (and the global shard count) as `load_settings` parsed them."""
    return settings.limit_defaults
