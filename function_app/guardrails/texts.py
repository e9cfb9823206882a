"""The texts of a request that the checks read, and the same request with those texts rewritten.

Chat completions: each message's content (a string, or the `text` of its parts); messages with
role `tool` or `function` (tool results) are documents for Prompt Shields, the rest the user
prompt. Completions: `prompt` (a string or strings; token ids are not text). Embeddings:
`input`. Any other JSON route: every string value but `model`. `walk` visits these texts in
order and returns the body with each replaced by what the visitor returns, so the texts checked
are exactly the texts rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.routes import OPENAI_CHAT, OPENAI_COMPLETIONS, OPENAI_EMBEDDINGS

Visit = Callable[[str, bool], str]  # (text, is_document) -> replacement
DOCUMENT_ROLES = frozenset({"tool", "function"})


@dataclass
class Texts:
    prompt: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(map(len, self.prompt)) + sum(map(len, self.documents))


def collect(kind: str, body: dict) -> Texts:
    found = Texts()

    def visit(text: str, document: bool) -> str:
        (found.documents if document else found.prompt).append(text)
        return text

    walk(kind, body, visit)
    return found


def walk(kind: str, body: dict, visit: Visit) -> dict:
    """`body` with every checked text replaced by `visit(text, is_document)`."""
    if kind == OPENAI_CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list):
            return body
        return {**body, "messages": [_message(m, visit) for m in messages]}
    if kind in (OPENAI_COMPLETIONS, OPENAI_EMBEDDINGS):
        name = "prompt" if kind == OPENAI_COMPLETIONS else "input"
        return {**body, name: _strings(body.get(name), visit)} if name in body else body
    return {k: (v if k == "model" else _any(v, visit)) for k, v in body.items()}


def _message(message: Any, visit: Visit) -> Any:
    if not isinstance(message, dict):
        return message
    document = message.get("role") in DOCUMENT_ROLES
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": visit(content, document)}
    if isinstance(content, list):
        return {**message, "content": [
            {**part, "text": visit(part["text"], document)}
            if isinstance(part, dict) and isinstance(part.get("text"), str) else part
            for part in content]}
    return message


def _strings(value: Any, visit: Visit) -> Any:
    if isinstance(value, str):
        return visit(value, False)
    if isinstance(value, list):
        return [visit(v, False) if isinstance(v, str) else v for v in value]
    return value


def _any(value: Any, visit: Visit) -> Any:
    if isinstance(value, str):
        return visit(value, False)
    if isinstance(value, list):
        return [_any(v, visit) for v in value]
    if isinstance(value, dict):
        return {k: _any(v, visit) for k, v in value.items()}
    return value
