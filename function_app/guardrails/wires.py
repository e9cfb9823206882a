"""Where the text is in each API's answer, and how each API says "stopped by a content filter".

Three wires, one interface (`Wire`), used by the windowed stream (stream events) and the whole-
answer check (a JSON answer):

    chat         OpenAI chat and completions: choices[].delta.content / .text; a final chunk
                 with finish_reason "content_filter", then data: [DONE]
    responses    OpenAI Responses: response.output_text.delta's `delta`; a
                 response.incomplete event, incomplete_details.reason "content_filter"
    messages     Anthropic Messages: content_block_delta's text_delta; content_block_stop,
                 message_delta with stop_reason "refusal", message_stop
"""

from __future__ import annotations

import json
from typing import Any

from ..routing.routes import ANTHROPIC_MESSAGES, OPENAI_RESPONSES


def framed(name: str | None, payload: dict) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def reframed(event: bytes, payload: dict) -> bytes:
    """`event` with its data replaced by `payload`, its other lines (event:, id:) kept."""
    kept = [ln for ln in event.splitlines() if ln and not ln.startswith(b"data:")]
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode()
    return b"\n".join([*kept, data]) + b"\n\n"


class ChatWire:
    def text(self, payload: Any) -> str:
        return "".join(t for _, _, t in self._slots(payload))

    def set_text(self, payload: dict, text: str) -> None:
        for index, (holder, key, _) in enumerate(self._slots(payload)):
            holder[key] = text if index == 0 else ""

    def _slots(self, payload: Any) -> list[tuple[dict, str, str]]:
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            return []
        found = []
        for choice in payload["choices"]:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            holder, key = (delta, "content") if isinstance(delta, dict) else (choice, "text")
            if isinstance(holder.get(key), str):
                found.append((holder, key, holder[key]))
        return found

    def answer_slots(self, answer: dict) -> list[tuple[dict, str]]:
        """Where a whole answer's texts are: (holder, key) pairs."""
        slots = []
        for choice in answer.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                slots.append((message, "content"))
            elif isinstance(choice.get("text"), str):
                slots.append((choice, "text"))
        return slots

    def filter_answer(self, answer: dict) -> None:
        for choice in answer.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("message"), dict):
                choice["message"]["content"] = None
            if "text" in choice:
                choice["text"] = ""
            choice["finish_reason"] = "content_filter"

    def remember(self, payload: Any, head: dict) -> None:
        if isinstance(payload, dict):
            head.update({k: payload[k] for k in ("id", "object", "created", "model")
                         if k in payload})
            indexes = head.setdefault("_indexes", set())
            for choice in payload.get("choices") or []:
                if isinstance(choice, dict) and isinstance(choice.get("index"), int):
                    indexes.add(choice["index"])

    def ending(self, head: dict) -> list[bytes]:
        chat = head.get("object") != "text_completion"
        choices = [{"index": i, "delta": {}, "logprobs": None, "finish_reason": "content_filter"}
                   if chat else {"index": i, "text": "", "logprobs": None,
                                 "finish_reason": "content_filter"}
                   for i in sorted(head.get("_indexes") or {0})]
        meta = {k: v for k, v in head.items() if not k.startswith("_")}
        return [framed(None, {**meta, "choices": choices}), b"data: [DONE]\n\n"]


class ResponsesWire:
    DELTA = "response.output_text.delta"

    def text(self, payload: Any) -> str:
        if isinstance(payload, dict) and payload.get("type") == self.DELTA:
            delta = payload.get("delta")
            return delta if isinstance(delta, str) else ""
        return ""

    def set_text(self, payload: dict, text: str) -> None:
        payload["delta"] = text

    def answer_slots(self, answer: dict) -> list[tuple[dict, str]]:
        return [(part, "text") for item in answer.get("output") or [] if isinstance(item, dict)
                for part in item.get("content") or []
                if isinstance(part, dict) and part.get("type") == "output_text"
                and isinstance(part.get("text"), str)]

    def filter_answer(self, answer: dict) -> None:
        answer.update(status="incomplete", output=[],
                      incomplete_details={"reason": "content_filter"})

    def remember(self, payload: Any, head: dict) -> None:
        if isinstance(payload, dict) and isinstance(payload.get("response"), dict):
            head["response"] = payload["response"]
        if isinstance(payload, dict) and isinstance(payload.get("sequence_number"), int):
            head["sequence_number"] = payload["sequence_number"]

    def ending(self, head: dict) -> list[bytes]:
        response = {**head.get("response", {}), "status": "incomplete", "output": [],
                    "incomplete_details": {"reason": "content_filter"}}
        return [framed("response.incomplete", {
            "type": "response.incomplete", "sequence_number": head.get("sequence_number", 0) + 1,
            "response": response})]


class MessagesWire:
    def text(self, payload: Any) -> str:
        if isinstance(payload, dict) and payload.get("type") == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta" \
                    and isinstance(delta.get("text"), str):
                return delta["text"]
        return ""

    def set_text(self, payload: dict, text: str) -> None:
        payload["delta"]["text"] = text

    def answer_slots(self, answer: dict) -> list[tuple[dict, str]]:
        return [(block, "text") for block in answer.get("content") or []
                if isinstance(block, dict) and block.get("type") == "text"
                and isinstance(block.get("text"), str)]

    def filter_answer(self, answer: dict) -> None:
        answer.update(content=[], stop_reason="refusal", stop_sequence=None)

    def remember(self, payload: Any, head: dict) -> None:
        if isinstance(payload, dict) and payload.get("type") == "content_block_start":
            head["block"] = payload.get("index", 0)

    def ending(self, head: dict) -> list[bytes]:
        return [framed("content_block_stop", {"type": "content_block_stop",
                                              "index": head.get("block", 0)}),
                framed("message_delta", {"type": "message_delta", "delta": {
                    "stop_reason": "refusal", "stop_sequence": None},
                    "usage": {"output_tokens": 0}}),
                framed("message_stop", {"type": "message_stop"})]


CHAT, RESPONSES, MESSAGES = ChatWire(), ResponsesWire(), MessagesWire()


def wire_for(kind: str) -> ChatWire | ResponsesWire | MessagesWire:
    return {OPENAI_RESPONSES: RESPONSES, ANTHROPIC_MESSAGES: MESSAGES}.get(kind, CHAT)
