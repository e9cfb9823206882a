import asyncio

import httpx

from function_app.adapters.httpx_upstream import HttpxUpstream
from function_app.health import HealthReport


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def report_with(respond, clock, cache_s=1.0):
    calls = []

    async def handler(request):
        calls.append(request.url.host)
        await asyncio.sleep(0.01)
        return respond(request)

    upstream = HttpxUpstream(httpx.MockTransport(handler))
    health = HealthReport(service="gw", version="t", upstream=upstream, probe_timeout_s=0.5,
                          backends={"a": "http://a", "b": "http://b"}, cache_s=cache_s,
                          clock=clock)
    return health, calls


async def test_a_storm_of_checks_probes_each_backend_once():
    clock = FakeClock()
    health, calls = report_with(lambda r: httpx.Response(200), clock)
    reports = await asyncio.gather(*(health.report() for _ in range(50)))
    assert sorted(calls) == ["a", "b"]
    assert all(r["backends"]["a"]["ok"] for r in reports)


async def test_results_are_reused_for_the_cache_period_then_refreshed():
    clock = FakeClock()
    health, calls = report_with(lambda r: httpx.Response(200), clock)
    await health.report()
    clock.now += 0.5
    await health.report()
    assert len(calls) == 2
    clock.now += 0.6
    await health.report()
    assert len(calls) == 4


async def test_a_down_backend_is_reported_not_raised():
    def respond(request):
        if request.url.host == "b":
            raise httpx.ConnectError("refused")
        return httpx.Response(200)

    health, _ = report_with(respond, FakeClock())
    report = await health.report()
    assert report["ok"] is True
    assert report["backends"]["a"]["ok"] is True
    assert report["backends"]["b"] == {"url": "http://b", "ok": False,
                                       "latency_ms": report["backends"]["b"]["latency_ms"]}
    assert report["backends"]["b"]["ok"] is False
