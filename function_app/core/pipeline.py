"""The request pipeline: an ordered list of stages folded around a terminal handler.

A stage is `async (request, call_next) -> response`. The order is written once, as data, in
wiring/build.py; no stage registers itself.

Stages that act on some route kinds only are declared so (`ForKinds`). Once the routing stage
(a `Branching` stage) knows a request's route, the request runs a chain composed for its kind
at start, without the stages that would only pass it on: every stage kept runs in the same
order as in the list, and a kind the branching stage does not name runs the whole list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from ..http.messages import GatewayRequest, GatewayResponse

Handler = Callable[[GatewayRequest], Awaitable[GatewayResponse]]
Stage = Callable[[GatewayRequest, Handler], Awaitable[GatewayResponse]]


@dataclass(frozen=True)
class ForKinds:
    """`stage`, which acts on requests whose route kind is in `kinds` and passes every other
    request straight on to `call_next` (it still checks that itself, so it is correct anywhere).
    """

    kinds: frozenset[str]
    stage: Stage

    def __call__(self, request: GatewayRequest, call_next: Handler
                 ) -> Awaitable[GatewayResponse]:
        return self.stage(request, call_next)


class Branching(Protocol):
    """A stage after which a request's route kind is known."""

    kinds: frozenset[str]  # the kinds that get a chain of their own

    def branch(self, chains: Mapping[str, Handler], other: Handler) -> Handler:
        """The handler that runs this stage, then `chains[kind]` (else `other`)."""
        ...


def compose(stages: Sequence[Stage], terminal: Handler) -> Handler:
    """Wrap `terminal` so that `stages[0]` runs first and `stages[-1]` just before it; after the
    last Branching stage, a chain per kind without the ForKinds stages that do not act on it."""
    for at in range(len(stages) - 1, -1, -1):
        branch = getattr(stages[at], "branch", None)
        if branch is not None:
            tail = stages[at + 1:]
            chains = {kind: _fold([s for s in tail if _acts_on(s, kind)], terminal)
                      for kind in stages[at].kinds}  # type: ignore[attr-defined]
            return _fold(stages[:at], branch(chains, _fold(tail, terminal)))
    return _fold(stages, terminal)


def _acts_on(stage: Stage, kind: str) -> bool:
    return not isinstance(stage, ForKinds) or kind in stage.kinds


def _fold(stages: Sequence[Stage], terminal: Handler) -> Handler:
    handler = terminal
    for stage in reversed(stages):
        # A ForKinds runs its stage directly: the wrapper would be one more call per request.
        handler = partial(stage.stage if isinstance(stage, ForKinds) else stage,
                          call_next=handler)
    return handler
