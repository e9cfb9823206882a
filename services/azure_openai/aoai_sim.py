"""A local Azure OpenAI resource (and the managed-identity endpoint it trusts), for tests.

Run: python -m uvicorn aoai_sim:app --host 127.0.0.1 --port 8010 --no-access-log  (cwd: this folder)

Azure's surface, answered by the Python simulator's generation (services/python/app.py, same
token counts, same TTFT_MS/TOKEN_MS pacing):
- POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}?api-version=
  (api-version required: 404 without it, as Azure answers) and POST /openai/v1/{same} with the
  deployment as the body's model; an unknown deployment is 404 DeploymentNotFound;
- auth: `api-key: <SIM_API_KEY>`, or `Authorization: Bearer <token>` from /msi/token (identity.py)
  whose audience is https://cognitiveservices.azure.com and which has not expired; else 401;
- answers carry prompt_filter_results, content_filter_results, x-ratelimit-remaining-* and
  usage with prompt_tokens_details.cached_tokens (the whole prompt, when the same prompt was
  seen before on the deployment) and completion_tokens_details.reasoning_tokens (0);
- a prompt containing SIM_FILTER_WORD is refused: 400 code content_filter (not retried);
- POST /_sim/throttle {"deployment", "seconds"}: the deployment answers 429 with retry-after-ms
  (the time left) and retry-after until then, like an exhausted provisioned deployment;
- POST /_sim/revoke: every token issued so far is refused (401) from now on;
- GET /_sim/requests: what arrived (deployment, time, auth kind, token iat/exp, status, and
  whether any client credential header other than the accepted one was present).

Env: SIM_DEPLOYMENTS (comma list), SIM_API_KEY (empty: keys refused), SIM_IDENTITY_HEADER,
SIM_TOKEN_LIFETIME_S, SIM_FILTER_WORD, plus the Python simulator's TTFT_MS, TOKEN_MS, ...
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import app as openai_sim
import identity
import shapes

AUDIENCE = "https://cognitiveservices.azure.com"
_PATH = re.compile(r"^/openai/(?:deployments/([A-Za-z0-9._-]+)|v1)/"
                   r"(chat/completions|completions|embeddings)$")
CREDENTIAL_HEADERS = (b"authorization", b"api-key", b"x-api-key")
STATE: dict[str, Any] = {"throttled": {}, "requests": [], "prompts": set(), "revoked": 0.0}


def deployments() -> set[str]:
    return {d.strip() for d in os.environ.get("SIM_DEPLOYMENTS", "gpt-4o").split(",") if d}


def azure_error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers or None)


def authenticate(headers: dict[bytes, bytes], record: dict) -> JSONResponse | None:
    """None when the api-key or bearer token is good; the 401 otherwise."""
    key, auth = headers.get(b"api-key"), headers.get(b"authorization", b"").decode()
    expected = os.environ.get("SIM_API_KEY", "")
    if key is not None:
        record["auth"] = "key"
        if expected and key.decode() == expected:
            return None
        return azure_error(401, "401", "Access denied due to invalid subscription key.")
    if auth.startswith("Bearer "):
        record["auth"] = "bearer"
        checked = identity.check(auth[7:], AUDIENCE)
        if checked.claims:
            record.update(iat=checked.claims["iat"], exp=checked.claims["exp"],
                          oid=checked.claims["oid"])
        if checked.ok and checked.claims["iat"] >= STATE["revoked"]:
            return None
        if checked.ok:
            return azure_error(401, "401", "Unauthorized. Token revoked.")
        return azure_error(401, "401", f"Unauthorized. {checked.reason}.")
    record["auth"] = "none"
    return azure_error(401, "401", "Access denied due to missing subscription key or token.")


def refusal(deployment: str, body: dict, record: dict) -> JSONResponse | None:
    """A throttled deployment's 429 or a content-filter 400, else None."""
    left = STATE["throttled"].get(deployment, 0) - time.time()
    if left > 0:
        return azure_error(429, "429", "Requests to this deployment have exceeded the rate "
                           "limit of your current pricing tier.",
                           **{"retry-after-ms": str(math.ceil(left * 1000)),
                              "retry-after": str(math.ceil(left)),
                              "x-ratelimit-remaining-requests": "0"})
    word = os.environ.get("SIM_FILTER_WORD", "forbidden-topic")
    if word and word in json.dumps(body):
        return JSONResponse(shapes.content_filter_error(), status_code=400)
    return None


async def read_body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def azure_call(scope, receive, send, found: re.Match) -> None:
    raw = await read_body(receive)
    headers = dict(scope["headers"])
    record: dict[str, Any] = {"at": time.time(), "path": scope["path"],
                              "credentials": sorted(h.decode() for h in CREDENTIAL_HEADERS
                                                    if h in headers)}
    STATE["requests"].append(record)
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = None
    deployment = found.group(1) or (body or {}).get("model")
    record["deployment"] = deployment
    answer = await _checked(found, query, headers, body, deployment, record)
    if answer is not None:
        record["status"] = answer.status_code
        return await answer(scope, receive, send)
    record["status"] = 200
    prompt_key = (deployment, json.dumps(body.get("messages") or body.get("prompt")
                                         or body.get("input"), sort_keys=True))
    cached = prompt_key in STATE["prompts"]
    STATE["prompts"].add(prompt_key)
    inner = {**scope, "path": "/v1/" + found.group(2), "raw_path": None, "query_string": b""}
    payload = json.dumps({**body, "model": deployment}).encode()
    sent = False

    async def inner_receive():
        nonlocal sent
        if sent:  # the body was read: what comes next is the client leaving, if it does
            return await receive()
        sent = True
        return {"type": "http.request", "body": payload, "more_body": False}

    await openai_sim.app(inner, inner_receive, shapes.augmenting_send(send, cached))


async def _checked(found, query, headers, body, deployment, record) -> JSONResponse | None:
    if found.group(1) is not None and not query.get("api-version"):
        return azure_error(404, "404", "Resource not found")
    denied = authenticate(headers, record)
    if denied is not None:
        return denied
    if not isinstance(body, dict):
        return azure_error(400, "BadRequest", "The request body is not valid JSON.")
    if deployment not in deployments():
        return azure_error(404, "DeploymentNotFound", "The API deployment for this resource "
                           "does not exist.")
    return refusal(deployment, body, record)


async def msi_token(request: Request) -> JSONResponse:
    status, body = identity.token_answer(dict(request.query_params),
                                         request.headers.get("x-identity-header"))
    return JSONResponse(body, status_code=status)


async def throttle(request: Request) -> JSONResponse:
    spec = await request.json()
    STATE["throttled"][spec["deployment"]] = time.time() + float(spec["seconds"])
    return JSONResponse({"until": STATE["throttled"][spec["deployment"]]})


async def revoke(request: Request) -> JSONResponse:
    """Every token issued until now is refused from now on (a key rotation, a revoked grant)."""
    STATE["revoked"] = time.time()
    return JSONResponse({"revoked_before": STATE["revoked"]})


async def requests_seen(request: Request) -> JSONResponse:
    return JSONResponse(STATE["requests"])


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "service": "azure-openai-sim"})


control = Starlette(routes=[
    Route("/healthz", healthz), Route("/msi/token", msi_token),
    Route("/_sim/throttle", throttle, methods=["POST"]), Route("/_sim/requests", requests_seen),
    Route("/_sim/revoke", revoke, methods=["POST"]),
])


async def app(scope, receive, send) -> None:
    if scope["type"] == "http" and scope["method"] == "POST":
        found = _PATH.match(scope["path"])
        if found is not None:
            return await azure_call(scope, receive, send, found)
    await control(scope, receive, send)
