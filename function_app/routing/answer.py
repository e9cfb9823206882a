"""The answer the upstream step gives: the chosen attempt's response, or the last failure.

Every answer names the member that served it in X-Gateway-Backend (a URL-named member by its
model's name). With no attempt at all the answer is 503, or 429 with the shortest wait when
every member is cooling down after a 429.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..core.errors import BackendsCoolingDown, NoHealthyBackend, UpstreamTimeout
from ..core.upstream import UpstreamResponse
from ..http.forwarding import client_response_headers
from ..http.messages import GatewayResponse
from .answer_body import complete_body, with_release
from .exchange import Exchange
from .pools import MEMBER, Member

BACKEND_HEADER = "X-Gateway-Backend"


async def respond(ex: Exchange, answer: UpstreamResponse, member: Member,
                  release: Callable[[], None]) -> GatewayResponse:
    """`answer` as the client's response; `release` runs once its body is read (at once for
    a body read whole, at the end of a streamed one)."""
    body = await complete_body(answer.body, answer.headers)
    if type(body) is bytes or isinstance(body, (bytes, bytearray)):  # bytes: no call
        release()
    else:
        body = with_release(body, release)
    headers = client_response_headers(answer.headers)
    shown = ex.last_served_by  # served_by(member, target), set by the attempt just made
    ex.request.context.served_by = shown  # for telemetry's backend label
    MEMBER.set(ex.request.context, member)
    headers.add(BACKEND_HEADER, shown)
    return GatewayResponse(answer.status, headers, body)


async def give_up(ex: Exchange) -> GatewayResponse:
    """The last answer as it came, or its error; with no attempt at all, 503 (429 with the
    shortest wait when every member is cooling down after a 429)."""
    wait = ex.router.breakers.shortest_wait(
        [m for t in ex.plan.targets for m in t.members]) if ex.alternatives() else None
    if ex.last is None:
        if wait is not None:
            raise BackendsCoolingDown(headers=_wait_headers(wait))
        raise NoHealthyBackend()
    _, answer, error = ex.last
    if answer is None:
        raise error or UpstreamTimeout()
    ex.last = None
    headers = client_response_headers(answer.headers)
    if answer.status == 429 and wait is not None:
        for name, value in _wait_headers(wait).items():
            headers.set(name, value)  # the member back first, not the last one asked
    headers.add(BACKEND_HEADER, ex.last_served_by)
    ex.request.context.served_by = ex.last_served_by
    body = await complete_body(answer.body, answer.headers)
    return GatewayResponse(answer.status, headers, body)


def _wait_headers(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, round(wait * 1000)))}
