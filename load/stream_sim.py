"""A lean streaming backend for load/bench_streams.py: OpenAI chat completion chunks on a clock.

    .venv/bin/python load/stream_sim.py --port P [--ttft-ms 100] [--token-ms 100]

`POST /v1/chat/completions` with `"stream": true` answers as the Node simulator does
(services/node, TTFT_MS / TOKEN_MS / ANSWER_TOKENS): `text/event-stream`, chunked, one
`chat.completion.chunk` event per token (the first with the assistant role) at start + ttft +
k * token_ms, `max_tokens` of them, then the finish event, the usage event when
`stream_options.include_usage` is set, and `data: [DONE]`; connections are kept alive.
Anything else gets a small JSON answer (`GET /healthz` 200, the rest 404).

Why it exists: the benchmark runs the backend on the machine it measures, while on the platform
the backend is elsewhere. The Node simulator spends about 60 µs of CPU per chunk here (Express,
a promise timer and a JSON encoding per token), about 0.6 of this machine's two cores at 1,000
streams: CPU the gateway is then measured without. This one spends a timer callback and one
write per chunk; its CPU is reported beside the gateway's either way (`--sim node` keeps the Node
one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import httptools
import uvloop

HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _tokens(body: dict) -> int:
    """`max_tokens`, or 16 when it is missing or not a positive whole number."""
    value = body.get("max_tokens")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 16


def _events(body: dict) -> tuple[bytes, bytes, bytes]:
    """The token event's prefix and suffix (a token's text goes between) and the closing
    events, as the Node simulator writes them."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": str(body.get("model", "sim"))}
    marker = "\x00"
    token = json.dumps({**head, "choices": [{"index": 0, "delta": {"content": marker},
                                             "logprobs": None, "finish_reason": None}],
                        "usage": None}, separators=(",", ":"))
    prefix, suffix = token.split(json.dumps(marker)[1:-1])
    tokens = _tokens(body)
    closing = [{**head, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                     "finish_reason": "length"}], "usage": None}]
    if (body.get("stream_options") or {}).get("include_usage"):
        closing.append({**head, "choices": [], "usage": {
            "prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens}})
    tail = [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n"
            for e in closing] + [b"data: [DONE]\n\n"]
    return (b"data: " + prefix.encode(), suffix.encode() + b"\n\n",
            _frame(b"".join(tail)) + b"0\r\n\r\n")


class _Server(asyncio.Protocol):
    def __init__(self, ttft_s: float, token_s: float) -> None:
        self.ttft_s, self.token_s = ttft_s, token_s
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url, self.body = b"", []

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url, self.body = url, []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        path = self.url.split(b"?")[0]
        try:
            body = json.loads(b"".join(self.body) or b"{}")
        except ValueError:
            body = {}
        if path == b"/v1/chat/completions" and isinstance(body, dict) and body.get("stream"):
            self._stream(body)
        else:
            found = path == b"/healthz"
            answer = b'{"ok":true}' if found else b'{"error":"not found"}'
            self.transport.write(b"HTTP/1.1 %s\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (
                                     b"200 OK" if found else b"404 Not Found", len(answer),
                                     answer))

    def _stream(self, body: dict) -> None:
        prefix, suffix, tail = _events(body)
        tokens = _tokens(body)
        first = _frame(prefix.replace(b'"delta":{', b'"delta":{"role":"assistant",') + b"echo:"
                       + suffix)
        token = _frame(prefix + b" tok" + suffix)
        transport, loop = self.transport, asyncio.get_running_loop()
        transport.write(HEAD)
        start = loop.time() + self.ttft_s

        def send(k: int) -> None:
            if transport.is_closing():
                return
            if k + 1 < tokens:
                transport.write(first if k == 0 else token)
                loop.call_at(start + (k + 1) * self.token_s, send, k + 1)
            else:  # the last token, then the closing events at once (Node: in the same tick)
                transport.write((first if k == 0 else token) + tail)

        loop.call_at(start, send, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--token-ms", type=float, default=100.0)
    args = parser.parse_args()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Server(args.ttft_ms / 1000, args.token_ms / 1000), "127.0.0.1", args.port,
            backlog=4096)
        await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
