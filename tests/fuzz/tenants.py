"""Seeded multi-tenant requests for the fuzzer: gateway keys everywhere, hostile backend answers.

A `TenantCase` names keys by slot, never by value (keys are made at run time through the admin
code, tests/e2e/conftest_fuzz.py), so `case(seed, index)` stays a pure function; `render` puts
the run's keys in. Slots: A1, A2 (tenant A), B1 (tenant B), R (A's, revoked), X (A's, expired),
M (A1 with its checksum broken), F (well-formed, checksum right, never stored), S (a backend's
own `sk-` credential, not a gateway key). Positions: the three a key belongs in (Authorization
Bearer, api-key, x-api-key; Authorization may come twice) and every other one (Basic, a trailing
word, cookie, other headers, query and path, plain and percent-encoded).

Targets: the raw echo route (what reaches the backend is recorded), the operator endpoints (no
key here has the operator scope), and chat completions of the `hostile` model and the raw
`/scripted/*` route, both at the scripted backend (tests/support/scripted_backend.py), whose
answer is the case's script: plain or streamed, cookies, `private`/`no-store`/`public`, wrong,
huge or negative usage, an event far past SSE_MAX_EVENT_BYTES, stalls, silence, resets and cuts.
Every answer carries `owner=<tenant>.<slot>.<index>.c<credentials|u>` from the request's
`x-fuzz-owner` header, so an answer replayed to another client names whom it was made for.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from urllib.parse import quote

from tests.support.scripted_backend import script_query

VALID = {"A1": "A", "A2": "A", "B1": "B"}
SHAPED = {"A1", "A2", "B1", "R", "X", "M", "F"}  # gateway-shaped values
SLOTS = ["A1", "A1", "A2", "B1", "B1", "R", "X", "M", "F", "S"]
ACCEPTED = ["bearer", "api-key", "x-api-key"]
MISPLACED = ["basic", "trailing", "cookie", "header", "query", "query-enc", "path", "path-enc"]
# Not a visible key: `Authorization: Basic base64(key:)`. The gateway judges what is shaped like
# a key, as sent or once percent-decoded (docs/SECURITY.md); an encoding it cannot see is the
# client's own text, like a key pasted into a prompt.
HIDDEN = ["basic64"]
OPERATOR = ["/_gateway/stats", "/metrics", "/cachez", "/_gateway/health"]
BODIES = ["hello", "tell me a secret", "x" * 300]  # few, so caches have something to replay
CACHING = ["", "", "public", "private", "no-store", "s-maxage=60", "max-age=60",
           "must-revalidate"]
MODEL = "hostile"  # routed to the scripted backend, its completions cached
EVENT_CAP = 65536  # SSE_MAX_EVENT_BYTES of the tenant gateways


@dataclass(frozen=True)
class TenantCase:
    index: int
    mode: str  # which gateway: "required" or "optional" (GATEWAY_AUTH)
    target: str  # "echo", "operator", "chat", "raw"
    placements: tuple[tuple[str, str], ...]  # (position, slot)
    script: str  # the backend's answer, a kind named in SCRIPTS
    caching: str  # the answer's Cache-Control
    cookie: bool  # the answer sets a cookie
    stream: bool
    body: str
    extra: int  # a number the script uses (usage value, fill size)


SCRIPTS = ["ok"] * 10 + ["usage"] * 3 + ["huge", "stall", "silent", "reset", "cut", "status"]
USAGE = [2**70, -5, "12", 1.5, None, 10**9, [3], {"n": 1}]


def tenant_case(rng: random.Random, index: int) -> TenantCase:
    mode = rng.choice(["required", "required", "optional"])
    target = rng.choice(["echo", "chat", "chat", "chat", "raw", "operator"])
    if rng.random() < 0.5:  # a clean credential: one valid key, maybe sent twice
        slot, where = rng.choice(["A1", "A2", "B1"]), rng.sample(ACCEPTED, rng.randint(1, 2))
        placements = tuple((position, slot) for position in where)
    else:
        placements = tuple((rng.choice(ACCEPTED + MISPLACED + HIDDEN), rng.choice(SLOTS))
                           for _ in range(rng.randint(0, 3)))
    return TenantCase(index, mode, target, placements, rng.choice(SCRIPTS),
                      rng.choice(CACHING), rng.random() < 0.3, rng.random() < 0.4,
                      rng.choice(BODIES), rng.randrange(len(USAGE)))


def expected_admitted(item: TenantCase) -> bool:
    """What the one-credential rule (docs/SECURITY.md) says of this request."""
    stray = any(position in MISPLACED and slot in SHAPED for position, slot in item.placements)
    placed = {slot for position, slot in item.placements
              if position in ACCEPTED and slot in SHAPED}
    if stray or len(placed) > 1:
        return False
    if placed:
        return placed <= VALID.keys()
    return item.mode == "optional"


def tenant_of(item: TenantCase) -> str:
    """The tenant an admitted request is billed to ("anon" for none)."""
    placed = [slot for position, slot in item.placements if position in ACCEPTED]
    return next((VALID[slot] for slot in placed if slot in VALID), "anon")


def forwarded_credentials(item: TenantCase) -> str:
    """The credentials an admitted request still carries to the backend, as one word ("" for
    none). The judged gateway key is removed before the caches and the backend see the request
    (stages/tenant_auth.py), so for the caches it is no credential: what counts is a backend's
    own `sk-` value in a credential header or cookie, and an encoded key the gateway cannot see.
    """
    kept = sorted(f"{position}{slot}" for position, slot in item.placements
                  if position == "basic64" or (slot not in SHAPED and position in (
                      *ACCEPTED, "basic", "trailing", "cookie")))
    return "-".join(kept)


def owner(item: TenantCase) -> str:
    slot = next((s for p, s in item.placements if p in ACCEPTED and s in VALID), "none")
    return f"{tenant_of(item)}.{slot}.{item.index}.c{forwarded_credentials(item) or 'u'}"


def render(item: TenantCase, keys: dict[str, str]) -> tuple[str, str, list[tuple[str, str]],
                                                            bytes]:
    """(method, target, headers, body) with the run's keys in their places."""
    headers: list[tuple[str, str]] = [("x-fuzz-owner", owner(item)),
                                      ("x-request-id", f"fz-{item.index}")]
    path, query = _target(item)
    for position, slot in item.placements:
        value = keys[slot]
        if position in ("query", "query-enc") or (position.startswith("path")
                                                  and item.target not in ("echo", "raw")):
            encoded = value if position != "query-enc" else quote(value, safe="").replace(
                "_", "%5F")
            query.append(f"{rotate(item.index, ['api-key', 'key', 'token', 'x'])}={encoded}")
        elif position in ("path", "path-enc") and item.target in ("echo", "raw"):
            path += "/" + (value if position == "path" else "".join(f"%{b:02X}" for b in
                                                                    value.encode()))
        else:
            headers.append(_header(position, value, item.index))
    body = b""
    method = "GET"
    if item.target == "chat":
        method = "POST"
        headers.append(("content-type", "application/json"))
        body = json.dumps({"model": MODEL, "stream": item.stream, "max_tokens": 16,
                           "messages": [{"role": "user", "content": item.body}]}).encode()
    return method, path + ("?" + "&".join(query) if query else ""), headers, body


def rotate(index: int, choices: list[str]) -> str:
    return choices[index % len(choices)]


def _header(position: str, value: str, index: int) -> tuple[str, str]:
    if position == "bearer":
        return "authorization", rotate(index, ["Bearer ", "bearer ", "Bearer  "]) + value
    if position == "basic":
        return "authorization", "Basic " + value
    if position == "basic64":
        return "authorization", "Basic " + base64.b64encode(f"{value}:".encode()).decode()
    if position == "trailing":
        return "authorization", f"Bearer {value} please"
    if position == "cookie":
        return "cookie", f"session={value}; theme=dark"
    if position == "header":
        return rotate(index, [("x-custom", value), ("referer", f"http://x/?key={value}"),
                              ("user-agent", f"client/{value}"),
                              # not X-Forwarded-*: the host replaces them before the gateway
                              ("origin", f"https://{value}.example")])
    return position, value  # api-key, x-api-key


def _target(item: TenantCase) -> tuple[str, list[str]]:
    if item.target == "echo":
        return f"/echo/tenant/{item.index}", []
    if item.target == "operator":
        return rotate(item.index, OPERATOR), []
    query = script(item)
    return (f"/scripted/t/{item.index % 3}" if item.target == "raw" else "/v1/chat/completions",
            [query])


def script(item: TenantCase) -> str:
    """The scripted backend's query for this case (tests/support/scripted_backend.py)."""
    headers = [("content-type", "text/event-stream" if item.stream else "application/json")]
    if item.caching:
        headers.append(("cache-control", item.caching))
    if item.cookie:
        headers.append(("set-cookie", "sid={h:x-fuzz-owner}; HttpOnly"))
    ident = f"t-{item.script}"  # not the index: identical cases share a cache key
    content = "owner={h:x-fuzz-owner}"
    usage = {"prompt_tokens": 3, "completion_tokens": 2}
    if item.script == "usage":
        usage = {"prompt_tokens": USAGE[item.extra], "completion_tokens": 2}
        if item.extra % 2:
            usage = {"prompt_tokens": 3, "completion_tokens": USAGE[item.extra]}
    chunks = _chunks(item, content, usage)
    if item.script == "huge":
        return script_query(ident, headers=headers, chunks=[*chunks[:1], b'data: {"x": "'],
                            fill=EVENT_CAP * (2 + item.extra), end="clean")
    if item.script in ("stall", "cut"):
        return script_query(ident, headers=headers, chunks=chunks[:1], end=item.script)
    if item.script in ("silent", "reset"):
        return script_query(ident, fail=item.script)
    if item.script == "status":
        return script_query(ident, status=rotate(item.index, [500, 503, 404, 400]),
                            headers=[("content-type", "text/plain")], chunks=[b"backend says no"])
    return script_query(ident, headers=headers, chunks=chunks)


def _chunks(item: TenantCase, content: str, usage: dict) -> list[bytes]:
    head = {"id": "chatcmpl-fz", "created": 1, "model": MODEL}
    if not item.stream:
        return [json.dumps({**head, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "finish_reason": "stop",
             "message": {"role": "assistant", "content": content}}]}).encode()]
    chunk = {**head, "object": "chat.completion.chunk"}
    events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                            "content": content}}]},
              {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
              {**chunk, "choices": [], "usage": usage}]
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
