"""Seeded, structure-aware hostile requests for the gateway fuzzer.

`case(seed, index)` is a pure function: the same seed and index always give the same request, so
a failure found at index i of a 50,000-request run is replayed alone with that pair. Requests mix
every path trick issue 14 lists (dot segments plain and encoded, encoded slashes and backslashes,
NUL and controls, escapes of `?` and `#`, double and overlong encodings, fullwidth dots), query
spellings of the function key, forwarded headers, cache-poisoning inputs (codings, cookies,
credentials, rewrite headers, on paths a backend answers as cacheable without Vary), non-ASCII
and large header values, JSON bodies for every route (seed and OpenAI) that are valid, mutated,
mistyped or nested deep, and JSON-RPC for the MCP routes: batches, unknown methods, bad ids, tool
names with tricks (case, Unicode lookalikes, zero-width characters), oversized params, forged
session ids.
Framing stays valid: the fuzzer attacks the gateway, not the HTTP parser of the local host.

Since issue 22 round two, some indices are not one request to the hostile gateway: about 15 in
100 are multi-tenant requests with gateway keys in every position and a hostile backend's
answers (tests/fuzz/tenants.py: `TenantCase`), and 1 in 100 is a concurrent burst on a small
budget or TPM limit (tests/fuzz/bursts.py: `Burst`). `case(seed, index)` rebuilds either.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from tests.fuzz.bursts import Burst, burst_case
from tests.fuzz.tenants import TenantCase, tenant_case

FUNCTION_KEY = "fzkey-5ecret-7a1c"  # also in tests/e2e/conftest.py FUZZ_SECRETS

PREFIXES = ["/echo", "/echo", "/echo", "/infer/python", "/infer/node", "/v1/chat/completions",
            "/v1/completions", "/v1/embeddings", "/v1/models", "/healthz", "/_gateway/stats",
            "/nowhere", "/v1", "/ECHO", "/ech%6f", "", "/mcp/tools", "/mcp/tools", "/mcp/nope",
            "/mcp", "/MCP/tools"]
TRICKS = ["..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%2e", "..%2f", "%2f", "%2F", "%5c",
          "%5C", "\\", "..\\", "%00", "%0d", "%0a", "%0d%0a", "%09", "%7f", "%1b", "%3f",
          "%3F", "%23", "%252e%252e", "%252f", "%25", "%", "%zz", "%4", "%c0%ae%c0%ae",
          "%ef%bc%8e%ef%bc%8e", "%e2%80%ae", "\xc3\xa9", "\xff", "a", "b", "admin", "v1.2",
          "~user", ";p=1", "@x", "a+b", "a%20b", "*", "", "x" * 300, "%41%42", ":", "'\"<>"]
PLAIN = ["a", "b", "v1", "models", "x.json", "%41", "a%20b", "caf%C3%A9", "-_~", "1", "..a",
         "chat", "completions", "cacheable", "cacheable"]
METHODS = ["GET", "POST", "POST", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
MODELS = ["sim-python", "sim-node", "sim-small", "nope", "", 5, None, ["sim-python"]]
KEY_SPELLINGS = ["code", "CODE", "Code", "%63ode", "c%6Fde", "co%64e", "%43%4F%44%45", "code%20",
                 "cod%65", "c%6fd%65"]
HEADER_VALUES = [b"\xff\xfe", b"caf\xe9", b"\x80" * 64, b"ok", b"", b"a" * 8000, b"\xc3\xa9",
                 b"1.2.3.4, 5.6.7.8", b"garbage, ::1, [::1]:80", b"unknown", b"\t x \t"]


@dataclass(frozen=True)
class Case:
    index: int
    method: str
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    chunked: bool
    abandon: bool  # send part of the body, then close (a client leaving mid-request)


TENANT_SHARE, BURST_SHARE = 0.15, 0.01


def case(seed: int, index: int) -> Case | TenantCase | Burst:
    rng = random.Random(f"{seed}:{index}")
    roll = rng.random()
    if roll < BURST_SHARE:
        return burst_case(rng, index)
    if roll < BURST_SHARE + TENANT_SHARE:
        return tenant_case(rng, index)
    if rng.random() < 0.1:  # a few cacheable paths, asked again and again with other inputs
        target = b"/echo/cacheable/%d" % rng.randint(0, 2)
        return Case(index, rng.choice(["GET", "GET", "HEAD"]), target,
                    tuple(_headers(rng, b"")), b"", chunked=False, abandon=False)
    method = rng.choice(METHODS)
    prefix = rng.choice(PREFIXES)
    path = prefix + _tail(rng)
    target = (path if path.startswith("/") else "/" + path) + _query(rng)
    body = _body(rng, prefix) if method in ("POST", "PUT", "PATCH") or rng.random() < 0.05 \
        else b""
    return Case(index, method, target.encode("latin-1"), tuple(_headers(rng, body)), body,
                chunked=rng.random() < 0.1, abandon=bool(body) and rng.random() < 0.01)


def _tail(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return ""
    segments = [rng.choice(TRICKS if rng.random() < 0.4 else PLAIN)
                for _ in range(rng.randint(1, 6))]
    if rng.random() < 0.3:  # tricks glued inside one segment
        segments = ["".join(segments)]
    return "/" + "/".join(segments)


def _query(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return ""
    params = []
    for _ in range(rng.randint(1, 5)):
        roll = rng.random()
        if roll < 0.35:
            params.append(f"{rng.choice(KEY_SPELLINGS)}={FUNCTION_KEY}")
        elif roll < 0.5:
            params.append(rng.choice(["a=%00", "b=#x", "c=\xff", "=", "&", "d=%zz", "e=1;f=2"]))
        else:
            params.append(f"k{rng.randint(0, 9)}={rng.randint(0, 999)}")
    return "?" + "&".join(params)


def _headers(rng: random.Random, body: bytes) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    if body and rng.random() < 0.9:
        headers.append((b"content-type", rng.choice(
            [b"application/json", b"application/json; charset=utf-8", b"text/plain"])))
    if rng.random() < 0.05:
        headers.append((b"mcp-session-id", rng.choice(
            [b"g1.AAAA", b"g1." + b"A" * 80, b"plain-upstream-id", b"g1.%%", b"\xff"])))
    for name in (b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-request-id",
                 b"x-functions-key", b"authorization", b"x-api-key", b"accept-encoding",
                 b"x-custom", b"connection", b"te", b"x-ms-client-principal-id",
                 # cache poisoning (issue 22): inputs a backend may use without a Vary
                 b"cookie", b"api-key", b"x-original-url", b"forwarded",
                 b"x-http-method-override"):
        if rng.random() < 0.15:
            headers.append((name, _header_value(rng, name)))
    for i in range(rng.choice([0, 0, 0, 2, 40])):
        headers.append((b"x-many-%d" % i, b"v"))
    return headers


def _header_value(rng: random.Random, name: bytes) -> bytes:
    if name == b"x-functions-key":
        return FUNCTION_KEY.encode()
    if name == b"authorization" and rng.random() < 0.5:
        return b"Bearer sk-client-own-credential"  # the client's, for the backend: forwarded
    if name == b"accept-encoding" and rng.random() < 0.7:
        return rng.choice([b"gzip", b"GZIP", b"identity", b"gzip, deflate", b"deflate ,gzip",
                           b"br", b"*"])
    if name == b"cookie" and rng.random() < 0.7:
        return b"session=fuzz-%d" % rng.randint(0, 3)
    if name == b"connection":
        return rng.choice([b"keep-alive", b"x-custom", b"te, x-forwarded-for", b"upgrade"])
    if name == b"x-forwarded-for":
        return rng.choice([b"4.4.4.4", b"%d.%d.0.1" % (rng.randint(1, 250), rng.randint(0, 255)),
                           *HEADER_VALUES])
    return rng.choice(HEADER_VALUES)


def _body(rng: random.Random, prefix: str) -> bytes:
    roll = rng.random()
    if roll < 0.08:
        return rng.choice([b"{oops", b"", b"[]", b"null", b"\xff\xfe{}", b'"x"', b"{}" * 3,
                           b'{"a": "\\ud800"}', b"1e999999"])
    if roll < 0.16:
        return _deep(rng)
    if roll < 0.2:
        return rng.randbytes(rng.randint(1, 4096))
    value = _json_for(rng, prefix)
    if rng.random() < 0.3 and isinstance(value, dict):
        _mutate(rng, value)
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8", "surrogatepass")


def _deep(rng: random.Random) -> bytes:
    depth = rng.choice([65, 100, 900, 980, 1_000, 5_000, 100_000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    field = rng.choice([b"prompt", b"tools", b"messages", b"input", b"x"])
    return (b'{"model": "sim-python", "' + field + b'": ' + opener * depth + b"1"
            + closer * depth + b"}")


def _json_for(rng: random.Random, prefix: str) -> dict | list:
    model = rng.choice(MODELS)
    small = rng.choice([1, 2, 4, 8])
    if prefix.startswith("/v1/chat"):
        body = {"model": model, "messages": [{"role": "user", "content": _text(rng)}],
                "max_tokens": small}
        if rng.random() < 0.3:
            body["stream"] = True
        if rng.random() < 0.2:
            body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": {
                "type": "object", "properties": {"x": {"type": "string"}}}}}]
        return body
    if prefix.startswith("/v1/completions"):
        return {"model": model, "prompt": rng.choice([_text(rng), [_text(rng)], [1, 2, 3]]),
                "max_tokens": small, "stream": rng.random() < 0.2}
    if prefix.lower().startswith("/mcp"):
        return _jsonrpc(rng)
    if prefix.startswith("/v1/embeddings"):
        return {"model": model, "input": rng.choice([_text(rng), [_text(rng)], [[1, 2]]])}
    return {"prompt": _text(rng)}


MCP_METHODS = ["tools/call", "tools/call", "tools/list", "initialize", "ping", "tools/destroy",
               "notifications/initialized", "sampling/createMessage", "", "TOOLS/CALL", None, 7]
TOOL_NAMES = ["echo", "Echo", "\u0435cho", "echo\u200b", "ｅcho", "echo ", "../echo", "*",
              "tools:echo", "", "x" * 300, 5, None, ["echo"]]


def _jsonrpc(rng: random.Random) -> dict | list:
    """One JSON-RPC message (or a batch) for an MCP route, valid or subtly not."""
    message: dict = {"jsonrpc": rng.choice(["2.0", "2.0", "2.0", "1.0", 2, None]),
                     "method": rng.choice(MCP_METHODS)}
    if rng.random() < 0.85:
        message["id"] = rng.choice([1, "a", 0, -1, 2**63, 1.5, True, None, [], {}])
    params: dict = {"name": rng.choice(TOOL_NAMES), "arguments": {"text": _text(rng)}}
    if rng.random() < 0.1:
        params["name"] = params["arguments"]  # a name that is an object
    message["params"] = rng.choice([params, params, params, [], "x", None,
                                    {"protocolVersion": "2025-06-18"}])
    if rng.random() < 0.1:
        return [message, dict(message)]
    return message


def _mutate(rng: random.Random, body: dict) -> None:
    key = rng.choice(["max_tokens", "n", "model", "messages", "prompt", "stream", "input",
                      "max_completion_tokens", "stream_options", "temperature"])
    body[key] = rng.choice([-1, 0, 10**6, 500_000, 2**63, 1e308, "8", None, True, [], {}, "",
                            [{"role": "user"}], [None], {"include_usage": "yes"}, "x" * 5000])


def _text(rng: random.Random) -> str:
    return rng.choice(["hello", "", "é" * 10, "\x00\x01", "\ud83d\ude00", "\u202e", "x" * 2000,
                       "..%2f..%2fadmin", "data: [DONE]\n\n"])
