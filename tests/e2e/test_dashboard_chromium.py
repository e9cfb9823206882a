"""The dashboard in headless Chromium: it loads clean and its charts draw the gateway's traffic.

Set DASHBOARD_SCREENSHOT=docs/dashboard.png to refresh the README's screenshot from this run.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.support.admin_cli import create_key
from tests.support.cdp import Browser, chromium_path

from .conftest import start_gateway

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(chromium_path() is None, reason="needs chromium (make setup)")]

CHARTS = ("c-rps", "c-lat", "c-err", "c-rej", "c-tok")


@pytest.fixture(scope="module")
def busy_gateway(backends, log_dir):
    proc = start_gateway(log_dir, "gateway-dashboard", {
        "PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
        "CLIENT_ID_SOURCE": "api-key", "CLIENT_RPS": "10", "CLIENT_BURST": "10",
        "TELEMETRY_REQUEST_LOG": "false"})
    yield proc
    proc.stop()


async def traffic(base: str, stop: asyncio.Event) -> None:
    """A mix: seed routes, OpenAI chat (streamed and not), unknown paths, one greedy client."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async def chat(n: int) -> None:
            await client.post("/v1/chat/completions", headers={"x-api-key": f"user-{n % 5}"},
                              json={"model": ["sim-python", "sim-small"][n % 2], "max_tokens": 6,
                                    "stream": n % 3 == 0,
                                    "messages": [{"role": "user", "content": "hello there"}]})

        n = 0
        while not stop.is_set():
            n += 1
            calls = [chat(n), chat(n + 1),
                     client.post("/infer/python", json={"prompt": "hi"},
                                 headers={"x-api-key": "seed"}),
                     client.get("/nope", headers={"x-api-key": "lost"})]
            calls += [client.post("/infer/node", json={"prompt": "x"},
                                  headers={"x-api-key": "greedy"}) for _ in range(25)]
            await asyncio.gather(*calls, return_exceptions=True)
            await asyncio.sleep(0.1)


async def dashboard_state(page) -> dict:
    text = await page.evaluate("JSON.stringify(window.__dashboard || {})")
    return json.loads(text) if text else {}


async def updated(page, updates: int, within_s: float = 60.0) -> None:
    """Return once the dashboard has polled the gateway `updates` times in all."""
    deadline = time.monotonic() + within_s
    while (await dashboard_state(page)).get("updates", 0) < updates:
        assert time.monotonic() < deadline, f"the dashboard never reached {updates} updates"
        await asyncio.sleep(0.1)


async def test_dashboard_loads_without_errors_and_draws_traffic(busy_gateway, log_dir):
    stop = asyncio.Event()
    load = asyncio.create_task(traffic(busy_gateway.url, stop))
    try:
        async with Browser() as page:
            await page.goto(f"{busy_gateway.url}/_gateway/dashboard")
            drawn: dict = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                drawn = await page.evaluate(
                    "JSON.stringify({updates: window.__dashboard && window.__dashboard.updates,"
                    " error: window.__dashboard && window.__dashboard.lastError, points: "
                    f"Object.fromEntries({list(CHARTS)!r}.map(id => [id, "
                    "Number(document.getElementById(id).dataset.points || 0)]))})")
                drawn = json.loads(drawn) if drawn else {}
                if drawn.get("updates", 0) >= 4 and all(drawn["points"].values()):
                    break
                await asyncio.sleep(0.5)
            # One more poll, so the picture has every series (a longer run for the README's).
            more = 10 if os.environ.get("DASHBOARD_SCREENSHOT") else 1
            await updated(page, drawn.get("updates", 0) + more)
            await page.screenshot(Path(log_dir) / "dashboard.png")
            if os.environ.get("DASHBOARD_SCREENSHOT"):
                await page.screenshot(Path(os.environ["DASHBOARD_SCREENSHOT"]))
            assert page.errors == []
            assert drawn.get("error") is None
            assert all(drawn["points"].values()), drawn
            tiles = await page.evaluate("document.getElementById('t-rps').textContent")
            assert tiles not in ("–", "0")
            instances = await page.evaluate("document.getElementById('instances').textContent")
            assert "gateway" not in instances.lower() or "leases" in instances
    finally:
        stop.set()
        await load


@pytest.fixture(scope="module")
def keyed_gateway(backends, log_dir, storage_env):
    """GATEWAY_AUTH=required on Azurite, and an operator key made by the admin CLI."""
    key = create_key(storage_env, "ops", "--operator", name="dashboard")
    proc = start_gateway(log_dir, "gateway-dashboard-keyed", {
        "PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
        "GATEWAY_AUTH": "required", "TELEMETRY_REQUEST_LOG": "false", **storage_env})
    yield proc, key
    proc.stop()




async def test_with_gateway_auth_the_dashboard_reads_metrics_with_the_key_in_its_fragment(
        keyed_gateway):
    proc, key = keyed_gateway
    async with Browser() as page:
        await page.goto(f"{proc.url}/_gateway/dashboard")  # no key: the data is refused
        state: dict = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not state.get("lastError"):
            await asyncio.sleep(0.5)
            state = await dashboard_state(page)
        assert "401" in (state.get("lastError") or "") and state.get("updates") == 0
    async with Browser() as page:
        await page.goto(f"{proc.url}/_gateway/dashboard#key={key}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not state.get("updates"):
            await asyncio.sleep(0.5)
            state = await dashboard_state(page)
        assert state.get("updates", 0) >= 1 and state.get("lastError") is None
        assert page.errors == []
    assert key not in proc.log.read_text()  # a fragment never reaches the server
