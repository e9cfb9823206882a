"""Azure AI Content Safety over HTTP (httpx): text:analyze and text:shieldPrompt.

    POST {endpoint}/contentsafety/text:analyze?api-version=2024-09-01
         {"text", "categories", "outputType": "FourSeverityLevels"}
         -> {"categoriesAnalysis": [{"category", "severity"}]}
    POST {endpoint}/contentsafety/text:shieldPrompt?api-version=2024-09-01
         {"userPrompt", "documents"}
         -> {"userPromptAnalysis": {"attackDetected"}, "documentsAnalysis": [{"attackDetected"}]}

Authentication: an Entra token for https://cognitiveservices.azure.com/.default from the
gateway's one token cache (aoai/tokens.py over azure-identity: renewed before it expires, and a
token the service refused is never sent again), or the resource key in
`Ocp-Apim-Subscription-Key`. Every failure becomes SafetyUnavailable or
SafetyRefused; their details name no URL or secret (/healthz shows them).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence

import httpx

from ..aoai.tokens import TokenProvider
from ..guardrails.safety import SafetyRefused, SafetyUnavailable, Shielded

API_VERSION = "2024-09-01"
SCOPE = "https://cognitiveservices.azure.com/.default"


class HttpxContentSafety:
    def __init__(self, endpoint: str, *, key: str = "", tokens: TokenProvider | None = None,
                 timeout_s: float = 2.0, transport: httpx.AsyncBaseTransport | None = None):
        if not key and tokens is None:
            raise ValueError("Content Safety needs a key or a token provider")
        self._base = endpoint.rstrip("/") + "/contentsafety/text:"
        self._key, self._tokens = key, tokens
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), transport=transport)

    async def analyze(self, text: str, categories: Sequence[str]) -> Mapping[str, int]:
        body = await self._post("analyze", {"text": text, "categories": list(categories),
                                            "outputType": "FourSeverityLevels"})
        found: dict[str, int] = {}
        for item in body.get("categoriesAnalysis") or []:
            if isinstance(item, dict) and isinstance(item.get("severity"), int):
                found[str(item.get("category"))] = item["severity"]
        return found

    async def shield(self, user_prompt: str, documents: Sequence[str]) -> Shielded:
        body = await self._post("shieldPrompt", {"userPrompt": user_prompt,
                                                 "documents": list(documents)})
        user = (body.get("userPromptAnalysis") or {}).get("attackDetected") is True
        docs = tuple(isinstance(d, dict) and d.get("attackDetected") is True
                     for d in body.get("documentsAnalysis") or [])
        return Shielded(user, docs)

    async def _post(self, operation: str, payload: dict) -> dict:
        auth, token = await self._auth()
        headers = {"content-type": "application/json", **auth}
        try:
            async with asyncio.timeout(self._timeout_s):  # whatever the transport does
                answer = await self._client.post(f"{self._base}{operation}",
                                                 params={"api-version": API_VERSION},
                                                 headers=headers, content=json.dumps(payload))
                await answer.aread()
        except (httpx.TimeoutException, TimeoutError):
            raise SafetyUnavailable(f"{operation}: timed out") from None
        except Exception as exc:  # the I/O boundary: any transport failure is "unavailable"
            raise SafetyUnavailable(f"{operation}: {type(exc).__name__}") from None
        if answer.status_code in (401, 403):
            if token is not None and self._tokens is not None:
                self._tokens.invalidate(SCOPE, token)  # never sent again; a new one next time
            raise SafetyRefused(f"{operation}: HTTP {answer.status_code} {_code(answer)}")
        if answer.status_code == 429 or answer.status_code >= 500:
            raise SafetyUnavailable(f"{operation}: HTTP {answer.status_code}",
                                    _retry_after(answer))
        if answer.status_code != 200:
            raise SafetyUnavailable(f"{operation}: HTTP {answer.status_code} {_code(answer)}")
        try:
            decoded = answer.json()
        except ValueError:
            raise SafetyUnavailable(f"{operation}: answer is not JSON") from None
        if not isinstance(decoded, dict):
            raise SafetyUnavailable(f"{operation}: answer is not a JSON object")
        return decoded

    async def _auth(self) -> tuple[dict[str, str], str | None]:
        """The auth header, and the Entra token in it (None with a key)."""
        if self._key or self._tokens is None:
            return {"Ocp-Apim-Subscription-Key": self._key}, None
        try:
            token = await self._tokens.token(SCOPE)
        except Exception as exc:  # the token cache's TokenUnavailable, or a fake's error
            raise SafetyRefused(f"no Entra token ({type(exc).__name__})") from None
        return {"authorization": f"Bearer {token}"}, token

    async def aclose(self) -> None:
        await self._client.aclose()
        close = getattr(self._tokens, "close", None)
        if close is not None:
            await close()


def _code(answer: httpx.Response) -> str:
    """The service's error code (never its message, which may echo input)."""
    try:
        code = answer.json().get("error", {}).get("code", "")
    except (ValueError, AttributeError):
        return ""
    return str(code)[:64] if isinstance(code, str) else ""


def _retry_after(answer: httpx.Response) -> float:
    value = answer.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), 60.0)
    except ValueError:
        return 1.0


def open_content_safety(endpoint: str, auth: str, key: str, timeout_s: float,
                        transport: httpx.AsyncBaseTransport | None = None,
                        tokens: TokenProvider | None = None) -> HttpxContentSafety | None:
    """The client for CONTENT_SAFETY_ENDPOINT (None when it is empty); `tokens` (the managed
    identity's, for auth "entra") is made by the wiring."""
    if not endpoint:
        return None
    if auth == "key":
        return HttpxContentSafety(endpoint, key=key, timeout_s=timeout_s, transport=transport)
    return HttpxContentSafety(endpoint, tokens=tokens, timeout_s=timeout_s, transport=transport)
