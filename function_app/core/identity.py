"""Who the client is, for per-client limits: an API key, the Easy Auth principal, or the address.

The address follows X-Forwarded-For only through trusted proxies: starting from the connection's
peer, walk the header from the right while the hop is trusted, and take the first untrusted hop.
The leftmost entry is whatever the client wrote, so trusting it lets anyone pick their own bucket.
"""

from __future__ import annotations

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
    hops = [peer, *reversed([h for value in forwarded_for for h in value.split(",")])]
    last = peer
    for hop in hops:
        address = _address(hop)
        if address is None:
            return last  # garbage written by someone beyond the last trusted hop
        last = str(address)
        if not any(address in network for network in trusted):
            return last
    return last


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
