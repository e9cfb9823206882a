import os
import re

from function_app.http.forwarding import (
    client_response_headers,
    request_id_from,
    strip_function_key,
    upstream_request_headers,
)
from function_app.http.headers import Headers


def names(headers):
    return [k.lower() for k, _ in headers]


def test_hop_by_hop_and_connection_named_fields_are_dropped():
    incoming = [("connection", "keep-alive, x-secret-hop"), ("keep-alive", "timeout=5"),
                ("x-secret-hop", "1"), ("te", "trailers"), ("upgrade", "h2c"),
                ("transfer-encoding", "chunked"), ("proxy-authorization", "Basic x"),
                ("content-type", "application/json"), ("authorization", "Bearer t")]
    out = upstream_request_headers(Headers(incoming), client_host="10.0.0.9", scheme="https",
                                   host="gw.example", request_id="r1")
    assert set(names(out)) == {"content-type", "authorization", "x-forwarded-for",
                               "x-forwarded-proto", "x-forwarded-host", "x-request-id"}


def test_function_key_and_host_never_go_upstream():
    out = upstream_request_headers(Headers([("x-functions-key", "k"), ("host", "gw"),
                                            ("content-length", "3")]),
                                   client_host="1.2.3.4", scheme="http", host="gw",
                                   request_id="r")
    assert not {"x-functions-key", "host", "content-length"} & set(names(out))


def test_forwarded_for_appends_the_peer_and_keeps_the_earlier_hops():
    out = dict(upstream_request_headers(Headers([("x-forwarded-for", "203.0.113.7"),
                                                 ("x-forwarded-proto", "https")]),
                                        client_host="10.1.1.1", scheme="http", host="gw",
                                        request_id="abc"))
    assert out["x-forwarded-for"] == "203.0.113.7, 10.1.1.1"
    assert out["x-forwarded-proto"] == "https"
    assert out["x-forwarded-host"] == "gw"
    assert out["x-request-id"] == "abc"


def test_response_loses_hop_by_hop_and_host_set_fields():
    out = client_response_headers(Headers([
        ("Connection", "close"), ("Transfer-Encoding", "chunked"), ("Server", "uvicorn"),
        ("Date", "x"), ("Content-Type", "text/event-stream"), ("X-Cache", "MISS")]))
    assert names(out) == ["content-type", "x-cache"]


def test_code_query_parameter_is_stripped_and_others_kept():
    assert strip_function_key("code=secret&a=1&codex=2") == "a=1&codex=2"
    assert strip_function_key("") == ""


def test_request_id_is_kept_when_sane_and_made_otherwise():
    assert request_id_from("abc-123") == "abc-123"
    made = request_id_from("bad id with spaces\r\n")
    assert made != "bad id with spaces\r\n" and len(made) == 32
    assert len(request_id_from(None)) == 32


def test_made_request_ids_are_hex_distinct_and_differ_in_a_forked_child():
    made = {request_id_from(None) for _ in range(10_000)}
    assert len(made) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, ",".join(request_id_from(None) for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split(",")
    os.close(read)
    parent = [request_id_from(None) for _ in range(5)]
    assert len(child) == 5 and not set(child) & set(parent)


def test_every_connection_value_drops_what_it_names_common_values_included():
    """Connection: keep-alive (or upgrade) names only fields dropped anyway, so it skips the
    scan; every other value, a repeated field, or a field named like the option still goes
    through it (a field named "close" goes when Connection says close, as before)."""
    cases = [
        ([("Connection", "keep-alive")], []),
        ([("Connection", "Upgrade")], []),
        ([("Connection", "close")], ["close"]),
        ([("Connection", "keep-alive, x-hop")], ["x-hop"]),
        ([("Connection", "keep-alive"), ("Connection", "x-hop")], ["x-hop"]),
        ([("Connection", "KEEP-ALIVE,X-Hop")], ["x-hop"]),
    ]
    for connection, dropped in cases:
        fields = [*connection, ("keep-alive", "timeout=5"), ("close", "c"), ("x-hop", "h"),
                  ("x-kept", "k")]
        for headers in (Headers(fields), Headers.from_raw([(k.encode(), v.encode())
                                                            for k, v in fields])):
            out = client_response_headers(headers)
            assert names(out) == [n for n in ("close", "x-hop", "x-kept") if n not in dropped]
            assert out.raw() == Headers(out.pairs()).raw()


def _upstream_before(headers, *, client_host, scheme, host, request_id):
    """upstream_request_headers as it was, through the Headers methods."""
    from function_app.http.forwarding import UPSTREAM_DROPPED, strip_hop_by_hop

    prior_for = ", ".join(headers.get_all("x-forwarded-for"))
    cleaned = strip_hop_by_hop(headers, UPSTREAM_DROPPED)
    fields = [("x-forwarded-for", f"{prior_for}, {client_host}" if prior_for else client_host),
              ("x-forwarded-proto", headers.get("x-forwarded-proto") or scheme),
              ("x-request-id", request_id)]
    if forwarded := headers.get("x-forwarded-host") or host or "":
        fields.append(("x-forwarded-host", forwarded))
    cleaned.set_all(fields)
    return cleaned


def test_upstream_fields_are_what_the_headers_methods_made_for_every_forwarded_shape():
    shapes = [[], [("X-Forwarded-For", "203.0.113.7")],
              [("x-forwarded-for", "a"), ("x-forwarded-for", "b, c")],
              [("x-forwarded-for", "")], [("x-forwarded-proto", "")],
              [("X-Forwarded-Proto", "https"), ("x-forwarded-proto", "http")],
              [("x-forwarded-host", "")], [("x-forwarded-host", "front.example")],
              [("x-request-id", "client-id"), ("Host", "gw"), ("Connection", "close, x-hop"),
               ("x-hop", "1"), ("content-type", "application/json"), ("x-caf\u00e9", "\u00e9")]]
    for shape in shapes:
        for host in (None, "", "gw.example"):
            for scheme in ("http", "https"):
                args = {"client_host": "10.0.0.9", "scheme": scheme, "host": host,
                        "request_id": "rid"}
                incoming = Headers(shape)
                got = upstream_request_headers(incoming, **args)
                assert list(got) == list(_upstream_before(Headers(shape), **args)), (shape, host)
                assert incoming == Headers(shape)  # the request's own fields are untouched


def test_the_wire_bytes_can_leave_one_name_out():
    headers = Headers([("Content-Length", "5"), ("x-a", "1"), ("content-length", "6"),
                       ("x-wide", "\u20ac")])
    assert headers.raw("content-length") == [(b"x-a", b"1"), (b"x-wide", "\u20ac".encode())]
    assert headers.raw("x-a") == [(b"content-length", b"5"), (b"content-length", b"6"),
                                  (b"x-wide", "\u20ac".encode())]
    assert Headers([("x-a", "1")]).raw("content-length") == [(b"x-a", b"1")]
