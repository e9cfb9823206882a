"""A streamed answer whose upstream fails after the first byte: end it in OpenAI's shape.

Nothing can be retried once bytes reached the client, and the status line is long gone; what
is left is to end the stream with an error event the OpenAI SDKs understand (they raise an
APIError on a `data:` event carrying "error") rather than a bare cut, and to bill for what was
sent: the prompt plus one token per content delta forwarded (servers stream about one token
per chunk; the estimate stands in for the usage chunk that never came).
"""

from __future__ import annotations

import re

from ..core.errors import GatewayError
from .errors import openai_error_body
from .usage import Usage

# A non-empty "content" (chat), "text" (completions, Anthropic's text_delta) or "delta"
# (Responses' output_text.delta) string in a forwarded event.
_DELTA = re.compile(rb'"(?:content|text|delta)"\s*:\s*"(?!")')


def error_event(error: GatewayError) -> bytes:
    """The SSE event ending a broken stream; preceded by a blank line in case an event was
    cut in half."""
    return b"\n\ndata: " + openai_error_body(error) + b"\n\n"


class SentTokens:
    """Counts the content deltas forwarded to the client."""

    # The deltas in a forwarded piece; a per-chunk loop may add `len(find(piece))` to `deltas`
    # itself, which is `feed` without a call of its own (openai/tapped.py).
    find = staticmethod(_DELTA.findall)

    def __init__(self) -> None:
        self.deltas = 0

    def feed(self, forwarded: bytes) -> None:
        self.deltas += len(_DELTA.findall(forwarded))

    def usage(self, prompt_tokens: int) -> Usage:
        return Usage(prompt_tokens, self.deltas)
