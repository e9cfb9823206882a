"""Content Safety in memory (the ContentSafety interface): rules a test sets, calls it records.

`harm` maps a lower-case word to (category, severity): a text containing it scores that
severity in that category (0 otherwise). `attacks` lists lower-case phrases: a prompt or
document containing one is an attack. `down` makes every call fail as the service would when
unreachable; `refused` as when it rejects the gateway's credentials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from function_app.guardrails.safety import SafetyRefused, SafetyUnavailable, Shielded


@dataclass
class MemorySafety:
    harm: dict[str, tuple[str, int]] = field(default_factory=dict)
    attacks: list[str] = field(default_factory=list)
    down: bool = False
    refused: bool = False
    calls: list[tuple[str, object]] = field(default_factory=list)

    def _gate(self) -> None:
        if self.refused:
            raise SafetyRefused("analyze: HTTP 401 PermissionDenied")
        if self.down:
            raise SafetyUnavailable("analyze: ConnectError")

    async def analyze(self, text: str, categories: Sequence[str]) -> Mapping[str, int]:
        self.calls.append(("analyze", text))
        self._gate()
        scores = dict.fromkeys(categories, 0)
        lowered = text.lower()
        for word, (category, severity) in self.harm.items():
            if word in lowered and category in scores:
                scores[category] = max(scores[category], severity)
        return scores

    async def shield(self, user_prompt: str, documents: Sequence[str]) -> Shielded:
        self.calls.append(("shield", (user_prompt, list(documents))))
        self._gate()

        def hit(text: str) -> bool:
            return any(phrase in text.lower() for phrase in self.attacks)

        return Shielded(hit(user_prompt), tuple(hit(d) for d in documents))

    async def aclose(self) -> None:
        pass
