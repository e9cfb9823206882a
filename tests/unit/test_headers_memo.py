"""The wire memo of `Headers` (issue #26, pass 7): fields made from wire bytes hand the same bytes
back from `raw()` without encoding them again, and every change to a field the memo holds either
keeps the memo exact or drops it. The reference for "exact" is a Headers made from the same
text pairs, which has no memo and encodes every value as `raw()` always did."""

import random

import pytest

from function_app.http.headers import Fields, Headers

ANSWER = [(b"Content-Type", b"application/json; charset=utf-8"), (b"Content-Length", b"62"),
          (b"Date", b"Sun, 06 Dec 2026 19:15:01 GMT"), (b"Connection", b"keep-alive"),
          (b"Keep-Alive", b"timeout=75"), (b"X-Odd", b"caf\xe9")]


def encoded(headers: Headers) -> list[tuple[bytes, bytes]]:
    """What raw() gives for the same fields without any memo (each value encoded)."""
    plain = Headers(headers.pairs())
    assert plain._wire is None
    return plain.raw()


def made() -> Headers:
    headers = Headers.from_raw(ANSWER)
    assert headers._wire is not None  # from wire bytes with no repeated name: a memo
    return headers


def test_from_raw_hands_back_the_bytes_received_with_names_lower_case():
    headers = made()
    assert headers.raw() == [(k.lower(), v) for k, v in ANSWER] == encoded(headers)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda h: h.set("content-type", "text/plain"),
     [(b"content-type", b"text/plain"), (b"content-length", b"62")]),
    (lambda h: h.set("X-New", "1"),
     [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"62"),
      (b"x-new", b"1")]),
    (lambda h: h.add("Content-Length", "63"),
     [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"62"),
      (b"content-length", b"63")]),
    (lambda h: h.add("x-new", "\u20ac"),
     [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"62"),
      (b"x-new", "\u20ac".encode())]),
    (lambda h: h.set_all([("x-a", "1"), ("content-type", "text/html")]),
     [(b"content-type", b"text/html"), (b"content-length", b"62"), (b"x-a", b"1")]),
    (lambda h: h.set_all([("x-a", "1"), ("X-A", "2")]),
     [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"62"),
      (b"x-a", b"2")]),
    (lambda h: h.extend([("content-type", "x"), ("x-b", "2")]),
     [(b"content-type", b"application/json; charset=utf-8"), (b"content-type", b"x"),
      (b"content-length", b"62"), (b"x-b", b"2")]),
    (lambda h: h.update([("content-length", "1"), ("content-length", "2")]),
     [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"1"),
      (b"content-length", b"2")]),
    (lambda h: h.update_fields({"content-type": ("a", "b")}),
     [(b"content-type", b"a"), (b"content-type", b"b"), (b"content-length", b"62")]),
    (lambda h: h.update_fields(Fields.of([("Content-Length", "7")])),
     [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"7")]),
    (lambda h: h.update_fields(Fields.of([("RateLimit", "r=1")])),
     [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"62"),
      (b"ratelimit", b"r=1")]),
    (lambda h: h.update_fields(Fields.of([("x-wide", "\u0113")])),
     [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"62"),
      (b"x-wide", "\u0113".encode())]),
    (lambda h: h.remove("CONTENT-TYPE", "never-there"), [(b"content-length", b"62")]),
    (lambda h: h.remove("never-there"),
     [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"62")]),
])
def test_every_change_after_the_memo_is_on_the_wire(change, expected):
    """Fails when a method leaves the memo as it was: raw() would then give the old bytes."""
    headers = made().without({"date", "connection", "keep-alive", "x-odd"})
    change(headers)
    assert headers.raw() == expected == encoded(headers)


def test_a_new_name_wider_than_latin_1_takes_the_careful_path_as_before():
    headers = made()
    headers.set("x-caf\u0113", "v")
    assert headers.raw() == encoded(headers)
    assert headers.raw()[-1] == (b"x-caf?", b"v")


def test_without_and_copy_keep_their_own_memo():
    original = made()
    copy = original.copy()
    kept = original.without({"date"})
    copy.add("x-copy", "1")  # a new name: onto the copy's memo, never the original's
    copy.set("content-type", "changed")
    kept.add("x-new", "1")
    assert original.raw() == [(k.lower(), v) for k, v in ANSWER]
    assert copy.raw() == encoded(copy) and (b"content-type", b"changed") in copy.raw()
    assert kept.raw() == encoded(kept) and (b"date", ANSWER[2][1]) not in kept.raw()
    assert kept.raw()[-1] == (b"x-new", b"1")


def test_repeated_names_from_the_wire_come_out_grouped_as_before():
    raw = [(b"Set-Cookie", b"a=1"), (b"X-B", b"2"), (b"set-cookie", b"b=2")]
    headers = Headers.from_raw(raw)
    assert headers.raw() == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-b", b"2")]
    assert headers.raw() == encoded(headers)


def test_an_answers_usual_changes_keep_the_memo():
    """The proxied answer's path (routing/answer.py, the rate-limit and request-id stages,
    app.to_response): none of its steps should cost the memo, or raw() encodes every value."""
    headers = made().without({"date", "connection", "keep-alive"})
    headers.add("X-Gateway-Backend", "node")
    headers.update_fields(Fields.of([("RateLimit", '"global";r=9;t=1'), ("X-RateLimit-Limit",
                                                                          "10")]))
    headers.set("X-Request-ID", "r1")
    sent = headers.without(("content-length",))
    assert sent._wire is not None
    assert sent.raw() == encoded(sent)
    assert [k for k, _ in sent.raw()] == [b"content-type", b"x-odd", b"x-gateway-backend",
                                          b"ratelimit", b"x-ratelimit-limit", b"x-request-id"]


def test_a_requests_usual_changes_keep_the_memo():
    """The forwarded request's path (forwarded stage, upstream_request_headers, trace headers)."""
    headers = Headers.from_raw([(b"host", b"h:1"), (b"content-type", b"application/json"),
                                (b"x-forwarded-for", b"1.2.3.4"), (b"content-length", b"2")])
    headers.remove("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")
    out = headers.without({"host", "content-length"})
    out.set_all([("x-forwarded-for", "127.0.0.1"), ("x-request-id", "r1")])
    out.remove("traceparent", "tracestate")
    out.set("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-00")
    assert out._wire is not None and out.raw() == encoded(out)


OPS = [
    lambda h, r: h.set(r.choice(NAMES), r.choice(VALUES)),
    lambda h, r: h.add(r.choice(NAMES), r.choice(VALUES)),
    lambda h, r: h.set_all([(r.choice(NAMES), r.choice(VALUES)) for _ in range(r.randint(0, 3))]),
    lambda h, r: h.extend([(r.choice(NAMES), r.choice(VALUES))]),
    lambda h, r: h.update([(r.choice(NAMES), r.choice(VALUES))]),
    lambda h, r: h.update_fields(Fields.of([(r.choice(NAMES), r.choice(VALUES))])),
    lambda h, r: h.update_fields({r.choice(NAMES).lower(): (r.choice(VALUES),)}),
    lambda h, r: h.remove(*r.sample(NAMES, 2)),
    lambda h, r: h.without({r.choice(NAMES).lower()}),
    lambda h, r: h.copy(),
]
NAMES = ["A", "b", "Set-Cookie", "x-caf\u00e9", "C", "d", "x-\u0113"]
VALUES = ["1", "two", "caf\u00e9", "\u20ac", "", "a\r\nb"]


def test_any_sequence_of_changes_gives_the_bytes_an_encode_would():
    rng = random.Random(7)
    for _ in range(400):
        headers = Headers.from_raw([(n.encode("utf-8"), v.encode("latin-1"))
                                    for n, v in [("A", "1"), ("C", "3"), ("d", "caf\u00e9")]])
        for _ in range(rng.randint(1, 8)):
            made_one = rng.choice(OPS)(headers, rng)
            if isinstance(made_one, Headers):
                headers = made_one
            assert headers.raw() == encoded(headers)
