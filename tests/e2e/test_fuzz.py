"""The hostile-input fuzzer against the real stack (issue 14).

FUZZ_COUNT requests (2,000 by default; `make fuzz` sends 50,000) from tests/fuzz/generate.py,
seeded by FUZZ_SEED, over kept-alive raw connections to a gateway on the local host with a
`/echo/*` route to a recording echo backend beside the seed and OpenAI routes. It asserts: no
5xx, no connection reset or hang, no traceback and no secret in the gateway's log or in its
error bodies (nor a backend's address), and every
target the echo backend received is under the route's upstream prefix, without a dot segment,
a function key or a client-written X-Forwarded-For; and no cached echo (X-Cache: HIT, from
paths the echo backend answers as cacheable without Vary) reaches a request it does not fit:
made for another request's cookie or credentials, another Accept-Encoding, or served to a
request that should have bypassed. A finding names its seed and index;
`case(seed, index)` rebuilds that one request.

Issue 22 round two adds two gateways with GATEWAY_AUTH (required, optional) on Azurite, keys of
two tenants made through the admin code, and the hostile scripted backend (conftest_fuzz.py):
multi-tenant cases with keys in every position and hostile answers (tests/fuzz/tenants.py,
judged by tests/fuzz/tenant_checks.py) and concurrent bursts on small budgets and TPM limits
(tests/fuzz/bursts.py). It also fails on a gateway key reaching either backend, a traceback or
a key in either gateway's log, and the gateway dying.
"""

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

import pytest

from function_app.cache.inputs import accepted_codings
from function_app.core.errors import InvalidPath
from function_app.core.paths import parse_path, stays_under
from function_app.http.headers import Headers
from tests.fuzz.bursts import Burst
from tests.fuzz.generate import Case, case
from tests.fuzz.tenants import TenantCase
from tests.support.rawhttp import Connection, Reset, build
from tests.support.waiting import files_settled

from .conftest import ECHO_UPSTREAM, FUZZ_SECRETS
from .fuzz_tenants import keys_received, log_findings, send_burst, send_tenant_case

pytest_plugins = ["tests.e2e.conftest_fuzz"]
pytestmark = pytest.mark.e2e
COUNT = int(os.environ.get("FUZZ_COUNT", "2000"))
SEED = int(os.environ.get("FUZZ_SEED", "1414"))
WORKERS = int(os.environ.get("FUZZ_WORKERS", "8"))
# FUZZ_INDICES=251,9694: replay only these indices of FUZZ_SEED (a finding's seed and index)
ONLY = [int(i) for i in os.environ.get("FUZZ_INDICES", "").split(",") if i.strip()]
INDICES = ONLY or range(COUNT)
REQUEST_TIMEOUT_S = 30


@dataclass
class Findings:
    statuses: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    abandoned: int = 0
    cache_hits: int = 0
    backend_5xx: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)  # indices of each kind
    tenant_statuses: Counter = field(default_factory=Counter)
    burst_requests: int = 0
    burst_admitted: int = 0

    def add(self, item: Case | TenantCase | Burst, what: str) -> None:
        if isinstance(item, Case):
            self.problems.append(f"seed={SEED} index={item.index} {item.method} "
                                 f"{item.target[:120]!r}: {what}")
        else:
            self.problems.append(f"seed={SEED} index={item.index} {type(item).__name__}: {what}")


def made_by_gateway(response) -> bool:
    """A 5xx the gateway made: its JSON error shape, or no X-Request-ID at all (the host failed
    before the pipeline ran). A backend's own 5xx passes through with the gateway's request id
    and the backend's body; it is reported, not a finding against the gateway."""
    return response.error_code() is not None or response.header("x-request-id") is None


def leaks(response, forbidden: list[bytes]) -> list[bytes]:
    """What an error body made by the gateway must never carry: a traceback, a secret, or the
    address of a backend. (A backend's own answer, such as the echo's, may name itself.)"""
    if response.error_code() is None:
        return []
    return [item for item in forbidden if item in response.body]


# Requests carrying one of these (non-empty) must bypass the cache; a cached echo carrying one
# was made for someone else (cache/inputs.py, CacheConfig.credential_headers).
BYPASSING = ("cookie", "authorization", "api-key", "x-api-key", "forwarded", "x-original-url",
             "x-http-method-override")
CREDENTIALS = BYPASSING[:4]


def poisoned(item: Case, response) -> str | None:
    """Why a cache hit does not fit the request it answered, or None."""
    if response.header("x-cache") != "HIT":
        return None
    sent = {k.decode("latin-1").lower(): v.decode("latin-1").strip() for k, v in item.headers}
    if found := [name for name in BYPASSING if sent.get(name)]:
        return f"a cache hit for a request with {found}, which must bypass"
    try:
        echoed = json.loads(response.body)["headers"]
    except (ValueError, KeyError, TypeError):
        return None  # HEAD, or not an echo
    if found := [name for name in CREDENTIALS if (echoed.get(name) or "").strip()]:
        return f"a cached echo carries another request's {found}"
    theirs = accepted_codings(Headers([("accept-encoding", echoed.get("accept-encoding", ""))]))
    ours = accepted_codings(Headers([("accept-encoding", sent["accept-encoding"])]
                                    if "accept-encoding" in sent else []))
    # Bytes outside ASCII reach the backend re-encoded (the echo shows them so), so only ASCII
    # values can be compared with what the client sent.
    if ours.isascii() and theirs != ours:
        return f"a cached echo made for Accept-Encoding {theirs!r} served for {ours!r}"
    return None


@dataclass
class Run:
    """What every worker shares: the gateways' ports, the keys, the admin code, the findings."""

    port: int
    tenant_ports: dict[str, int]
    keys: dict[str, str]
    admin: object
    findings: Findings
    forbidden: list[bytes]


async def fire(run: Run, worker: int) -> None:
    connection = Connection(run.port)
    tenants = {mode: Connection(port) for mode, port in run.tenant_ports.items()}
    findings = run.findings
    for index in INDICES[worker::WORKERS]:
        item = case(SEED, index)
        findings.kinds[type(item).__name__] += 1
        if isinstance(item, TenantCase):
            response = await send_tenant_case(tenants[item.mode], item, run.keys, findings.add)
            findings.tenant_statuses[response.status if response else 0] += 1
            continue
        if isinstance(item, Burst):
            answers = await send_burst(run.tenant_ports["required"], item, run.admin, SEED,
                                       findings.add)
            findings.burst_requests += len(answers)
            findings.burst_admitted += sum(a.status == 200 for a in answers)
            continue
        await one_case(connection, item, findings, run.forbidden)
    await connection.close()
    for tenant in tenants.values():
        await tenant.close()


async def one_case(connection: Connection, item: Case, findings: Findings,
                   forbidden: list[bytes]) -> None:
    request = build(item.method, item.target, list(item.headers), item.body,
                    chunked=item.chunked)
    if item.abandon:
        await connection.send_partial(request[:len(request) - len(item.body) // 2 - 1])
        findings.abandoned += 1
        return
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            response = await connection.exchange(request, head=item.method == "HEAD")
    except Reset as exc:
        findings.add(item, f"connection reset: {exc}")
        return
    except TimeoutError:
        await connection.close()
        findings.add(item, "no answer within the timeout")
        return
    findings.statuses[response.status] += 1
    if 300 <= response.status < 400:
        findings.add(item, f"{response.status} to {response.header('location')!r}")
    findings.cache_hits += response.header("x-cache") == "HIT"
    if problem := poisoned(item, response):
        findings.add(item, problem)
    if leaked := leaks(response, forbidden):
        findings.add(item, f"error body carries {leaked}")
    if response.status >= 500:
        if made_by_gateway(response):
            findings.add(item, f"{response.status} {response.body[:200]!r}")
        else:
            findings.backend_5xx.append(f"{item.index}: {response.status}")


def check_echo_records(lines: list[str], findings: Findings) -> int:
    for line in lines:
        seen = json.loads(line)
        path, _, query = seen["target"].partition("?")
        problem = None
        try:
            parse_path(path)
        except InvalidPath:
            problem = "a path the rules refuse"
        if not stays_under(path, ECHO_UPSTREAM) or not path.startswith(ECHO_UPSTREAM):
            problem = "outside the route's upstream prefix"
        names = [unquote_plus(p.split("=", 1)[0], encoding="latin-1").strip().lower()
                 for p in query.split("&")]
        if "code" in names or FUZZ_SECRETS["function_key"] in line:
            problem = "a function key reached the backend"
        if seen["headers"].get("x-forwarded-for") != "127.0.0.1":
            problem = f"client-chosen X-Forwarded-For {seen['headers'].get('x-forwarded-for')!r}"
        if problem:
            findings.problems.append(f"echo backend received {seen['target'][:160]!r}: {problem}")
    return len(lines)


async def test_fuzz_finds_nothing(hostile_gateway, echo_backend, backends, tenant_gateways,
                                  scripted_backend, fuzz_keys, fuzz_admin):
    record = echo_backend.record
    before = len(record.read_text().splitlines()) if record.exists() else 0
    findings = Findings()
    forbidden = [b"Traceback", b'File "', *(s.encode() for s in FUZZ_SECRETS.values()),
                 *(f"127.0.0.1:{p.port}".encode() for p in (echo_backend, *backends.values()))]
    run = Run(hostile_gateway.port, {m: p.port for m, p in tenant_gateways.items()},
              fuzz_keys, fuzz_admin, findings, forbidden)
    started = time.monotonic()
    await asyncio.gather(*(fire(run, w) for w in range(WORKERS)))
    elapsed = time.monotonic() - started
    # Abandoned requests: the gateways log them once they notice; wait until they have.
    await files_settled([record, *(p.log for p in (hostile_gateway, *tenant_gateways.values()))])
    lines = record.read_text().splitlines()[before:] if record.exists() else []
    forwarded = check_echo_records(lines, findings)
    findings.problems += [f"a backend received a gateway key: {text}"
                          for text in keys_received(lines, scripted_backend.url)]
    gateways = {"gateway": hostile_gateway, **tenant_gateways}
    secrets = {**FUZZ_SECRETS, **{slot: key for slot, key in fuzz_keys.items()
                                  if key.startswith("gw_")}}
    for name, proc in gateways.items():
        findings.problems += log_findings(name, proc.log.read_text(errors="replace"), secrets)
    sent = sum(findings.statuses.values()) + findings.abandoned
    print(f"\nfuzz seed={SEED} count={COUNT} in {elapsed:.0f} s: indices {dict(findings.kinds)}"
          f"; hostile gateway: statuses {dict(sorted(findings.statuses.items()))}, abandoned "
          f"{findings.abandoned}, echo received {forwarded}, backend-made 5xx "
          f"{findings.backend_5xx[:10]}, cache hits {findings.cache_hits}; tenant gateways: "
          f"statuses {dict(sorted(findings.tenant_statuses.items()))}; bursts: "
          f"{findings.burst_requests} requests, {findings.burst_admitted} admitted; "
          f"problems {len(findings.problems)}")
    for name, proc in gateways.items():
        assert proc.popen.poll() is None, f"the {name} died"
    assert findings.problems == [], "\n".join(findings.problems[:40])
    assert sent == findings.kinds["Case"]
    assert sum(findings.tenant_statuses.values()) == findings.kinds["TenantCase"]
    if not ONLY:
        assert forwarded > 0  # the echo route was exercised: the prefix check means something
        assert findings.burst_admitted > 0  # bursts were admitted: their bounds were tested
