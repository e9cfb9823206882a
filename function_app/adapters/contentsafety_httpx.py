"""Azure AI Content Safety over HTTP (httpx): text:analyze and text:shieldPrompt.

    POST {endpoint}/contentsafety/text:analyze?api-version=2024-09-01
         {"text", "categories", "outputType": "FourSeverityLevels"}
         -> {"categoriesAnalysis": [{"category", "severity"}]}
    POST {endpoint}/contentsafety/text:shieldPrompt?api-version=2024-09-01
         {"userPrompt", "documents"}
         -> {"userPromptAnalysis": {"attackDetected"}, "documentsAnalysis": [{"attackDetected"}]}

Authentication: an Entra token for https://cognitiveservices.azure.com/.default from
azure-identity (the managed identity in Azure), kept until five minutes before it expires, or
the resource key in `Ocp-Apim-Subscription-Key`. Every failure becomes SafetyUnavailable or
SafetyRefused; their details name no URL or secret (/healthz shows them).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ..guardrails.safety import SafetyRefused, SafetyUnavailable, Shielded

API_VERSION = "2024-09-01"
SCOPE = "https://cognitiveservices.azure.com/.default"
TOKEN_MARGIN_S = 300


class HttpxContentSafety:
    def __init__(self, endpoint: str, *, key: str = "", credential: Any = None,
                 timeout_s: float = 2.0, transport: httpx.AsyncBaseTransport | None = None):
        if not key and credential is None:
            raise ValueError("Content Safety needs a key or a credential")
        self._base = endpoint.rstrip("/") + "/contentsafety/text:"
        self._key, self._credential = key, credential
        self._token: tuple[str, float] | None = None
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
        headers = {"content-type": "application/json", **await self._auth()}
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
            self._token = None  # a fresh one next time, in case it was revoked
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

    async def _auth(self) -> dict[str, str]:
        if self._key:
            return {"Ocp-Apim-Subscription-Key": self._key}
        now = time.time()
        if self._token is None or self._token[1] - TOKEN_MARGIN_S <= now:
            try:
                token = await self._credential.get_token(SCOPE)
            except Exception as exc:  # azure-identity raises several unrelated types
                raise SafetyRefused(f"no Entra token ({type(exc).__name__})") from None
            self._token = (token.token, float(token.expires_on))
        return {"authorization": f"Bearer {self._token[0]}"}

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._credential is not None:
            await self._credential.close()


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
                        transport: httpx.AsyncBaseTransport | None = None
                        ) -> HttpxContentSafety | None:
    """The client for CONTENT_SAFETY_ENDPOINT (None when it is empty)."""
    if not endpoint:
        return None
    if auth == "key":
        return HttpxContentSafety(endpoint, key=key, timeout_s=timeout_s, transport=transport)
    from azure.identity.aio import DefaultAzureCredential  # the managed identity in Azure

    return HttpxContentSafety(endpoint, credential=DefaultAzureCredential(), timeout_s=timeout_s,
                              transport=transport)
