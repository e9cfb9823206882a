"""The /healthz report: shared probes, reuse for the cache period, timings on the injected clock."""

import asyncio
import json
from urllib.parse import urlsplit

from function_app.wiring.health import HealthReport
from tests.support.clock import FakeClock, settle
from tests.support.upstream_memory import Fail, MemoryUpstream, Reply


def report_with(respond, clock, cache_s=1.0):
    upstream = MemoryUpstream(respond)
    health = HealthReport(service="gw", version="t", upstream=upstream, probe_timeout_s=0.5,
                          backends={"a": "http://a", "b": "http://b"}, cache_s=cache_s,
                          clock=clock)
    return health, upstream


def probed(upstream: MemoryUpstream) -> list[str]:
    return sorted(urlsplit(request.url).hostname or "" for request in upstream.requests)


async def test_a_storm_of_checks_probes_each_backend_once():
    release = asyncio.Event()

    async def held(request):
        await release.wait()
        return Reply()

    health, upstream = report_with(held, FakeClock())
    storm = [asyncio.ensure_future(health.report()) for _ in range(50)]
    await settle()  # every check has arrived while the first probe is still in flight
    release.set()
    reports = await asyncio.gather(*storm)
    assert probed(upstream) == ["a", "b"]
    assert all(r["backends"]["a"]["ok"] for r in reports)
    assert [u.url for u in upstream.requests] == ["http://a/healthz", "http://b/healthz"]


async def test_results_are_reused_for_the_cache_period_then_refreshed():
    clock = FakeClock()
    health, upstream = report_with(Reply(), clock)
    await health.report()
    clock.set(clock.now() + 0.5)
    await health.report()
    assert len(upstream.requests) == 2
    clock.set(clock.now() + 0.6)
    await health.report()
    assert len(upstream.requests) == 4


async def test_latency_and_uptime_are_measured_on_the_clock():
    clock = FakeClock()

    async def slow(request):
        await clock.sleep(0.25 if "//a" in request.url else 0.1)
        return Reply()

    health, _ = report_with(slow, clock)
    pending = asyncio.ensure_future(health.report())
    await settle()
    await clock.advance(0.1)
    await clock.advance(0.15)
    report = await pending
    assert report["backends"]["a"]["latency_ms"] == 250.0
    assert report["backends"]["b"]["latency_ms"] == 100.0
    assert report["uptime_ms"] == 250


async def test_a_down_backend_is_reported_not_raised():
    def respond(request):
        return Fail("refused") if "//b" in request.url else Reply()

    health, _ = report_with(respond, FakeClock())
    report = await health.report()
    assert report["ok"] is True
    assert report["backends"]["a"]["ok"] is True
    assert report["backends"]["b"] == {"ok": False, "latency_ms": 0.0}
    detail = await health.report(detail=True)
    assert detail["backends"]["b"] == {"url": "http://b", "ok": False, "latency_ms": 0.0}


async def test_the_anonymous_view_names_backends_and_the_operator_view_hides_userinfo():
    health = HealthReport(service="gw", version="t", upstream=MemoryUpstream(Reply()),
                          probe_timeout_s=0.5, cache_s=1.0, clock=FakeClock(),
                          backends={"gpu": "https://svc:s3cret@gpu.internal:8443/base"})
    health.sections["routing"] = lambda: {"pools": {"/v1": ["https://gpu.internal:8443"]}}
    health.summaries["routing"] = lambda: {"backends": {"gpu": {"breaker": "closed"}}}
    anonymous = json.dumps(await health.report())
    assert "gpu.internal" not in anonymous and "s3cret" not in anonymous
    assert "pools" not in anonymous and '"gpu"' in anonymous
    detail = await health.report(detail=True)
    assert detail["backends"]["gpu"]["url"] == "https://gpu.internal:8443/base"
    assert detail["routing"]["pools"] and "s3cret" not in json.dumps(detail)


async def test_an_error_status_is_not_ok():
    health, _ = report_with(Reply(503), FakeClock())
    report = await health.report()
    assert [report["backends"][n]["ok"] for n in ("a", "b")] == [False, False]


async def test_a_section_that_says_not_ok_makes_the_report_not_ok():
    health, _ = report_with(Reply(), FakeClock())
    health.sections["limiter"] = lambda: {"ok": False, "mode": "fail_closed"}
    report = await health.report()
    assert report["ok"] is False
    assert report["limiter"] == {"ok": False, "mode": "fail_closed"}
