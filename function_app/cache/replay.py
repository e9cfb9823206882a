"""Completions between their two wire forms, for answers served from the cache.

A stored stream is a list of SSE events in the upstream's framing; a stored plain answer is one
JSON object. `assemble` makes the plain answer a stream amounts to; `synthesize` makes the
events a plain answer amounts to (OpenAI's chunk format: role and content, then the finish
reason, then the usage-only chunk, then [DONE]). Either returns None when the answer holds
something this module does not rebuild (tool calls, log probabilities): that request is then a
miss rather than a wrong answer.
"""

from __future__ import annotations

import json
from typing import Any

CHAT_DELTA_KEYS = frozenset({"role", "content"})
DONE = b"data: [DONE]\n\n"


def event_payloads(events: list[bytes]) -> list[dict] | None:
    """The JSON objects of `events` (data lines joined), without [DONE]; None if one is bad."""
    payloads = []
    for event in events:
        data = "\n".join(line[5:].lstrip() for line in event.decode("utf-8").splitlines()
                         if line.startswith("data:"))
        if not data or data.strip() == "[DONE]":
            continue
        try:
            payloads.append(json.loads(data))
        except ValueError:
            return None
    return payloads


def assemble(events: list[bytes], chat: bool) -> bytes | None:
    """The plain answer of a completed stream (chat.completion or text_completion)."""
    payloads = event_payloads(events)
    if not payloads:
        return None
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for payload in payloads:
        usage = payload.get("usage") or usage
        for choice in payload.get("choices") or []:
            if choice.get("logprobs") is not None:
                return None
            slot = choices.setdefault(choice.get("index", 0), {"text": [], "finish": None,
                                                               "role": "assistant"})
            if choice.get("finish_reason") is not None:
                slot["finish"] = choice["finish_reason"]
            if chat:
                delta = choice.get("delta") or {}
                if any(v is not None for k, v in delta.items() if k not in CHAT_DELTA_KEYS):
                    return None
                slot["role"] = delta.get("role") or slot["role"]
                slot["text"].append(delta.get("content") or "")
            else:
                slot["text"].append(choice.get("text") or "")
    first = payloads[0]
    answer: dict[str, Any] = {
        "id": first.get("id"), "object": "chat.completion" if chat else "text_completion",
        "created": first.get("created"), "model": first.get("model"),
        "choices": [_plain_choice(index, slot, chat) for index, slot in sorted(choices.items())]}
    if first.get("system_fingerprint") is not None:
        answer["system_fingerprint"] = first["system_fingerprint"]
    if usage is not None:
        answer["usage"] = usage
    return json.dumps(answer, separators=(",", ":")).encode()


def _plain_choice(index: int, slot: dict, chat: bool) -> dict:
    text = "".join(slot["text"])
    if chat:
        return {"index": index, "message": {"role": slot["role"], "content": text},
                "logprobs": None, "finish_reason": slot["finish"]}
    return {"index": index, "text": text, "logprobs": None, "finish_reason": slot["finish"]}


def synthesize(body: bytes, chat: bool) -> list[bytes] | None:
    """SSE events (each `data: ...` and a blank line) for a plain answer, [DONE] last."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
        return None
    head = {"id": answer.get("id"), "object": "chat.completion.chunk" if chat
            else "text_completion", "created": answer.get("created"),
            "model": answer.get("model")}
    events, finishes = [], []
    for choice in answer["choices"]:
        if not isinstance(choice, dict) or choice.get("logprobs") is not None:
            return None
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            if any(v is not None for k, v in message.items() if k not in CHAT_DELTA_KEYS):
                return None
            first = {"index": index, "delta": {"role": message.get("role", "assistant"),
                                               "content": message.get("content") or ""},
                     "logprobs": None, "finish_reason": None}
            last = {"index": index, "delta": {}, "logprobs": None,
                    "finish_reason": choice.get("finish_reason")}
        else:
            first = {"index": index, "text": choice.get("text") or "", "logprobs": None,
                     "finish_reason": None}
            last = {"index": index, "text": "", "logprobs": None,
                    "finish_reason": choice.get("finish_reason")}
        events.append(_event({**head, "choices": [first]}))
        finishes.append(_event({**head, "choices": [last]}))
    events += finishes
    if answer.get("usage") is not None:
        events.append(_event({**head, "choices": [], "usage": answer["usage"]}))
    events.append(DONE)
    return events


def _event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def completed(events: list[bytes]) -> bool:
    """Whether a stream ended properly ([DONE] as its last event)."""
    return bool(events) and events[-1].strip() == DONE.strip()
