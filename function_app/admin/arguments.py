"""argparse types for the admin CLI: each refuses a bad value with a message naming the bound.

A value that fails one of these ends the command with argparse's usage line, `error: ...` and
exit status 2, before any storage call. Every bound is far above any real use and far below
what breaks: a date past year 9999, a Table string over 64 KiB, a float that is not finite.
"""

from __future__ import annotations

import argparse
import math
import unicodedata
from collections.abc import Callable

from ..tenants.records import valid_guardrail, valid_tenant

MAX_DAYS = 36_500  # a hundred years: expiry dates stay well inside datetime's range
MAX_GRACE_S = 30 * 86_400
MAX_RATE = 1e9  # requests per second, burst or tokens per minute
MAX_TOKENS = 10**15  # token budgets
MAX_SPEND = 1e12  # spend budgets, in MODEL_PRICES' currency
MAX_NAME = 64
MAX_PATTERN, MAX_PATTERNS = 200, 100
MAX_KEY_ARGUMENT = 128  # a whole key is 50 characters; a prefix 8-12


def has_control(text: str) -> bool:
    """Whether `text` holds a control, format or separator character (terminal escapes, CR,
    line and paragraph separators, bidi overrides)."""
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


def _bounded_number(kind: type, low: float, high: float, what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text.strip())
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{_short(text)!r} is not {what}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{_short(text)!r}: must be {what} from {low:g} to {high:g}")
        return value

    return parse


rate = _bounded_number(float, 0, MAX_RATE, "a number")
tokens = _bounded_number(int, 0, MAX_TOKENS, "a whole number")
expires_days = _bounded_number(float, 0, MAX_DAYS, "a number of days (0: never)")
grace_s = _bounded_number(float, 0, MAX_GRACE_S, "a number of seconds")
spend = _bounded_number(float, 0, MAX_SPEND, "an amount")
usage_days = _bounded_number(int, 1, MAX_DAYS, "a whole number of days")


def name(text: str) -> str:
    """A key's name: 1-64 characters, none of them a control character."""
    if not text.strip() or len(text) > MAX_NAME or has_control(text):
        raise argparse.ArgumentTypeError(
            f"a name is 1-{MAX_NAME} characters without control characters "
            f"(got {len(text)} characters)")
    return text


def patterns(text: str) -> str:
    """A comma-separated list of models or routes (patterns): bounded, no control characters."""
    items = [p.strip() for p in text.split(",") if p.strip()]
    if len(items) > MAX_PATTERNS or any(len(p) > MAX_PATTERN or has_control(p) for p in items):
        raise argparse.ArgumentTypeError(
            f"at most {MAX_PATTERNS} entries of at most {MAX_PATTERN} characters each, "
            "without control characters")
    return text


def key_argument(text: str) -> str:
    """A key or a key prefix: short, so an error never echoes a megabyte back."""
    if len(text) > MAX_KEY_ARGUMENT or has_control(text):
        raise argparse.ArgumentTypeError("not a gateway key or key prefix")
    return text


def tenant(text: str) -> str:
    """A tenant name, checked as the records check it (1-63 letters, digits, `_.-`)."""
    try:
        return valid_tenant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"tenant name {_short(text)!r}: use 1-63 letters, digits, '_', '.', '-'") from None


def guardrail(text: str) -> str:
    """A GUARDRAILS policy name ("" for none), checked as the records check it."""
    try:
        return valid_guardrail(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"guardrail policy name {_short(text)!r}: use 1-63 letters, digits, '_', '.', '-'"
        ) from None


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "…"
