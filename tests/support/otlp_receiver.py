"""A small OTLP/HTTP receiver, run as a process by the telemetry end-to-end test.

POST /v1/traces and /v1/metrics take protobuf export requests (opentelemetry-proto) as a
collector would; GET /spans lists the spans received so far as JSON. It doubles as a recording
backend: any request under /echo/ is answered 200 and its trace headers are kept, listed by
GET /echoed, so a test can see what reached the backend.

Run: python -m tests.support.otlp_receiver --port N
"""

from __future__ import annotations

import argparse

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def span_dict(span, resource: dict) -> dict:
    return {"trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
            "parent_span_id": span.parent_span_id.hex(), "name": span.name,
            "kind": span.kind, "attributes": {a.key: _value(a.value) for a in span.attributes},
            "events": [e.name for e in span.events], "resource": resource}


def make_app() -> web.Application:
    spans: list[dict] = []
    metrics: list[str] = []
    echoed: list[dict] = []

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in message.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                spans.extend(span_dict(span, resource) for span in scope.spans)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type=PROTOBUF)

    async def metric(request: web.Request) -> web.Response:
        message = ExportMetricsServiceRequest.FromString(await request.read())
        metrics.extend(m.name for rm in message.resource_metrics for sm in rm.scope_metrics
                       for m in sm.metrics)
        return web.Response(body=ExportMetricsServiceResponse().SerializeToString(),
                            content_type=PROTOBUF)

    async def echo(request: web.Request) -> web.Response:
        await request.read()
        echoed.append({"path": request.path, "traceparent": request.headers.get("traceparent")})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/metrics", metric)
    app.router.add_get("/spans", lambda _: web.json_response(spans))
    app.router.add_get("/metric-names", lambda _: web.json_response(sorted(set(metrics))))
    app.router.add_get("/echoed", lambda _: web.json_response(echoed))
    app.router.add_get("/healthz", lambda _: web.json_response({"ok": True}))
    app.router.add_route("*", "/echo/{rest:.*}", echo)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
