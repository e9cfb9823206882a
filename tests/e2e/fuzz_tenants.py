"""The fuzzer's multi-tenant side (test_fuzz.py): send a TenantCase or a Burst, judge the answers,
and check what the backends received and what the gateways logged.

Not a test module: test_fuzz.py calls these with its findings' `add(item, text)`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable

import httpx

from tests.fuzz.admin import Admin
from tests.fuzz.bursts import Answer, Burst, judge
from tests.fuzz.tenant_checks import key_in, problems
from tests.fuzz.tenants import TenantCase, render
from tests.support.rawhttp import Connection, RawResponse, Reset, build

REQUEST_TIMEOUT_S = 30
ONLY_PRINT = bool(os.environ.get("FUZZ_INDICES"))  # a replay shows each burst's answers
Add = Callable[[object, str], None]


async def send_tenant_case(connection: Connection, item: TenantCase, keys: dict[str, str],
                           add: Add) -> RawResponse | None:
    method, target, headers, body = render(item, keys)
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            response = await connection.exchange(build(method, target.encode("latin-1"), raw,
                                                       body))
    except Reset as exc:
        add(item, f"connection reset: {exc}")
        return None
    except TimeoutError:
        await connection.close()
        add(item, "no answer within the timeout")
        return None
    for problem in problems(item, response, keys):
        add(item, problem)
    return response


async def send_burst(port: int, item: Burst, admin: Admin, seed: int, add: Add
                     ) -> list[Answer]:
    """A fresh tenant and key with the burst's limit, then `count` requests at once."""
    tenant = f"fz{item.kind}-{seed}-{item.index}"
    if item.kind == "budget":
        await admin.run("tenants", "set", tenant, "--daily-tokens", str(item.limit))
        key = await admin.key(tenant)
    else:
        key = await admin.key(tenant, "--tpm", str(item.limit))
    request = build("POST", b"/v1/chat/completions?" + item.query().encode(),
                    [(b"content-type", b"application/json"), (b"x-gateway-cache", b"skip"),
                     (b"authorization", b"Bearer " + key.encode())],
                    json.dumps(item.body).encode())

    async def one() -> Answer:
        connection = Connection(port)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                response = await connection.exchange(request)
        except (Reset, TimeoutError) as exc:
            return Answer(0, f"no answer: {type(exc).__name__}", None)
        finally:
            await connection.close()
        return Answer(response.status, response.error_code(), response.header("retry-after"))

    started = time.monotonic()
    answers = await asyncio.gather(*(one() for _ in range(item.count)))
    if ONLY_PRINT:
        print(f"burst {item}: {sorted(Counter((a.status, a.code) for a in answers).items())}")
    for problem in judge(item, answers, time.monotonic() - started):
        add(item, f"burst {item.kind} limit {item.limit} x{item.count}: {problem}")
    return answers


def keys_received(echo_lines: list[str], scripted_url: str) -> list[str]:
    """Every request a backend received holding a gateway-shaped key, as written or once
    percent-decoded (the echo's record, the scripted backend's /_seen)."""
    seen = httpx.get(f"{scripted_url}/_seen", timeout=30).json()
    texts = [*echo_lines, *(json.dumps(entry) for entry in seen)]
    return [text[:300] for text in texts if key_in(text)]


def log_findings(name: str, log: str, secrets: dict[str, str]) -> list[str]:
    found = []
    if "Traceback" in log:
        at = log.index("Traceback")
        found.append(f"traceback in the {name} log:\n" + log[max(0, at - 600):at + 3000])
    found += [f"{slot} in the {name} log" for slot, secret in secrets.items() if secret in log]
    return found
