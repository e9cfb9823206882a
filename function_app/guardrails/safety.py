"""The Content Safety interface the guardrails need, and what it answers.

Two calls, as Azure AI Content Safety has them (api-version 2024-09-01):
- `analyze(text)`: a severity (0-7) per harm category (Hate, SelfHarm, Sexual, Violence);
- `shield(user_prompt, documents)`: whether the prompt is a jailbreak attempt and which
  documents (tool results, retrieved text) carry an injected instruction.
Implementations: adapters/contentsafety_httpx.py (the service) and an in-memory fake in
tests/support/safety_fake.py. Failures are `SafetyUnavailable` (down, slow, throttled: the
policy's fail mode applies) or `SafetyRefused` (401/403: a misconfiguration, same handling,
but reported as such on /healthz).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

ANALYZE_MAX_CHARS = 10_000  # the service's limit for one text:analyze call
SHIELD_MAX_CHARS = 10_000  # its limit for a prompt plus its documents


@dataclass(frozen=True)
class Shielded:
    user_attack: bool
    document_attacks: tuple[bool, ...]

    @property
    def attacked(self) -> bool:
        return self.user_attack or any(self.document_attacks)


class SafetyUnavailable(Exception):
    """The service could not give an answer in time (down, timeout, 429, 5xx, rate limit)."""

    def __init__(self, detail: str, retry_after_s: float = 0.0):
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class SafetyRefused(SafetyUnavailable):
    """The service refused the gateway's credentials (401/403): fix the identity or key."""


class ContentSafety(Protocol):
    async def analyze(self, text: str, categories: Sequence[str]) -> Mapping[str, int]:
        """Severity per category for `text` (at most ANALYZE_MAX_CHARS)."""
        ...

    async def shield(self, user_prompt: str, documents: Sequence[str]) -> Shielded: ...

    async def aclose(self) -> None: ...
