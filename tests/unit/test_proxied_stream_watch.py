"""A proxied route's streamed answer (no Content-Length) reaches the client as the upstream body
itself (adapters/deadline_body.DeadlineBody): the telemetry stage takes the body's BodyWatch
instead of wrapping it in a layer per chunk, and records the first chunk and the end as it did
through that layer; routing's release and the attempt's span end from the same watch's end
hooks (core/body_watch.py: one end-hook mechanism, docs/perf/pass11-route.md)."""

from __future__ import annotations

import logging

import httpx
import pytest
from opentelemetry.trace import SpanKind

from function_app.adapters.deadline_body import DeadlineBody
from function_app.app import proxy
from tests.support.handler_calls import make_request
from tests.unit.test_telemetry import (  # noqa: F401  (fixtures)
    _dies_after,
    _Events,
    _logged,
    _outstanding,
    reader,
    spans,
    wired,
)


def _pieces(*pieces: bytes):
    def respond(request):
        async def each():
            for piece in pieces:
                yield piece

        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=_Events(each()))

    return respond


async def _streamed(wired, backend, caplog, respond):  # noqa: F811
    built = await wired()
    backend.respond = respond
    caplog.set_level(logging.INFO, logger="gateway.requests")
    response = await proxy(make_request("POST", "/infer/node", b'{"prompt": "hi"}',
                                        {"content-type": "application/json"}))
    assert response.status_code == 200
    return built, response.body_iterator


async def test_a_proxied_stream_has_no_telemetry_layer_and_is_recorded(
        wired, backend, caplog, spans):  # noqa: F811
    built, body = await _streamed(wired, backend, caplog, _pieces(b"data: a\n\n", b"data: b\n\n"))
    chunks = aiter(body)
    assert type(chunks) is DeadlineBody  # the upstream body itself: no generator around it
    assert await _outstanding(built) == 1  # the member holds the stream
    assert b"".join([chunk async for chunk in chunks]) == b"data: a\n\ndata: b\n\n"
    entry = _logged(caplog)  # (time to first token: for a model's answer, with its bill)
    assert entry["status"] == 200 and "stream_error" not in entry
    server = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [e.name for e in server[0].events] == ["gen_ai.first_chunk"]
    assert server[0].status.status_code.name != "ERROR"
    clients = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert len(clients) == 1 and "error.type" not in clients[0].attributes
    assert await _outstanding(built) == 0


async def test_a_proxied_stream_the_client_leaves_is_recorded_as_client_closed(
        wired, backend, caplog, spans):  # noqa: F811
    built, body = await _streamed(wired, backend, caplog, _pieces(b"data: a\n\n", b"data: b\n\n"))
    assert await anext(aiter(body)) == b"data: a\n\n"
    assert not [r for r in caplog.records if r.name == "gateway.requests"]  # not over yet
    await body.aclose()
    entry = _logged(caplog)
    assert entry["stream_error"] == "client_closed"
    assert await _outstanding(built) == 0


async def test_a_proxied_stream_cut_by_its_backend_is_recorded_with_its_error(
        wired, backend, caplog, spans):  # noqa: F811
    built, body = await _streamed(wired, backend, caplog,
                                  _dies_after(b"data: a\n\n", "text/event-stream"))
    chunks = aiter(body)
    assert await anext(chunks) == b"data: a\n\n"
    with pytest.raises(Exception) as raised:
        await anext(chunks)
    assert getattr(raised.value, "code", None) == "upstream_unavailable"
    assert _logged(caplog)["stream_error"] == "upstream_unavailable"
    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind == SpanKind.SERVER]
    clients = [s for s in finished if s.kind == SpanKind.CLIENT]
    assert server[0].status.status_code.name == "ERROR"
    assert clients[0].attributes["error.type"] == "upstream_unavailable"
    assert await _outstanding(built) == 0
