"""The Content Safety client's wire: paths, api-version, auth headers, token reuse, errors."""

import json

import httpx
import pytest

from function_app.adapters.contentsafety_httpx import SCOPE, HttpxContentSafety
from function_app.aoai.tokens import CachedTokens, Token
from function_app.core.clock import SystemClock
from function_app.guardrails.safety import SafetyRefused, SafetyUnavailable

ENDPOINT = "https://cs-secret-name.cognitiveservices.azure.com/"


class Source:
    """A credential behind the real token cache: each fetch a new token, valid for long."""

    key = "fake"

    def __init__(self):
        self.asked: list[str] = []

    async def fetch(self, scope):
        self.asked.append(scope)
        return Token(f"tok{len(self.asked)}", 4_000_000_000)

    async def renew(self):
        pass

    async def close(self):
        pass


def tokens_over(source: Source) -> CachedTokens:
    return CachedTokens(source, SystemClock())


def client(respond, **auth) -> tuple[HttpxContentSafety, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return respond(request)

    return HttpxContentSafety(ENDPOINT, transport=httpx.MockTransport(handler), **auth), seen


async def test_analyze_posts_azures_shape_and_reads_severities():
    safety, seen = client(lambda r: httpx.Response(200, json={"categoriesAnalysis": [
        {"category": "Hate", "severity": 2}, {"category": "Violence", "severity": 6}]}),
        key="k1")
    assert await safety.analyze("text", ["Hate", "Violence"]) == {"Hate": 2, "Violence": 6}
    sent = seen[0]
    assert sent.url.path == "/contentsafety/text:analyze"
    assert sent.url.params["api-version"] == "2024-09-01"
    assert sent.headers["ocp-apim-subscription-key"] == "k1"
    assert json.loads(sent.content) == {"text": "text", "categories": ["Hate", "Violence"],
                                        "outputType": "FourSeverityLevels"}


async def test_an_entra_token_is_asked_for_the_cognitive_services_scope_once():
    credential = Source()
    safety, seen = client(lambda r: httpx.Response(200, json={
        "userPromptAnalysis": {"attackDetected": False},
        "documentsAnalysis": [{"attackDetected": True}]}), tokens=tokens_over(credential))
    for _ in range(3):
        result = await safety.shield("hi", ["doc"])
    assert result.document_attacks == (True,) and not result.user_attack
    assert credential.asked == [SCOPE]
    assert {r.headers["authorization"] for r in seen} == {"Bearer tok1"}
    assert seen[0].url.path == "/contentsafety/text:shieldPrompt"


async def test_a_401_is_refused_and_the_next_call_asks_for_a_new_token():
    credential = Source()
    answers = iter([httpx.Response(401, json={"error": {"code": "PermissionDenied",
                                                        "message": "echo of input"}}),
                    httpx.Response(200, json={"categoriesAnalysis": []})])
    safety, seen = client(lambda r: next(answers), tokens=tokens_over(credential))
    with pytest.raises(SafetyRefused) as caught:
        await safety.analyze("x", ["Hate"])
    assert str(caught.value) == "analyze: HTTP 401 PermissionDenied"  # code only, no message
    await safety.analyze("x", ["Hate"])
    assert seen[1].headers["authorization"] == "Bearer tok2"


@pytest.mark.parametrize(("status", "headers", "retry"), [(429, {"retry-after": "3"}, 3.0),
                                                          (503, {}, 1.0)])
async def test_throttling_and_server_errors_are_unavailable_with_retry_after(status, headers,
                                                                            retry):
    safety, _ = client(lambda r: httpx.Response(status, headers=headers), key="k")
    with pytest.raises(SafetyUnavailable) as caught:
        await safety.analyze("x", ["Hate"])
    assert caught.value.retry_after_s == retry and "cs-secret-name" not in str(caught.value)
