"""A stored response's id names the backend that holds it, so any instance can route it back.

The Responses API stores a response on the backend that made it (`store` defaults to true); a
later GET/DELETE /v1/responses/{id}, its input_items, its cancel, or a new request naming it
as `previous_response_id` must reach that same backend. Instance memory cannot say which one
(the next request may land on another instance), and a storage row per response would cost a
write on the first byte's path. So the id the client sees carries the answer:

    <backend's id>-gw<16 hex>   the hex = HMAC-SHA256(RESPONSES_ID_SECRET,
                                          member name, client, backend's id)[:16]

Any instance resolves it by recomputing the MAC for each member of the model table the key may
use (a handful); nothing is stored. The client is in the MAC, so another client (another key's
tenant) holding the id cannot use it: it resolves to nothing and gets 404. With the secret
empty the MAC is still computed (ids route back all the same) but anyone can forge one, which
only lets a client name a backend it could reach anyway; set the secret, the same on every
instance, to keep tenants' stored responses apart. Rotating it orphans existing ids.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..routing.pools import Member

MARK = "-gw"
DIGITS = 16
_RESPONSE_ID = re.compile(rb'"id"\s*:\s*"(resp[A-Za-z0-9_\-]{1,200})"')
# What a backend's id may be: it goes into an upstream path, so no '/', '.', '?', '%' or '#'.
UPSTREAM_ID = re.compile(r"[A-Za-z0-9_\-]{1,200}")


@dataclass(frozen=True)
class Bound:
    """A tagged id resolved: the backend's own id and the member that holds it."""

    upstream_id: str
    member: Member


def _mac(secret: bytes, member: str, client: str, upstream_id: str) -> str:
    message = "\n".join((member, client, upstream_id)).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:DIGITS]


def tag(secret: bytes, member: str, client: str, upstream_id: str) -> str:
    return f"{upstream_id}{MARK}{_mac(secret, member, client, upstream_id)}"


def resolve(secret: bytes, tagged: str, client: str, members: Iterable[Member]) -> Bound | None:
    """The member whose MAC matches `tagged` for `client`; None when the id is not one of ours
    (no mark, or no member matches)."""
    upstream_id, mark, digest = tagged.rpartition(MARK)
    if not mark or len(digest) != DIGITS or not UPSTREAM_ID.fullmatch(upstream_id):
        return None
    for member in members:
        if hmac.compare_digest(_mac(secret, member.name, client, upstream_id), digest):
            return Bound(upstream_id, member)
    return None


class IdRewriter:
    """Replaces the backend's response id by its tagged form in forwarded bytes.

    The id is learnt from the first `"id":"resp..."` seen (the response.created event, or the
    plain answer); every later quoted occurrence is replaced. Fed whole SSE events (or whole
    bodies), so an id is never split across calls.
    """

    def __init__(self, secret: bytes, member: str, client: str, known: str | None = None,
                 previous: str | None = None):
        self._secret, self._member, self._client = secret, member, client
        self._old: bytes | None = None
        self._new = b""
        if known:
            self._learn(known)
        # The previous_response_id the answer repeats: the client's own tagged form again.
        self._previous = (self._quoted(previous), self._quoted(tag(
            secret, member, client, previous))) if previous else None

    @staticmethod
    def _quoted(value: str) -> bytes:
        return b'"' + value.encode() + b'"'

    def _learn(self, upstream_id: str) -> None:
        self._old = b'"' + upstream_id.encode() + b'"'
        self._new = b'"' + tag(self._secret, self._member, self._client,
                               upstream_id).encode() + b'"'

    def __call__(self, data: bytes) -> bytes:
        if self._previous is not None:
            data = data.replace(*self._previous)
        if self._old is None:
            found = _first_id(data)
            if found is None:
                return data
            self._learn(found)
        return data.replace(self._old, self._new) if self._old else data


def _first_id(data: bytes) -> str | None:
    found = _RESPONSE_ID.search(data)
    return found.group(1).decode("ascii", "replace") if found else None
