"""The lean transport (UPSTREAM_CLIENT=aiohttp) keeps httpx-aiohttp's contract: the same request
on the wire, the same exception mapping; it only skips per-request work."""

import asyncio

import aiohttp
import httpx
import pytest
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

from function_app.adapters.aiohttp_transport import LeanAiohttpTransport, aiohttp_headers, mapped
from function_app.adapters.httpx_messages import STR_FIELDS, URL_TEXT, outgoing_request
from function_app.adapters.httpx_upstream import make_transport
from function_app.http.headers import Headers

PAIRS = [("content-type", "application/json"), ("x-request-id", "abc"),
         ("X-Forwarded-For", "10.0.0.1"),
         ("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")]


def test_ascii_fields_become_the_dict_httpx_items_gives():
    headers = httpx.Headers(PAIRS)
    fields = aiohttp_headers(headers)
    assert isinstance(fields, dict) and fields == dict(headers.items())


@pytest.mark.parametrize("pairs", [
    [*PAIRS, ("x-name", "caf\xe9")],  # not ASCII: httpx's own decoding decides
    [*PAIRS, ("x-dup", "a"), ("X-Dup", "b")],  # a repeated name: httpx joins the values
])
def test_any_other_fields_go_through_httpx_items_as_before(pairs):
    headers = httpx.Headers([(k, v.encode("utf-8")) for k, v in pairs])
    assert aiohttp_headers(headers) is headers


@pytest.mark.parametrize("exc", [
    aiohttp.ServerTimeoutError("slow"), aiohttp.SocketTimeoutError("read"),
    aiohttp.ClientConnectionError("reset"), aiohttp.ClientPayloadError("cut"),
    aiohttp.ClientConnectorError(aiohttp.client_reqrep.ConnectionKey(
        "h", 1, False, True, None, None, None), OSError(111, "refused")),
])
def test_failures_map_to_the_httpx_exception_httpx_aiohttp_raises(exc):
    with pytest.raises(httpx.HTTPError) as theirs, map_aiohttp_exceptions():
        raise exc
    ours = mapped(exc)
    assert type(ours) is type(theirs.value) and str(ours) == str(theirs.value)


def test_an_exception_outside_the_table_is_not_mapped():
    assert mapped(ValueError("x")) is None


def test_the_default_kind_builds_the_lean_transport():
    assert isinstance(make_transport("aiohttp", 4), LeanAiohttpTransport)


async def head_sent(transport: httpx.AsyncBaseTransport, headers, ours: bool = False) -> bytes:
    """The request head `transport` writes for one POST, as the backend reads it; `ours`: the
    request made as HttpxUpstream makes it (outgoing_request, the URL's text as URL_TEXT, the
    fields as STR_FIELDS when they can go so)."""
    heads: list[bytes] = []

    async def answer(reader, writer):
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        await reader.readexactly(2)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-b: 1\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        url = httpx.URL(f"http://127.0.0.1:{port}/infer")
        extensions = {"timeout": {"connect": 2, "pool": 2}}
        if ours:
            extensions[URL_TEXT] = str(url)
            request = outgoing_request("POST", url, Headers(headers), b"{}", extensions,
                                       str_fields=True)
            assert STR_FIELDS in request.extensions  # every field here is ASCII, none twice
        else:
            request = httpx.Request("POST", url, headers=Headers(headers).raw(), content=b"{}",
                                    extensions=extensions)
        response = await transport.handle_async_request(request)
        assert response.status_code == 200 and response.headers.raw[-1] == (b"x-b", b"1")
        assert b"".join([chunk async for chunk in response.stream]) == b"ok"
        await response.aclose()
    await transport.aclose()
    return heads[0].replace(f":{port}".encode(), b":PORT")  # each run has a port of its own


@pytest.mark.parametrize("headers", [PAIRS, [*PAIRS, ("x-dup", "a"), ("x-dup", "b")]])
async def test_the_backend_reads_the_same_head_from_either_transport(headers):
    ours = await head_sent(LeanAiohttpTransport(trust_env=False), headers)
    theirs = await head_sent(AiohttpTransport(trust_env=False), headers)
    assert ours == theirs and b"x-forwarded-for: 10.0.0.1" in ours.lower()


@pytest.mark.parametrize("headers", [PAIRS, [*PAIRS, ("x-big", "v" * 6000)]])
async def test_the_upstreams_own_request_puts_the_same_head_on_the_wire(headers):
    ours = await head_sent(LeanAiohttpTransport(trust_env=False), headers, ours=True)
    theirs = await head_sent(AiohttpTransport(trust_env=False), headers)
    assert ours == theirs and b"x-forwarded-for: 10.0.0.1" in ours.lower()


@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "a\rb"])
async def test_a_line_break_in_a_value_is_refused_as_httpx_aiohttp_refuses_it(value):
    headers = [*PAIRS, ("x-evil", value)]
    with pytest.raises(Exception) as ours:
        await head_sent(LeanAiohttpTransport(trust_env=False), headers, ours=True)
    with pytest.raises(Exception) as theirs:
        await head_sent(AiohttpTransport(trust_env=False), headers)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


def test_a_name_outside_ascii_goes_through_httpx_items_as_before():
    headers = httpx.Headers([(b"content-type", b"text/plain"), (b"x-caf\xe9", b"v")])
    assert aiohttp_headers(headers) is headers

