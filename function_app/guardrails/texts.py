"""The texts of a request that the checks read, and the same request with those texts rewritten.

Chat completions: each message's content (a string, or the `text` of its parts); messages with
role `tool` or `function` (tool results) are documents for Prompt Shields and `user` messages
its user prompt; system, developer and assistant messages are the app's own text, read by
Content Safety only (an app's instructions are not a user's jailbreak). Anthropic Messages
and OpenAI Responses the same way: `system` / `instructions` are the app's, tool results
(`tool_result`, `function_call_output`) documents, user turns the prompt. Completions: `prompt`
(a string or strings; token ids are not text). Embeddings:
`input`. Any other JSON route: every string value but `model`. `walk` visits these texts in
order and returns the body with each replaced by what the visitor returns, so the texts checked
are exactly the texts rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..routing.routes import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    OPENAI_COMPLETIONS,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSES,
)

Visit = Callable[[str, str], str]  # (text, role: "user" | "document" | "app") -> replacement
DOCUMENT_ROLES = frozenset({"tool", "function"})
# Parts that carry text (chat "text", Responses "input_text"/"output_text", Messages "text");
# tool results (Messages "tool_result", Responses "function_call_output") are documents.
TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
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
    if kind == ANTHROPIC_MESSAGES:
        return _messages_api(body, visit)
    if kind == OPENAI_RESPONSES:
        return _responses_api(body, visit)
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


def _blocks(content: Any, role: str, visit: Visit) -> Any:
    """A string, or a list of parts/blocks: text parts visited as `role`, tool results as
    documents (their content a string or text blocks)."""
    if isinstance(content, str):
        return visit(content, role)
    if not isinstance(content, list):
        return content
    out = []
    for part in content:
        if not isinstance(part, dict):
            out.append(part)
        elif part.get("type") in TEXT_PARTS and isinstance(part.get("text"), str):
            out.append({**part, "text": visit(part["text"], role)})
        elif part.get("type") == "tool_result" and "content" in part:
            out.append({**part, "content": _blocks(part["content"], DOCUMENT, visit)})
        else:
            out.append(part)
    return out


def _messages_api(body: dict, visit: Visit) -> dict:
    """Anthropic Messages: `system` is the app's; messages by role; tool results documents."""
    out = dict(body)
    if "system" in body:
        out["system"] = _blocks(body["system"], APP, visit)
    if isinstance(body.get("messages"), list):
        out["messages"] = [
            {**m, "content": _blocks(m.get("content"), USER if m.get("role") == USER else APP,
                                     visit)} if isinstance(m, dict) else m
            for m in body["messages"]]
    return out


def _responses_api(body: dict, visit: Visit) -> dict:
    """OpenAI Responses: `instructions` is the app's; `input` a string (the user's) or items:
    messages by role, function_call_output as documents."""
    out = dict(body)
    if isinstance(body.get("instructions"), str):
        out["instructions"] = visit(body["instructions"], APP)
    items = body.get("input")
    if isinstance(items, str):
        out["input"] = visit(items, USER)
    elif isinstance(items, list):
        out["input"] = [_item(item, visit) for item in items]
    return out


def _item(item: Any, visit: Visit) -> Any:
    if not isinstance(item, dict):
        return item
    if item.get("type") == "function_call_output" and isinstance(item.get("output"), str):
        return {**item, "output": visit(item["output"], DOCUMENT)}
    if "content" in item:
        role = USER if item.get("role") == USER else APP
        return {**item, "content": _blocks(item["content"], role, visit)}
    return item
