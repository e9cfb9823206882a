"""What a key may do: whether it is usable now, and which models and routes it may reach."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Protocol

from ..http.context import Fact
from ..http.messages import GatewayRequest
from .records import KeyRecord, TenantRecord


@dataclass(frozen=True)
class Grant:
    """A usable key and its tenant's record (None when the tenant has no record of its own)."""

    key: KeyRecord
    tenant: TenantRecord | None = None

    @property
    def client_id(self) -> str:
        """The client identity of every request made with this key: its tenant."""
        return "tenant:" + self.key.tenant


GRANT: Fact[Grant] = Fact("grant")  # the gateway API key's grant, when one was presented


def refusal(record: KeyRecord, now: float) -> str | None:
    """Why the key cannot be used at `now` ("revoked", "expired"), or None."""
    if record.revoked:
        return "revoked"
    # `not now < expires` also holds for a NaN expiry: a broken row fails closed.
    if record.expires and not now < record.expires:
        return "expired"
    return None


def model_allowed(record: KeyRecord, model: str) -> bool:
    """Empty `models` allows all; entries may be shell patterns (`gpt-4o*`)."""
    return not record.models or any(fnmatchcase(model, p) for p in record.models)


def route_allowed(record: KeyRecord, route: str) -> bool:
    """Empty `routes` allows all; entries are route paths or shell patterns (`/v1/*`)."""
    return not record.routes or any(fnmatchcase(route, p) for p in record.routes)


class ClientNamer(Protocol):
    def of(self, request: GatewayRequest) -> str: ...


class TenantIdentity:
    """The client of a request: the tenant of its gateway key when it has one (GRANT), else
    whatever `inner` (core/identity.py) names."""

    def __init__(self, inner: ClientNamer):
        self._inner = inner

    def of(self, request: GatewayRequest) -> str:
        grant = GRANT.get(request.context)
        return grant.client_id if grant is not None else self._inner.of(request)
