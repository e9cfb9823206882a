"""x-ratelimit-* headers as OpenAI sends them, from the request and token decisions.

    x-ratelimit-limit-requests / -tokens       the bucket size (what may pass before exhausting)
    x-ratelimit-remaining-requests / -tokens   whole tokens left after this request
    x-ratelimit-reset-requests / -tokens       time until the bucket is full again ("6m0s")

A scope that no limit governs sends no headers of its kind. The decisions are left in the
request context (`requests_decision` by the rate-limit stage, `tokens_decision` by the OpenAI
stage), so an error answer carries them too.
"""

from __future__ import annotations

from function_app.ratelimit.limits import Decision

_NAMED = {"client_tpm": "this client", "model_tpm": "this model", "key_tpm": "this API key"}
_PERIODS = {"day": "daily", "month": "monthly"}


def limit_name(scope: str | None) -> str:
    """The token limit a scope stands for, as a client reads it: "this model on tokens per
    min (TPM)", "the tenant's daily token budget" (scope budget_tenant_day). A refusal must
    name the limit that refused, not another one (issue #22, item 8)."""
    if scope in _NAMED:
        return f"{_NAMED[scope]} on tokens per min (TPM)"
    if scope and scope.startswith("budget_") and scope.count("_") == 2:
        _, who, period = scope.split("_")
        return f"the {who}'s {_PERIODS.get(period, period)} token budget"
    return f"the '{scope}' token limit"


def duration(seconds: float) -> str:
    """OpenAI's duration format: "20ms", "1s", "1.5s", "6m0s", "1h2m3s"."""
    millis = max(0, round(seconds * 1000))
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def openai_limit_headers(requests: Decision | None, tokens: Decision | None
                         ) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for kind, decision in (("requests", requests), ("tokens", tokens)):
        if decision is None or decision.limit is None:
            continue
        headers += [
            (f"x-ratelimit-limit-{kind}", str(int(decision.limit.burst))),
            (f"x-ratelimit-remaining-{kind}", str(max(0, int(decision.remaining)))),
            (f"x-ratelimit-reset-{kind}", duration(decision.reset_s)),
        ]
    return headers


def retry_after_ms(decision: Decision | None) -> list[tuple[str, str]]:
    """retry-after-ms, which the OpenAI SDK prefers to the whole seconds of Retry-After."""
    if decision is None or decision.allowed or decision.retry_after_s <= 0:
        return []
    return [("retry-after-ms", str(max(1, round(decision.retry_after_s * 1000))))]
