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
    """Counts the content deltas forwarded to the client, when the count is wanted.

    Only a stream cut short reads the count (openai/tapped.py `_cut_short`). So the forwarded
    pieces wait in `held` (the per-chunk loop appends them itself, a call less per chunk) and
    are counted when `usage` asks, or in one go once the loop finds them past HELD_BYTES
    (`count`). Memory stays bounded, and a stream that ends normally within the bound never
    runs the count: one regex over every chunk, about an eighth of the bare streaming
    function's instructions per chunk (docs/perf/pass13-streams.md). The held pieces are
    counted joined by NUL, which no match can span: the same count as piece by piece.
    """

    HELD_BYTES = 64 * 1024  # forwarded bytes a stream holds before counting their deltas
    # The deltas in a forwarded piece (`feed`, for a caller that counts as it goes).
    find = staticmethod(_DELTA.findall)

    def __init__(self) -> None:
        self.deltas = 0
        self.held: list[bytes] = []  # forwarded, not counted yet

    def feed(self, forwarded: bytes) -> None:
        self.deltas += len(_DELTA.findall(forwarded))

    def count(self) -> None:
        """Count the held pieces and let them go (the list is emptied in place)."""
        held = self.held
        if held:
            self.deltas += len(_DELTA.findall(b"\0".join(held)))
            held.clear()

    def usage(self, prompt_tokens: int) -> Usage:
        self.count()
        return Usage(prompt_tokens, self.deltas)
