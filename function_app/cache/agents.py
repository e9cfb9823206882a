"""What the completion cache does differently for the agents' APIs: OpenAI Responses
(POST /v1/responses) and Anthropic Messages (POST /v1/messages).

- Stateful Responses requests are never cached: `store` not explicitly false (it defaults to
  true: the backend keeps the response under its id), `previous_response_id` (the answer
  depends on state the key does not hold) or `background` (the answer is a handle to a job).
  So a cached Responses answer names a response nobody stored: its id routes nowhere and the
  gateway answers a GET of it with 404, as the backend would, whoever holds the entry.
- Messages answers depend on the `anthropic-version` (and `anthropic-beta`) headers, which
  are forwarded: their values are part of the key.
- A stream is stored only once it ended properly: Responses with `response.completed`,
  Messages with `message_stop`; it is replayed as stored, event by event. A plain request is
  served from a stored plain answer only, a stream from a stored stream only (no conversion
  between the two forms for these APIs: a miss instead).
"""

from __future__ import annotations

from ..http.headers import Headers
from ..routing.routes import ANTHROPIC_MESSAGES, OPENAI_RESPONSES
from .replay import event_payloads

AGENT_KINDS = frozenset({OPENAI_RESPONSES, ANTHROPIC_MESSAGES})
FINAL_EVENT = {OPENAI_RESPONSES: "response.completed", ANTHROPIC_MESSAGES: "message_stop"}
KEYED_HEADERS = {ANTHROPIC_MESSAGES: ("anthropic-version", "anthropic-beta")}


def stateful(kind: str, body: dict) -> str | None:
    """Why a request of `kind` must not be cached (its answer is tied to stored state), or
    None when it may be."""
    if kind != OPENAI_RESPONSES:
        return None
    if body.get("store") is not False:
        return "store"
    if body.get("previous_response_id") is not None:
        return "previous_response_id"
    if body.get("background") not in (None, False):
        return "background"
    return None


def keyed_headers(kind: str, headers: Headers) -> str:
    """The values of the request headers that change an answer of `kind`, for its key."""
    names = KEYED_HEADERS.get(kind, ())
    return "".join(f" {name}={', '.join(v.strip() for v in headers.get_all(name))}"
                   for name in names)


def ended(kind: str, events: list[bytes]) -> bool:
    """Whether a stream of `kind` ended with its API's final event (and nothing after it)."""
    payloads = event_payloads(events)
    return bool(payloads) and isinstance(payloads[-1], dict) and \
        payloads[-1].get("type") == FINAL_EVENT[kind]
