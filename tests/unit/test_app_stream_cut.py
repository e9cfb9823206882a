"""An answer whose body fails after its headers went out (app.ClosingStreamingResponse).

Before the fix the GatewayError escaped into the worker's server, which logged it with a
traceback (test_hostile_input's slow reader at /slow/flood, then test_fuzz's log check)."""

import logging

import pytest

from function_app.app import to_response
from function_app.core.errors import UpstreamError, UpstreamTimeout
from function_app.http.headers import Headers
from function_app.http.messages import GatewayResponse


def failing_body(error: Exception, closed: list[bool]):
    async def body():
        try:
            yield b"first"
            raise error
        finally:
            closed.append(True)
    return body()


async def run(response) -> list[dict]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    await response.stream_response(send)
    return sent


@pytest.mark.parametrize("error", [UpstreamTimeout(), UpstreamError()])
async def test_a_chunked_body_failing_midway_ends_with_one_line(caplog, error):
    closed: list[bool] = []
    headers = Headers([("X-Request-ID", "cut-7f3a"), ("content-type", "text/plain")])
    response = to_response(GatewayResponse(200, headers, failing_body(error, closed)))
    with caplog.at_level(logging.INFO):
        sent = await run(response)  # nothing raised into the server
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body",
                                         "http.response.body"]
    assert sent[1]["body"] == b"first" and sent[1]["more_body"] is True
    assert sent[2] == {"type": "http.response.body", "body": b"", "more_body": False}
    lines = [r for r in caplog.records if "cut after its headers" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert f"{error.code}, request_id=cut-7f3a" in lines[0].getMessage()
    assert closed == [True]


async def test_a_declared_length_is_not_ended_short():
    """A server cannot end a body of declared length early: the answer is left incomplete, so
    the server closes the connection rather than send a short body as a whole one."""
    closed: list[bool] = []
    headers = Headers([("content-length", "100")])
    response = to_response(GatewayResponse(200, headers, failing_body(UpstreamTimeout(),
                                                                      closed)))
    sent = await run(response)
    assert [m.get("more_body") for m in sent[1:]] == [True]
    assert closed == [True]


async def test_an_unexpected_error_still_reaches_the_server():
    """Only the gateway's own errors are an expected end; anything else is a bug to see."""
    closed: list[bool] = []
    response = to_response(GatewayResponse(200, Headers(), failing_body(KeyError("x"), closed)))
    with pytest.raises(KeyError):
        await run(response)
    assert closed == [True]
