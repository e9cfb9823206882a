"""The request pipeline: an ordered list of stages folded around a terminal handler.

A stage is `async (request, call_next) -> response`. The order is written once, as data, in
wiring/build.py; no stage registers itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from ..http.messages import GatewayRequest, GatewayResponse

Handler = Callable[[GatewayRequest], Awaitable[GatewayResponse]]
Stage = Callable[[GatewayRequest, Handler], Awaitable[GatewayResponse]]


def compose(stages: Sequence[Stage], terminal: Handler) -> Handler:
    """Wrap `terminal` so that `stages[0]` runs first and `stages[-1]` just before it."""
    handler = terminal
    for stage in reversed(stages):
        handler = partial(stage, call_next=handler)
    return handler
