"""What the first build leaves for later (#26, cold start): the /healthz probes' own upstream is
opened at the first probe, not when the gateway is built (wiring/build.py,
adapters/upstreams.py), and it still answers /healthz."""

from function_app.adapters import upstreams
from function_app.adapters.upstreams import OpenedOnFirstUse
from function_app.core.upstream import UpstreamRequest
from function_app.http.headers import Headers
from function_app.settings.load import load_settings
from function_app.wiring import build


class Recorded:
    def __init__(self):
        self.sent: list[UpstreamRequest] = []
        self.closed = 0

    async def send(self, request):
        self.sent.append(request)
        return "answer"

    async def aclose(self):
        self.closed += 1


def request() -> UpstreamRequest:
    return UpstreamRequest("GET", "http://127.0.0.1:9/healthz", Headers([]), b"", 1.0, 1.0)


async def test_an_upstream_opened_on_first_use_opens_once_at_its_first_send():
    opened: list[Recorded] = []

    def open_one():
        opened.append(Recorded())
        return opened[-1]

    lazy = OpenedOnFirstUse(open_one)
    assert opened == []
    assert await lazy.send(request()) == "answer"
    assert await lazy.send(request()) == "answer"
    assert len(opened) == 1 and len(opened[0].sent) == 2
    await lazy.aclose()
    assert opened[0].closed == 1


async def test_an_upstream_never_used_opens_nothing_when_closed():
    opened = []
    lazy = OpenedOnFirstUse(lambda: opened.append(1))
    await lazy.aclose()
    assert opened == []


async def test_the_build_opens_the_probes_pool_at_the_first_probe(monkeypatch):
    sizes: list[int] = []
    real = upstreams.open_upstream

    def counted(kind, max_connections):
        sizes.append(max_connections)
        return real(kind, max_connections)

    monkeypatch.setattr(build, "open_upstream", counted)
    settings = load_settings({"PY_SERVICE_URL": "http://127.0.0.1:9",
                              "NODE_SERVICE_URL": "http://127.0.0.1:9",
                              "RATE_LIMIT_ENABLED": "false"})
    gateway = await build.build_gateway(settings)
    try:
        assert sizes == [settings.upstream_max_connections]  # requests' pool only
        report = await gateway.health.report()
        assert sizes == [settings.upstream_max_connections, build.HEALTH_CONNECTIONS]
        assert set(report["backends"]) == {"python", "node"}
        assert not any(found["ok"] for found in report["backends"].values())  # nothing there
    finally:
        await gateway.aclose()
