"""Spend in currency from MODEL_PRICES: JSON {"model": price per million tokens}.

One price per model for all of its tokens (prompt and completion alike): the gateway counts a
request's tokens as one number when it settles. A model missing from the table costs 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping


def parse_prices(table: Mapping) -> dict[str, float]:
    """Validate the table; ValueError names a bad entry."""
    prices = {}
    for model, price in table.items():
        if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
            raise ValueError(f"{model!r}: the price must be a number >= 0 (per 1M tokens)")
        prices[str(model)] = float(price)
    return prices


def spend(prices: Mapping[str, float], model: str, tokens: float) -> float:
    return prices.get(model, 0.0) * tokens / 1_000_000


def price_table(raw: str) -> dict[str, float]:
    """The MODEL_PRICES setting: empty, or a JSON object of model -> price per 1M tokens."""
    if not raw:
        return {}
    decoded = json.loads(raw)
    if not isinstance(decoded, dict):
        raise ValueError("expected a JSON object")
    return parse_prices(decoded)
