"""One global request limit shared by three gateway processes on one Azurite, in lease mode
(test_ratelimit_instances.py) and tally mode (test_tally_instances.py): the settings, the run,
what holds in both modes, and Azurite stopping under light traffic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tests.support.azurite import Azurite
from tests.support.drive import Run, drive

from .conftest import start_gateway

RATE, BURST = 100.0, 100.0


def limit_env(backends, azurite: Azurite, **extra: str) -> dict[str, str]:
    """The seed routes with a global limit of RATE/BURST and no per-client one."""
    return {"PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
            "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string,
            "GLOBAL_RPS": str(RATE), "GLOBAL_BURST": str(BURST), "CLIENT_RPS": "0", **extra}


def limiter_stats(url: str) -> dict:
    return httpx.get(f"{url}/_gateway/stats", timeout=5).json()["limiter"]


def run_three(log_dir, name: str, env: dict[str, str], seconds: float) -> tuple[Run, list[dict]]:
    """Three gateways driven together for `seconds`; the run and each one's limiter counters."""
    gateways = [start_gateway(log_dir, f"{name}-{i}", env) for i in range(3)]
    try:
        run = asyncio.run(drive([f"{g.url}/infer/python" for g in gateways], seconds=seconds,
                                workers=24, check_headers=True))
        counters = [limiter_stats(g.url) for g in gateways]
    finally:
        for gateway in gateways:
            gateway.stop()
    return run, counters


def assert_shared_within(run: Run, counters: list[dict], bound: float) -> None:
    """Every answer a 200 or a 429 with its headers, no more admitted than `bound`, not starved
    either (tokens stranded in leases or shares cost a little, never most of the limit), and
    every instance took part."""
    assert set(run.statuses) == {200, 429}, run.statuses
    assert set(run.codes) == {"rate_limited"}
    assert run.missing_headers == 0
    assert run.admitted <= bound, (run.admitted, bound)
    assert run.admitted >= 0.8 * (RATE * run.elapsed), (run.admitted, run.elapsed)
    assert all(c["admitted"] > 0 for c in counters)


@dataclass
class Outage:
    before: Run  # light traffic with Azurite up
    during: Run  # the same while it is down
    down: dict  # the limiter's counters at the end of the outage


def light(url: list[str], seconds: float) -> Run:
    return asyncio.run(drive(url, seconds=seconds, workers=4, pause_s=0.02))


def serving(url: list[str], patience_s: float = 30.0) -> None:
    """Light traffic until the limiter decides on storage (only 200s and 429s): a fresh
    Azurite's first table calls can outlast a short storage timeout on a loaded machine, and
    a closed limiter then answers 503 before any outage. A condition, not a sleep."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        run = light(url, 0.5)
        if run.admitted > 0 and set(run.statuses) <= {200, 429}:
            return
    raise AssertionError(f"the gateway never served on storage within {patience_s} s")


def stop_azurite_under_traffic(gateway_url: str, azurite: Azurite, down_s: float) -> Outage:
    """Light traffic once the limiter serves on storage, then Azurite stopped for `down_s`
    of it, then started again."""
    url = [f"{gateway_url}/infer/python"]
    serving(url)
    before = light(url, 2)
    azurite.stop()
    during = light(url, down_s)
    down = limiter_stats(gateway_url)
    azurite.start()
    return Outage(before, during, down)


def assert_failure_mode(outage: Outage, mode: str, open_limit: float) -> None:
    """No 500 and no broken connection while storage is down: open admits at most `open_limit`
    locally, closed answers 503 storage_unavailable."""
    before, during, down = outage.before, outage.during, outage.down
    assert before.admitted > 0 and set(before.statuses) <= {200, 429}
    assert 500 not in during.statuses and "connection_error" not in during.statuses
    assert down["decisions_without_storage"] > 0
    if mode == "open":
        assert set(during.statuses) <= {200, 429}
        assert during.admitted <= open_limit, (during.admitted, open_limit, during.statuses)
        assert down["fallback_admitted"] > 0
    else:
        assert during.statuses[503] > 0
        assert set(during.codes) <= {"storage_unavailable", "rate_limited"}


def recovers(gateway_url: str, healed: Callable[[dict, dict], bool], drive_s: float,
             patience_s: float = 60.0) -> bool:
    """Drive light traffic until `healed(counters before a drive, counters after it)`.

    A condition, not a clock: on a loaded machine Azurite's restart alone can take seconds.
    """
    url = [f"{gateway_url}/infer/python"]
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        was = limiter_stats(gateway_url)
        asyncio.run(drive(url, seconds=drive_s, workers=2, pause_s=0.05))
        if healed(was, limiter_stats(gateway_url)):
            return True
    return False
