"""Token accounting for this instance: prompt and completion tokens per client and model.

Counts what the backends reported (usage), not the estimates; `totals` also shows how the
reservations were settled. Read through GET /_gateway/stats under "tokens".
"""

from __future__ import annotations

from typing import Any

from .usage import Usage

MAX_KEYS = 10_000  # (client, model) pairs kept apart; later pairs are counted under OTHER
OTHER = "_other"
TOTALS = (
    "requests", "reserved_tokens", "prompt_tokens", "completion_tokens", "refunded_tokens",
    "extra_charged_tokens", "unreconciled_requests", "kept_tokens", "failed_requests",
    "cached_tokens", "reasoning_tokens",  # parts of prompt_tokens and completion_tokens
    "rejected_usage_requests",
)


class TokenLedger:
    """Counters owned by one gateway instance (no globals); every method is O(1)."""

    def __init__(self, max_keys: int = MAX_KEYS):
        self._max_keys = max_keys
        self.totals: dict[str, int] = dict.fromkeys(TOTALS, 0)
        # [requests, prompt, completion, cached, reasoning]
        self._by: dict[tuple[str, str], list[int]] = {}
        self.cost = 0.0  # currency, every request priced (MODEL_PRICES)
        self._spend: dict[tuple[str, str, str], float] = {}  # (client, key, model) -> cost

    def reserved(self, tokens: int) -> None:
        self.totals["reserved_tokens"] += tokens

    def settled(self, client: str, model: str, usage: Usage, reserved: int) -> None:
        """A request whose backend reported `usage`; the reservation moved to usage.total."""
        totals = self.totals
        totals["requests"] += 1
        totals["prompt_tokens"] += usage.prompt_tokens
        totals["completion_tokens"] += usage.completion_tokens
        totals["cached_tokens"] += usage.cached_tokens
        totals["reasoning_tokens"] += usage.reasoning_tokens
        delta = usage.total - reserved
        totals["extra_charged_tokens" if delta > 0 else "refunded_tokens"] += abs(delta)
        row = self._row(client, model)
        row[0] += 1
        row[1] += usage.prompt_tokens
        row[2] += usage.completion_tokens
        row[3] += usage.cached_tokens
        row[4] += usage.reasoning_tokens

    def spent(self, client: str, model: str, key: str | None, cost: float) -> None:
        """A request's cost in currency (settled, or its reservation when no usage came)."""
        self.cost += cost
        slot = (client, key or "", model)
        if slot not in self._spend and len(self._spend) >= self._max_keys:
            slot = (OTHER, "", OTHER)
        self._spend[slot] = self._spend.get(slot, 0.0) + cost

    def unreconciled(self, reserved: int) -> None:
        """No usage arrived (a broken or abandoned answer): the reservation stays charged."""
        self.totals["unreconciled_requests"] += 1
        self.totals["kept_tokens"] += reserved

    def rejected(self, reserved: int) -> None:
        """The backend reported usage the request cannot have used (openai/usage.implausible):
        it is not counted, and the reservation stays charged."""
        self.totals["rejected_usage_requests"] += 1
        self.totals["kept_tokens"] += reserved

    def failed(self, reserved: int) -> None:
        """The backend answered an error: the whole reservation was refunded."""
        self.totals["failed_requests"] += 1
        self.totals["refunded_tokens"] += reserved

    def _row(self, client: str, model: str) -> list[int]:
        row = self._by.get((client, model))
        if row is None:
            key = (client, model) if len(self._by) < self._max_keys else (OTHER, OTHER)
            row = self._by.setdefault(key, [0, 0, 0, 0, 0])
        return row

    def snapshot(self) -> dict[str, Any]:
        by_client: dict[str, dict[str, dict[str, int]]] = {}
        for (client, model), (requests, prompt, completion, cached, reasoning) in \
                self._by.items():
            entry = by_client.setdefault(client, {})[model] = {
                "requests": requests, "prompt_tokens": prompt, "completion_tokens": completion}
            # Shown only where a backend reported them (Azure OpenAI, OpenAI's newer models).
            entry.update({k: v for k, v in (("cached_tokens", cached),
                                            ("reasoning_tokens", reasoning)) if v})
        spend: dict[str, dict] = {"total": round(self.cost, 6), "by_client": {}, "by_key": {},
                                  "by_model": {}}
        for (client, key, model), cost in self._spend.items():
            for group, name in (("by_client", client), ("by_key", key), ("by_model", model)):
                if name:
                    spend[group][name] = round(spend[group].get(name, 0.0) + cost, 6)
        return {"totals": dict(self.totals), "by_client": by_client, "spend": spend}
