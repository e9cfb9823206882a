"""The Responses API's part of the OpenAI stage: stored responses routed back to the backend
that made them (response_ids.py), previous_response_id followed, ids rewritten on the way out,
and the stream's first events judged before the gateway commits (early.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from ..core.errors import NotFound
from ..core.pipeline import Handler
from ..core.upstream import UpstreamResponse
from ..http.messages import GatewayRequest, GatewayResponse
from ..routing.pools import MEMBER, PLAN, Member, Plan, Target
from ..routing.routes import MATCH, Match
from .bill import Wire
from .early import Failure, peek
from .ports import Models
from .response_events import error_event, judge
from .response_ids import IdRewriter, resolve
from .sse import last_boundary

STORED_PREFIX = "/v1/responses/"
SUBRESOURCES = {"GET": ("", "input_items"), "DELETE": ("",), "POST": ("cancel",)}


class ResponseNotFound(NotFound, code="not_found", message="No stored response has this id."):
    pass


def _only(member: Member, repeatable: bool) -> Plan:
    return Plan((Target((member,), label=member.name if "://" not in member.name
                        else "stored"),), repeatable=repeatable)


async def stored_response(request: GatewayRequest, call_next: Handler, models: Models,
                          secret: bytes) -> GatewayResponse:
    """GET/DELETE /v1/responses/{id}[/input_items], POST .../cancel: to the id's backend."""
    context = request.context
    tagged, _, rest = request.path[len(STORED_PREFIX):].partition("/")
    if rest not in SUBRESOURCES.get(request.method, ()):
        raise NotFound()  # only the Responses API's own paths reach a backend
    bound = resolve(secret, tagged, context.client, models.members(context))
    if bound is None:
        raise ResponseNotFound(f"No response found with id '{tagged[:100]}'.")
    path = STORED_PREFIX + bound.upstream_id + (f"/{rest}" if rest else "")
    MATCH.set(context, Match(MATCH.need(context).route, path))
    PLAN.set(context, _only(bound.member, request.method != "POST"))
    response = await call_next(request)
    rewrite = IdRewriter(secret, bound.member.name, context.client, bound.upstream_id)
    return rewritten(response, rewrite)


def follow_previous(request: GatewayRequest, models: Models, secret: bytes) -> str | None:
    """A request continuing a stored response goes to the backend that holds it, with the
    backend's own id (returned; None without one); an id that is not ours (or not this
    client's) is a 404."""
    body = request.context.json
    previous = body.get("previous_response_id") if isinstance(body, dict) else None
    if not isinstance(previous, str) or not previous:
        return None
    bound = resolve(secret, previous, request.context.client,
                    models.members(request.context))
    if bound is None:
        raise ResponseNotFound(f"Previous response with id '{previous[:100]}' not found.")
    current = json.loads(request.body) if isinstance(request.body, (bytes, bytearray)) else body
    request.body = json.dumps({**current, "previous_response_id": bound.upstream_id},
                              separators=(",", ":")).encode()
    PLAN.set(request.context, _only(bound.member, True))
    return bound.upstream_id


async def first_events(answer: UpstreamResponse) -> tuple[UpstreamResponse, Failure | None]:
    """The context's first_events check for Responses streams."""
    return await peek(answer, judge)


def responses_wire(secret: bytes, request: GatewayRequest, previous: str | None) -> Wire:
    """Usage from the final event (StreamTap, nothing stripped), ids tagged with the member
    that answered, and Responses' own error event for a stream broken after its first byte."""
    context = request.context
    member = MEMBER.get(context)
    rewrite = IdRewriter(secret, member.name, context.client, previous=previous) \
        if member is not None else None
    return Wire(error_event=error_event, rewrite=rewrite)


def rewritten(response: GatewayResponse, rewrite: IdRewriter) -> GatewayResponse:
    if isinstance(response.body, (bytes, bytearray)):
        response.body = rewrite(bytes(response.body))
        response.headers.remove("content-length")
        return response
    response.headers.remove("content-length")
    response.body = _by_events(response.body, rewrite)
    return response


async def _by_events(body: AsyncIterator[bytes], rewrite: IdRewriter) -> AsyncIterator[bytes]:
    """`body` rewritten up to each last blank line (whole events; a plain body at its end)."""
    tail = b""
    try:
        async for chunk in body:
            data = tail + chunk
            cut = last_boundary(data)
            data, tail = data[:cut], data[cut:]
            if data:
                yield rewrite(data)
        if tail:
            yield rewrite(tail)
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
