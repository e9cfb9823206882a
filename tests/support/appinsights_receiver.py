"""A small Application Insights ingestion endpoint on 127.0.0.1, for the Azure Monitor path.

Point a connection string at it and the Azure Monitor exporters send here what it
would send to Azure, so the Azure Monitor path can be tested and measured with nothing leaving
the machine (see `connection_string`, which also names the environment that keeps the
exporter's other calls at home: statsbeat, the OneSettings control plane, the VM resource
detector's metadata request):

- POST .../track (the exporter's `{IngestionEndpoint}/v2.1/track`): a JSON array of telemetry
  envelopes, gzip or not; each is kept, GET /items lists them (`item_summary`), GET /counts
  their number by type (Request, RemoteDependency, Exception, Message, Metric, ...).
- POST /QuickPulseService.svc/ping and /post (Live Metrics, `LiveEndpoint`): counted by
  operation (GET /live); answered "not subscribed" (nobody watching in the portal) unless
  --live-subscribed, when the SDK then posts every second as it would under a viewer.
- any other request: counted under GET /other, answered 404, so a path the exporter starts
  using shows up in a test instead of passing silently.

Run: python -m tests.support.appinsights_receiver --port N [--live-subscribed]
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter

from aiohttp import web

INSTRUMENTATION_KEY = "00000000-0000-4000-8000-000000000000"  # not a real resource's
# What keeps the exporter from calling anything but the connection string's endpoints: its own
# usage telemetry (statsbeat, to a fixed Microsoft endpoint), its control-plane poll (OneSettings)
# and the distro's default resource detectors (azure_vm asks the instance metadata service).
LOCAL_ONLY_ENV = {"APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
                  "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
                  "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel"}


def connection_string(url: str) -> str:
    """A connection string whose ingestion and live endpoints are this receiver at `url`."""
    base = url.rstrip("/") + "/"
    return (f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={base};"
            f"LiveEndpoint={base}")


def kind(envelope: dict) -> str:
    """The telemetry type of an envelope: `Microsoft.ApplicationInsights.<ikey>.Request` or the
    data's baseType (`RequestData`) -> "Request"."""
    base = (envelope.get("data") or {}).get("baseType") or ""
    if base.endswith("Data"):
        return base[:-len("Data")]
    return str(envelope.get("name", "")).rsplit(".", 1)[-1]


def item_summary(envelope: dict) -> dict:
    """What a test asserts on: type, name, ids, kind-specific fields, properties, sample rate."""
    data = (envelope.get("data") or {}).get("baseData") or {}
    tags = envelope.get("tags") or {}
    out = {"kind": kind(envelope), "name": data.get("name"),
           "operation_id": tags.get("ai.operation.id"),
           "parent_id": tags.get("ai.operation.parentId"),
           "cloud_role": tags.get("ai.cloud.role"),
           "sample_rate": envelope.get("sampleRate"),
           "properties": data.get("properties") or {}}
    for key in ("id", "type", "target", "resultCode", "responseCode", "success", "data",
                "duration", "url", "message", "exceptions", "metrics"):
        if key in data:
            out[key] = data[key]
    return out


def make_app(live_subscribed: bool = False) -> web.Application:
    items: list[dict] = []
    live: Counter[str] = Counter()
    other: Counter[str] = Counter()

    async def track(request: web.Request) -> web.Response:
        raw = await request.read()
        if request.headers.get("Content-Encoding", "").lower() == "gzip" or raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        envelopes = json.loads(raw)
        if isinstance(envelopes, dict):
            envelopes = [envelopes]
        items.extend(envelopes)
        return web.json_response({"itemsReceived": len(envelopes),
                                  "itemsAccepted": len(envelopes), "errors": []})

    async def quickpulse(request: web.Request) -> web.Response:
        await request.read()
        live[request.match_info["op"]] += 1
        return web.Response(status=200, headers={
            "x-ms-qps-subscribed": "true" if live_subscribed else "false",
            "x-ms-qps-configuration-etag": "local"})

    async def anything(request: web.Request) -> web.Response:
        await request.read()
        other[f"{request.method} {request.path}"] += 1
        return web.json_response({"error": "not an ingestion path"}, status=404)

    async def listed(_: web.Request) -> web.Response:
        return web.json_response([item_summary(e) for e in items])

    async def counts(_: web.Request) -> web.Response:
        return web.json_response(dict(Counter(kind(e) for e in items)))

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/QuickPulseService.svc/{op}", quickpulse)
    app.router.add_post("/{prefix:.*}track", track)
    app.router.add_get("/items", listed)
    app.router.add_get("/counts", counts)
    app.router.add_get("/live", lambda _: web.json_response(dict(live)))
    app.router.add_get("/other", lambda _: web.json_response(dict(other)))
    app.router.add_get("/healthz", lambda _: web.json_response({"ok": True}))
    app.router.add_route("*", "/{rest:.*}", anything)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--live-subscribed", action="store_true",
                        help="answer Live Metrics pings as if a portal viewer were watching")
    args = parser.parse_args()
    web.run_app(make_app(args.live_subscribed), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
