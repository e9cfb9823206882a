"""Seeded concurrent bursts on token limits for the fuzzer, and what their answers must show.

A `Burst` is one case index: `count` identical chat completions sent at once with a fresh key,
either of a tenant with a small daily token budget (`budget`) or with a small tokens-per-minute
limit of its own (`tpm`). Each reserves `reserved` tokens (the gateway's estimate: prompt plus
max_tokens) and the scripted backend reports 3 + max_tokens used. docs/REFUSALS.md states the
bounds checked by `judge`: what is admitted never settles above the limit (give or take one
request, one instance), a refusal comes only when what is left cannot pay the request (so a
burst admits at least what fits, less one), a budget refusal is `budget_exceeded` and a TPM one
a 429 whose Retry-After is the time the request's own cost takes to accrue, and a cost that can
never fit is a 400 `exceeds_limit`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from function_app.openai.estimate import chat_prompt_tokens
from tests.support.scripted_backend import script_query

# The scripted backend under a model and URL of its own: the hostile cases' resets and silences
# open the breaker of model `hostile`, which would answer a burst 503 before any limit judged it.
MODEL = "steady"
USED_PROMPT = 3


@dataclass(frozen=True)
class Burst:
    index: int
    kind: str  # "budget" or "tpm"
    limit: int  # daily tokens, or tokens per minute
    count: int
    max_tokens: int
    content: str

    @property
    def body(self) -> dict:
        return {"model": MODEL, "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": self.content}]}

    @property
    def reserved(self) -> int:
        return chat_prompt_tokens(self.body) + self.max_tokens

    @property
    def used(self) -> int:
        return USED_PROMPT + self.max_tokens

    def query(self) -> str:
        answer = {"id": "chatcmpl-burst", "object": "chat.completion", "created": 1,
                  "model": MODEL, "choices": [{"index": 0, "finish_reason": "stop", "message": {
                      "role": "assistant", "content": "ok"}}],
                  "usage": {"prompt_tokens": USED_PROMPT, "completion_tokens": self.max_tokens}}
        return script_query(f"b{self.index}", headers=[("content-type", "application/json")],
                            chunks=[json.dumps(answer).encode()])


def burst_case(rng: random.Random, index: int) -> Burst:
    kind = rng.choice(["budget", "tpm"])
    max_tokens = rng.choice([10, 50, 100, 1000])
    burst = Burst(index, kind, 0, 0, max_tokens, "b" * rng.randint(0, 400))
    fits = rng.randint(1, 12)
    limit = burst.reserved * fits + rng.randint(0, burst.reserved - 1)
    if rng.random() < 0.1:  # a request that can never fit (0 would mean no limit at all)
        limit = rng.randint(1, burst.reserved - 1)
    return Burst(index, kind, limit, fits + rng.randint(1, 12), max_tokens, burst.content)


@dataclass(frozen=True)
class Answer:
    status: int
    code: str | None
    retry_after: str | None


def judge(burst: Burst, answers: list[Answer], elapsed_s: float) -> list[str]:
    """What the answers to `burst` show against the stated bounds (empty: nothing wrong)."""
    reserved, limit = burst.reserved, burst.limit
    admitted = [a for a in answers if a.status == 200]
    # A backend that did not answer in time (a loaded machine) is no limit's answer, but its
    # request was admitted and keeps its whole reservation ("the backend may have worked").
    late = [a for a in answers if (a.status, a.code) == (504, "upstream_timeout")]
    refused = [a for a in answers if a.status != 200 and a not in late]
    if reserved > limit:
        wrong = {(a.status, a.code) for a in answers} - {(400, "exceeds_limit")}
        return [f"a cost of {reserved} over a limit of {limit} answered {sorted(wrong)}"] \
            if wrong else []
    problems = []
    accrued = limit * elapsed_s / 60 if burst.kind == "tpm" else 0
    settled = len(admitted) * burst.used + len(late) * reserved
    if settled > limit + reserved + accrued:
        problems.append(f"{len(admitted) + len(late)} admitted settle {settled} tokens "
                        f"over a {burst.kind} limit of {limit} ({reserved} reserved each)")
    expected = "budget_exceeded" if burst.kind == "budget" else "rate_limit_exceeded"
    for answer in refused:
        if (answer.status, answer.code) != (429, expected):
            problems.append(f"refused with {answer.status} {answer.code}, not 429 {expected}")
        elif (len(admitted) + len(late) + 2) * reserved <= limit:
            problems.append(f"{expected} with {len(admitted)} admitted of {reserved} reserved "
                            f"each: the {burst.kind} of {limit} was not spent")
        elif burst.kind == "tpm" and not _sane_wait(answer.retry_after, reserved, limit):
            problems.append(f"Retry-After {answer.retry_after!r} for {reserved} tokens at "
                            f"{limit} per minute")
    return problems[:3]


def _sane_wait(retry_after: str | None, reserved: int, tpm: int) -> bool:
    """At most the time one request's cost takes to accrue, plus the lease's rounding."""
    return retry_after is not None and retry_after.isdigit() and \
        1 <= int(retry_after) <= 60 * reserved / tpm + 3
