import pytest

from function_app.core.identity import ClientIdentity, client_address, parse_networks
from function_app.http.headers import Headers
from function_app.http.messages import GatewayRequest

LOOPBACK = parse_networks("127.0.0.1/32,::1/128")


def request(peer, headers=()):
    return GatewayRequest("POST", "/infer/python", "", Headers(headers), b"", peer)


def test_an_untrusted_peer_is_the_client_whatever_it_forwards():
    assert client_address("198.51.100.7", ["1.1.1.1"], LOOPBACK) == "198.51.100.7"


def test_through_a_trusted_peer_the_rightmost_untrusted_hop_is_the_client():
    # The leftmost entry is the client's own claim; the front end appended the real address.
    assert client_address("127.0.0.1", ["6.6.6.6, 203.0.113.9"], LOOPBACK) == "203.0.113.9"


def test_trusted_hops_are_skipped_from_the_right():
    trusted = parse_networks("127.0.0.1, 10.0.0.0/8")
    hops = ["203.0.113.9, 10.1.2.3", "10.9.9.9"]
    assert client_address("127.0.0.1", hops, trusted) == "203.0.113.9"


def test_azure_front_end_ports_and_v6_brackets_are_understood():
    assert client_address("127.0.0.1", ["203.0.113.9:51234"], LOOPBACK) == "203.0.113.9"
    assert client_address("::1", ["[2001:db8::5]:443"], LOOPBACK) == "2001:db8::5"


def test_garbage_beyond_the_trusted_hops_does_not_pick_a_bucket():
    assert client_address("127.0.0.1", ["pick-my-bucket"], LOOPBACK) == "127.0.0.1"


def test_api_keys_are_hashed_and_distinct():
    identity = ClientIdentity("api-key", LOOPBACK)
    one = identity.of(request("127.0.0.1", [("x-api-key", "secret-one")]))
    two = identity.of(request("127.0.0.1", [("x-api-key", "secret-two")]))
    assert one.startswith("key:") and one != two
    assert "secret" not in one


def test_a_missing_key_falls_back_to_the_address():
    identity = ClientIdentity("api-key", LOOPBACK)
    assert identity.of(request("198.51.100.1")) == "ip:198.51.100.1"


def test_principal_comes_from_easy_auth():
    identity = ClientIdentity("principal", LOOPBACK)
    found = identity.of(request("127.0.0.1", [("x-ms-client-principal-id", "abc-123")]))
    assert found == "principal:abc-123"


def test_bad_trusted_proxy_entry_is_named():
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_networks("10.0.0.0/8, not-an-ip")
