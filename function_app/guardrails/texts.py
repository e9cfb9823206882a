"""The texts of a request that the checks read, and the same request with those texts rewritten.

Chat completions: each message's content (a string, or the `text` of its parts); messages with
role `tool` or `function` (tool results) are documents for Prompt Shields and `user` messages
its user prompt; system, developer and assistant messages are the app's own text, read by
Content Safety only (an app's instructions are not a user's jailbreak). Completions: `prompt`
(a string or strings; token ids are not text). Embeddings:
`input`. Any other JSON route: every string value but `model`. `walk` visits these texts in
order and returns the body with each replaced by what the visitor returns, so the texts checked
are exactly the texts rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.routes import OPENAI_CHAT, OPENAI_COMPLETIONS, OPENAI_EMBEDDINGS

Visit = Callable[[str, str], str]  # (text, role: "user" | "document" | "app") -> replacement
DOCUMENT_ROLES = frozenset({"tool", "function"})
USER, DOCUMENT, APP = "user", "document", "app"


@dataclass
class Texts:
    prompt: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    app: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return self.prompt + self.documents + self.app

    @property
    def size(self) -> int:
        return sum(map(len, self.all))


def collect(kind: str, body: dict) -> Texts:
    found = Texts()

    def visit(text: str, role: str) -> str:
        {USER: found.prompt, DOCUMENT: found.documents, APP: found.app}[role].append(text)
        return text

    walk(kind, body, visit)
    return found


def walk(kind: str, body: dict, visit: Visit) -> dict:
    """`body` with every checked text replaced by `visit(text, role)`."""
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
    role = message.get("role")
    kind = DOCUMENT if role in DOCUMENT_ROLES else USER if role == USER else APP
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": visit(content, kind)}
    if isinstance(content, list):
        return {**message, "content": [
            {**part, "text": visit(part["text"], kind)}
            if isinstance(part, dict) and isinstance(part.get("text"), str) else part
            for part in content]}
    return message


def _strings(value: Any, visit: Visit) -> Any:
    if isinstance(value, str):
        return visit(value, USER)
    if isinstance(value, list):
        return [visit(v, USER) if isinstance(v, str) else v for v in value]
    return value


def _any(value: Any, visit: Visit) -> Any:
    if isinstance(value, str):
        return visit(value, USER)
    if isinstance(value, list):
        return [_any(v, visit) for v in value]
    if isinstance(value, dict):
        return {k: _any(v, visit) for k, v in value.items()}
    return value
