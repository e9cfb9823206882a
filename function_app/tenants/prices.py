"""Spend in currency from MODEL_PRICES: prices per model and token kind, per million tokens.

The setting is a JSON object of model -> price. A price is either one number (the old form,
still accepted: every token of the model costs that), or an object

    {"input": 2.5, "cached_input": 1.25, "output": 10, "reasoning": 10,
     "daily_budget": 50, "monthly_budget": 1000}

`input` and `output` are required in the object form; `cached_input` (prompt tokens read from
the provider's prompt cache) defaults to `input`, `reasoning` (completion tokens spent
reasoning) to `output`. All prices are in one currency, whichever the operator writes them in.
The optional budgets cap that model's spend across all clients per UTC day / month (0 or
absent: none). A model missing from the table costs 0 and has no model budget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from ..openai.usage import Usage

PER = 1_000_000  # prices are per million tokens
KINDS = ("input", "cached_input", "output", "reasoning")
BUDGETS = ("daily_budget", "monthly_budget")


@dataclass(frozen=True)
class Price:
    input: float
    cached_input: float
    output: float
    reasoning: float
    daily_budget: float = 0.0
    monthly_budget: float = 0.0

    def cost(self, usage: Usage) -> float:
        """The currency cost of `usage`: each kind at its own rate, never counted twice
        (cached tokens are part of the prompt, reasoning tokens part of the completion)."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
        return ((usage.prompt_tokens - cached) * self.input + cached * self.cached_input
                + (usage.completion_tokens - reasoning) * self.output
                + reasoning * self.reasoning) / PER

    def most(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The most a request of this estimate can cost (its reservation): the prompt at the
        uncached rate, the completion at the dearer of output and reasoning."""
        return (prompt_tokens * max(self.input, self.cached_input)
                + completion_tokens * max(self.output, self.reasoning)) / PER


def _number(model: str, field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{model!r}: {field} must be a number >= 0 (per 1M tokens)")
    return float(value)


def parse_price(model: str, raw: object) -> Price:
    if not isinstance(raw, Mapping):
        flat = _number(model, "the price", raw)
        return Price(flat, flat, flat, flat)
    unknown = sorted(set(raw) - set(KINDS) - set(BUDGETS))
    if unknown:
        raise ValueError(f"{model!r}: unknown fields {unknown} (known: {[*KINDS, *BUDGETS]})")
    for field in ("input", "output"):
        if field not in raw:
            raise ValueError(f"{model!r}: '{field}' is required")
    values = {field: _number(model, field, raw[field]) for field in (*KINDS, *BUDGETS)
              if field in raw}
    values.setdefault("cached_input", values["input"])
    values.setdefault("reasoning", values["output"])
    return Price(**values)


def parse_prices(table: Mapping) -> dict[str, Price]:
    """Validate the table; ValueError names a bad entry."""
    return {str(model): parse_price(str(model), raw) for model, raw in table.items()}


def price_table(raw: str) -> dict[str, Price]:
    """The MODEL_PRICES setting: empty, or a JSON object of model -> price."""
    if not raw:
        return {}
    decoded = json.loads(raw)
    if not isinstance(decoded, dict):
        raise ValueError("expected a JSON object")
    return parse_prices(decoded)
