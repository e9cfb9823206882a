"""Wiring of the model APIs (OpenAI, Responses, Anthropic): one model table, the token limits
(CLIENT_TPM, MODEL_TPM) and budgets, the limiter and the ledger, behind the tenant wrappers."""

from __future__ import annotations

from function_app.ratelimit.engine import LimiterEngine
from function_app.ratelimit.tokens import TokenLimits

from ..anthropic.stage import anthropic_stage
from ..core.clock import Clock
from ..core.pipeline import Stage
from ..openai.ledger import TokenLedger
from ..openai.stage import openai_stage
from ..settings.specs import Settings
from .gateway import Parts
from .tenants import Tenancy


def model_stages(settings: Settings, parts: Parts, limiter: LimiterEngine | None, clock: Clock,
                 tenancy: Tenancy) -> list[Stage]:
    """The OpenAI and Anthropic stages: one model table, token limits, limiter and ledger."""
    ledger = TokenLedger()
    parts.stats_sources["tokens"] = ledger.snapshot
    limits = tenancy.token_limits(TokenLimits.per_minute(settings.client_tpm,
                                                         settings.model_tpm))
    models, budgeted = tenancy.models(settings.model_table), tenancy.limiter(limiter)
    spender = tenancy.spender()
    max_event = settings.sse_max_event_bytes
    return [openai_stage(models, limits, budgeted, ledger, settings.default_max_tokens, clock,
                         settings.responses_id_secret.encode(), spender, max_event),
            anthropic_stage(models, limits, budgeted, ledger, clock, spender, max_event)]
