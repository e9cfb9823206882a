"""Who the client is, for per-client limits: an API key, the Easy Auth principal, or the address.

The address follows X-Forwarded-For only through trusted proxies: starting from the connection's
peer, walk the header from the right while the hop is trusted, and take the first untrusted hop.
The leftmost entry is whatever the client wrote, so trusting it lets anyone pick their own bucket.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from ..http.messages import GatewayRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PRINCIPAL_HEADER = "x-ms-client-principal-id"  # set by App Service Authentication (Easy Auth)


def parse_networks(value: str) -> tuple[Network, ...]:
    """A comma-separated list of addresses or CIDR blocks; ValueError names a bad entry."""
    networks = []
    for item in (part.strip() for part in value.split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR block") from None
    return tuple(networks)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = value.strip().strip('"')
    if text.startswith("["):  # [v6]:port
        text = text[1:text.find("]")]
    elif text.count(":") == 1:  # v4:port, as Azure's front end writes it
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The first untrusted hop from the right, the peer included; the peer when it is untrusted."""
    trusted = tuple(trusted)
    if not forwarded_for:  # the usual case: no proxy header, the peer alone
        text, _ = hop_verdict(peer, trusted)
        return peer if text is None else text
    hops = [peer, *reversed([h for value in forwarded_for for h in value.split(",")])]
    last = peer
    for hop in hops:
        text, is_trusted = hop_verdict(hop, trusted)
        if text is None:
            return last  # garbage written by someone beyond the last trusted hop
        last = text
        if not is_trusted:
            return last
    return last


@functools.lru_cache(maxsize=4096)
def hop_verdict(hop: str, trusted: tuple[Network, ...]) -> tuple[str | None, bool]:
    """(the hop's address as text, or None when it is not one; whether it is a trusted proxy).

    Memoised, bounded: an instance sees few distinct peers and proxies, and parsing the address
    on every request was about 5 % of the worker's CPU (load/profile_worker.py). A client
    writing new X-Forwarded-For values on every request only evicts entries."""
    address = _address(hop)
    if address is None:
        return None, False
    return str(address), any(address in network for network in trusted)


@dataclass(frozen=True)
class ClientIdentity:
    """How to name the client: `source` is "address", "api-key" or "principal"."""

    source: str
    trusted_proxies: tuple[Network, ...]
    api_key_header: str = "x-api-key"

    def of(self, request: GatewayRequest) -> str:
        """A stable client id; keys are hashed so no secret is stored or logged."""
        if self.source == "api-key":
            key = request.headers.get(self.api_key_header) or request.headers.get("authorization")
            if key:
                return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]
        elif self.source == "principal":
            principal = request.headers.get(PRINCIPAL_HEADER)
            if principal:
                return "principal:" + principal
        forwarded = request.headers.get_all("x-forwarded-for")
        return "ip:" + client_address(request.client_host, forwarded, self.trusted_proxies)
