"""The limiter's knobs. `load_settings` builds them once from the RATE_LIMIT_* settings; a field
read from a setting names it (`from_setting`) and takes that setting's one default, so a config
built without settings (tests, the simulator) has the documented values."""

from __future__ import annotations

from dataclasses import dataclass

from function_app.core.fields import from_setting


@dataclass(frozen=True)
class LimiterConfig:
    """Each field read from a setting: see that setting's help in settings/specs.py."""

    enabled: bool = from_setting("rate_limit_enabled", True)
    storage_timeout_s: float = from_setting("rate_limit_storage_timeout_s", 0.5)
    # "open" (local safe capacity) or "closed" (deny, 503)
    failure_mode: str = from_setting("rate_limit_failure_mode", "open")
    expected_instances: int = from_setting("rate_limit_expected_instances", 4)
    sync: str = from_setting("rate_limit_sync", "lease")  # "lease" or "tally"
    tally_period_s: float = from_setting("rate_limit_tally_period_s", 3.0)
    lease_s: float = from_setting("rate_limit_lease_s", 0.25)
    lease_ttl_s: float = from_setting("rate_limit_lease_ttl_s", 4.0)
    exact_below_rps: float = from_setting("rate_limit_exact_below_rps", 1.0)
    conflict_retries: int = from_setting("rate_limit_conflict_retries", 3)
    sweep_interval_s: float = from_setting("rate_limit_sweep_interval_s", 300.0)
    sweep_idle_s: float = from_setting("rate_limit_sweep_idle_s", 600.0)
    overrides_refresh_s: float = from_setting("rate_limit_overrides_refresh_s", 30.0)
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
        """A block (ratelimit.lease.block) is leased when the observed rate would spend it
        within this long: three quarters of a lease's life, so it is spent, not forfeited."""
        return 0.75 * self.lease_ttl_s

    @property
    def demand_tau_s(self) -> float:
        """Time constant of the observed-rate estimate that sizes leases."""
        return max(0.1, self.lease_s)
