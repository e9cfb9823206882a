"""Which token limits apply to a completion: CLIENT_TPM per client and MODEL_TPM per model.

A token limit is a bucket like any other (rate = tpm / 60, burst = a minute of tokens), decided
by the same limiter under the scopes "client_tpm" and "model_tpm"; openai/bill.py reserves and
settles against them.
"""

from __future__ import annotations

from dataclasses import dataclass

from function_app.ratelimit.limits import Limit, ScopedLimit


@dataclass(frozen=True)
class TokenLimits:
    """Per-minute token limits from CLIENT_TPM and MODEL_TPM; None when turned off (0)."""

    client: Limit | None
    model: Limit | None

    @classmethod
    def per_minute(cls, client_tpm: float, model_tpm: float) -> TokenLimits:
        def make(tpm: float) -> Limit | None:
            return Limit(tpm / 60, tpm) if tpm > 0 else None

        return cls(make(client_tpm), make(model_tpm))

    def scopes(self, client: str, model: str) -> list[ScopedLimit]:
        scoped = []
        if self.client is not None:
            scoped.append(ScopedLimit("client_tpm", client, self.client, reserved=True))
        if self.model is not None:
            scoped.append(ScopedLimit("model_tpm", model, self.model, reserved=True))
        return scoped
