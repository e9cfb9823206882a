"""RFC 9111 rules, keys and the entry wire form, as pure functions."""

import pytest

from function_app.cache.entry import CacheEntry, EntryFormatError
from function_app.cache.keys import completion_key, http_key, query_without_function_key
from function_app.cache.policy import (
    freshness,
    request_rules,
    unshareable,
    usable,
    vary_names,
)
from function_app.http.headers import Headers


@pytest.mark.parametrize(("headers", "ttl"), [
    ([], 30),
    ([("cache-control", "max-age=5")], 5),
    ([("Cache-Control", "max-age=5, s-maxage=9")], 9),
    ([("cache-control", "public, max-age=0")], 0),
    ([("cache-control", "no-store")], 0),
    ([("cache-control", "private, max-age=60")], 0),
    ([("cache-control", "no-cache")], 0),
    ([("vary", "*")], 0),
    ([("set-cookie", "a=b")], 0),
    ([("cache-control", "max-age=nonsense")], 0),  # invalid: stale (RFC 9111 4.2.1)
    ([("date", "Sun, 29 Nov 2026 10:00:00 GMT"), ("expires", "Sun, 29 Nov 2026 10:01:40 GMT")],
     100),
    ([("date", "Sun, 29 Nov 2026 10:00:00 GMT"), ("expires", "0")], 0),
    ([("expires", "Sun, 29 Nov 2026 10:01:40 GMT")], 0),
    ([("cache-control", "max-age=7"), ("expires", "0")], 7),
])
def test_freshness_follows_the_response_directives(headers, ttl):
    assert freshness(200, Headers(headers), 30) == ttl


@pytest.mark.parametrize("status", [500, 502, 201, 302, 429])
def test_uncacheable_statuses_are_never_stored(status):
    assert freshness(status, Headers([("cache-control", "max-age=60")]), 30) == 0


def test_request_directives():
    assert request_rules(Headers([("cache-control", "no-store")])).bypass
    assert not request_rules(Headers([("cache-control", "no-cache")])).reuse
    assert not request_rules(Headers([("pragma", "no-cache")])).reuse
    rules = request_rules(Headers([("cache-control", "max-age=3")]))
    assert usable(2, 30, rules) and not usable(4, 30, rules)
    assert not usable(31, 30, request_rules(Headers([])))


def test_vary_names_are_sorted_and_lowercase():
    assert vary_names(Headers([("Vary", "Accept-Language, accept"), ("vary", "X-A")])) == (
        "accept", "accept-language", "x-a")


@pytest.mark.parametrize("query", ["code=k", "CODE=k", "Code=k", "c%6Fde=k", "code"])
def test_the_function_key_never_reaches_a_key(query):
    assert query_without_function_key(f"a=1&{query}&b=2") == "a=1&b=2"
    assert http_key("/r", "/r", f"a=1&{query}") == http_key("/r", "/r", "a=1")


def test_keys_separate_routes_paths_queries_and_clients():
    keys = {http_key("/r", "/r", ""), http_key("/s", "/r", ""), http_key("/r", "/r", "x=1"),
            http_key("/r", "/r", "", "client-a"), http_key("/r", "/r", "", "client-b")}
    assert len(keys) == 5


def test_completion_key_ignores_order_whitespace_and_delivery_fields():
    one = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    two = {"temperature": 0, "stream": True, "stream_options": {"include_usage": True},
           "user": "u", "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert completion_key("chat", one, "p") == completion_key("chat", two, "p")
    assert completion_key("chat", one, "p") != completion_key("chat", one, "q")
    assert completion_key("chat", one, "p") != completion_key(
        "chat", {**one, "temperature": 1}, "p")


def test_entry_round_trips_and_rejects_garbage():
    entry = CacheEntry(200, [("content-type", "text/plain")], b"\x00body", 1.5, 30.0, 2.0,
                       (("accept", "abc"),), (3, 2))
    assert CacheEntry.from_bytes(entry.to_bytes()) == entry
    assert entry.event_chunks() == [b"\x00bo", b"dy"]
    with pytest.raises(EntryFormatError):
        CacheEntry.from_bytes(b"\x00\x00\x00\x05nope!")


def test_age_counts_the_upstream_age():
    entry = CacheEntry(200, [], b"", stored_at=100.0, ttl=30.0, initial_age=10.0)
    assert entry.age(105.0) == 15.0
    assert entry.remaining(105.0) == 15.0
    assert entry.expires_at() == 120.0


@pytest.mark.parametrize(("headers", "kwargs", "reason"), [
    ([], {}, None),
    ([("cache-control", "private, no-store"), ("set-cookie", "s=1")], {}, "no-store"),
    ([("cache-control", "private")], {}, "private"),
    ([("set-cookie", "s=1")], {}, "set-cookie"),
    ([("vary", "accept, *")], {}, "vary-star"),
    ([], {"credentialed": True}, "credentials"),
    ([("cache-control", "public")], {"credentialed": True}, None),
    ([("cache-control", "s-maxage=5")], {"credentialed": True}, None),
    ([("content-encoding", "gzip")], {}, None),
    ([("content-encoding", "gzip")], {"coding_keyed": False}, "content-encoding"),
    ([("vary", "accept-language")], {}, None),
    ([("vary", "accept-language")], {"vary_keyed": False}, "vary"),
    ([("vary", "Accept-Encoding")], {"vary_keyed": False}, None),
])
def test_one_rule_says_what_may_be_shared(headers, kwargs, reason):
    assert unshareable(Headers(headers), **kwargs) == reason
