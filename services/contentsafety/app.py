"""Local Azure AI Content Safety: text:analyze and text:shieldPrompt with Azure's shapes.

Run: python -m uvicorn app:app --host 127.0.0.1 --port 8003 --no-access-log

    POST /contentsafety/text:analyze?api-version=2024-09-01
         {"text", "categories"?, "outputType"?: "FourSeverityLevels" | "EightSeverityLevels"}
         -> {"blocklistsMatch": [], "categoriesAnalysis": [{"category", "severity"}]}
    POST /contentsafety/text:shieldPrompt?api-version=2024-09-01
         {"userPrompt", "documents"?} -> {"userPromptAnalysis": {"attackDetected"},
                                          "documentsAnalysis": [{"attackDetected"}]}

What it flags is up to the tests (rules, from CS_RULES or POST /_control):
    {"harm": {"word": ["Violence", 6]}, "attacks": ["ignore previous instructions"]}
a text containing `word` (case-insensitive) scores that severity in that category (rounded
down to 0/2/4/6 for FourSeverityLevels, the default); a prompt or document containing an
attack phrase has attackDetected true. POST /_control also takes "fail" (an HTTP status every
call answers, e.g. 503; null to stop) and GET /_control answers the calls counted so far.

Authentication as the service does it: `Ocp-Apim-Subscription-Key: CS_KEY` or
`Authorization: Bearer CS_TOKEN`; anything else is 401. GET /msi/token is a managed-identity
endpoint of App Service's shape (IDENTITY_ENDPOINT / IDENTITY_HEADER, api-version 2019-08-01)
handing out CS_TOKEN, so azure-identity's real code path gets the token locally.
`api-version` is required (400 without, 404 for one the service does not have). More than
CS_RPS calls in a second answer 429 with Retry-After.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

API_VERSIONS = {"2023-10-01", "2024-09-01"}
CATEGORIES = ("Hate", "SelfHarm", "Sexual", "Violence")
MAX_TEXT = 10_000
KEY = os.environ.get("CS_KEY", "")
TOKEN = os.environ.get("CS_TOKEN", "")
IDENTITY_HEADER = os.environ.get("CS_IDENTITY_HEADER", "")
RPS = float(os.environ.get("CS_RPS", "1000"))

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
state: dict[str, Any] = {"rules": json.loads(os.environ.get("CS_RULES") or "{}"),
                         "fail": None, "calls": {"analyze": 0, "shieldPrompt": 0, "401": 0,
                                                 "429": 0}}
window: dict[str, float] = {"second": 0.0, "count": 0}


def error(status: int, code: str, message: str, **headers: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers or None)


def refusal(request: Request) -> Response | None:
    """The answer to give instead of the operation's, if any: version, auth, limits, faults."""
    version = request.query_params.get("api-version")
    if version is None:
        return error(400, "MissingApiVersionParameter", "The api-version query parameter is "
                                                        "required.")
    if version not in API_VERSIONS:
        return error(404, "UnsupportedApiVersion", f"api-version {version} is not supported.")
    key = request.headers.get("ocp-apim-subscription-key")
    bearer = request.headers.get("authorization", "")
    if not ((KEY and key == KEY) or (TOKEN and bearer == f"Bearer {TOKEN}")):
        state["calls"]["401"] += 1
        return error(401, "PermissionDenied", "Access denied: missing or invalid key or token.")
    now = time.time()
    if int(now) != window["second"]:
        window["second"], window["count"] = int(now), 0
    window["count"] += 1
    if window["count"] > RPS:
        state["calls"]["429"] += 1
        return error(429, "TooManyRequests", "Rate limit exceeded.", **{"Retry-After": "1"})
    if state["fail"]:
        return error(int(state["fail"]), "ServiceUnavailable", "Simulated failure.")
    return None


async def body_of(request: Request) -> dict | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def severity(text: str, category: str, eight: bool) -> int:
    lowered = text.lower()
    found = 0
    for word, (cat, level) in state["rules"].get("harm", {}).items():
        if cat == category and word.lower() in lowered:
            found = max(found, int(level))
    return found if eight else found - found % 2


def attacked(text: str) -> bool:
    lowered = text.lower()
    return any(phrase.lower() in lowered for phrase in state["rules"].get("attacks", []))


@app.post("/contentsafety/text:analyze")
async def analyze(request: Request) -> Response:
    if (refused := refusal(request)) is not None:
        return refused
    state["calls"]["analyze"] += 1
    body = await body_of(request)
    text = body.get("text") if body else None
    if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
        return error(400, "InvalidRequestBody", f"text must be 1-{MAX_TEXT} characters.")
    categories = body.get("categories") or list(CATEGORIES)
    if not isinstance(categories, list) or set(categories) - set(CATEGORIES):
        return error(400, "InvalidRequestBody", f"categories must be among {CATEGORIES}.")
    eight = body.get("outputType") == "EightSeverityLevels"
    return JSONResponse({"blocklistsMatch": [], "categoriesAnalysis": [
        {"category": c, "severity": severity(text, c, eight)} for c in categories]})


@app.post("/contentsafety/text:shieldPrompt")
async def shield_prompt(request: Request) -> Response:
    if (refused := refusal(request)) is not None:
        return refused
    state["calls"]["shieldPrompt"] += 1
    body = await body_of(request)
    prompt = body.get("userPrompt", "") if body else None
    documents = body.get("documents", []) if body else None
    if not isinstance(prompt, str) or not isinstance(documents, list) \
            or not all(isinstance(d, str) for d in documents) \
            or len(prompt) + sum(map(len, documents)) > MAX_TEXT:
        return error(400, "InvalidRequestBody", "userPrompt and documents must be text, "
                                                f"{MAX_TEXT} characters in all.")
    return JSONResponse({"userPromptAnalysis": {"attackDetected": attacked(prompt)},
                         "documentsAnalysis": [{"attackDetected": attacked(d)}
                                               for d in documents]})


@app.get("/msi/token")
async def msi_token(request: Request) -> Response:
    """App Service's managed-identity endpoint (2019-08-01), for azure-identity."""
    if not IDENTITY_HEADER or request.headers.get("x-identity-header") != IDENTITY_HEADER:
        return error(401, "Unauthorized", "X-IDENTITY-HEADER is missing or wrong.")
    resource = request.query_params.get("resource", "")
    return JSONResponse({"access_token": TOKEN, "expires_on": str(int(time.time()) + 3600),
                         "resource": resource, "token_type": "Bearer"})


@app.post("/_control")
async def control(request: Request) -> Response:
    body = await body_of(request) or {}
    if "harm" in body or "attacks" in body:
        state["rules"] = {"harm": body.get("harm", {}), "attacks": body.get("attacks", [])}
    if "fail" in body:
        state["fail"] = body["fail"]
    return JSONResponse({"rules": state["rules"], "fail": state["fail"]})


@app.get("/_control")
async def counts() -> dict:
    return {"calls": state["calls"], "rules": state["rules"], "fail": state["fail"]}


@app.get("/healthz")
async def healthz() -> dict:
    return {"ok": True, "service": "contentsafety-sim"}
