"""X-Forwarded-For, -Host and -Proto count only when the connection comes from a trusted proxy.

From any other peer they are whatever the client wrote, so they are dropped here, before
identity (a client must not name its own rate-limit bucket) and before the upstream step, which
then writes what the gateway itself saw: the peer's address, the Host header and the scheme.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from ..core.identity import Network
from ..core.pipeline import Handler, Stage
from ..http.forwarding import FORWARDED_FOR
from ..http.messages import GatewayRequest, GatewayResponse


def peer_is_trusted(peer: str, trusted: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def forwarded_stage(trusted: Sequence[Network]) -> Stage:
    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        if not peer_is_trusted(request.client_host, trusted):
            request.headers.remove(*FORWARDED_FOR)
        return await call_next(request)

    return stage
