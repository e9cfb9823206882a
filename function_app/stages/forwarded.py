"""X-Forwarded-For, -Host and -Proto count only when the connection comes from a trusted proxy.

From any other peer they are whatever the client wrote, so they are dropped here, before
identity (a client must not name its own rate-limit bucket) and before the upstream step, which
then writes what the gateway itself saw: the peer's address, the Host header and the scheme.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Sequence

from ..core.identity import Network
from ..core.pipeline import Handler, Stage
from ..http.forwarding import FORWARDED_FOR
from ..http.messages import GatewayRequest, GatewayResponse


@functools.lru_cache(maxsize=4096)
def _peer_is_trusted(peer: str, trusted: tuple[Network, ...]) -> bool:
    # Memoised, bounded: few distinct peers, and parsing one cost ~3 % of the worker's CPU.
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def peer_is_trusted(peer: str, trusted: Sequence[Network]) -> bool:
    """The connection's peer is one of the trusted proxies (addresses or CIDR blocks)."""
    return _peer_is_trusted(peer, tuple(trusted))


def forwarded_stage(trusted: Sequence[Network]) -> Stage:
    trusted = tuple(trusted)
    # Not coroutines: they act before the next stage only, so the next stage's awaitable is
    # the one awaited (a frame fewer per request, resumed at every wait below).

    def stage(request: GatewayRequest, call_next: Handler) -> Awaitable[GatewayResponse]:
        if not _peer_is_trusted(request.client_host, trusted):
            request.headers.remove(*FORWARDED_FOR)
        return call_next(request)

    def no_proxy_trusted(request: GatewayRequest, call_next: Handler
                         ) -> Awaitable[GatewayResponse]:
        request.headers.remove(*FORWARDED_FOR)  # no peer is trusted: no look-up per request
        return call_next(request)

    return stage if trusted else no_proxy_trusted
