"""The Headers type: case-insensitive names, several values per name, order kept, wire forms."""

from function_app.http.headers import Headers


def test_lookup_ignores_the_case_of_names_and_names_come_out_lower_case():
    headers = Headers([("Content-Type", "text/plain"), ("X-Thing", "1")])
    assert headers.get("content-type") == "text/plain"
    assert headers.get("CONTENT-TYPE") == "text/plain"
    assert list(headers) == [("content-type", "text/plain"), ("x-thing", "1")]


def test_get_gives_the_first_value_and_get_all_every_value_in_order():
    headers = Headers([("x-forwarded-for", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2")])
    assert headers.get("x-forwarded-for") == "1.1.1.1"
    assert headers.get_all("x-forwarded-for") == ["1.1.1.1", "2.2.2.2"]
    assert headers.get("absent") is None and headers.get("absent", "d") == "d"
    assert headers.get_all("absent") == []


def test_set_replaces_every_value_and_add_appends_one():
    headers = Headers([("a", "1"), ("A", "2"), ("b", "3")])
    headers.set("A", "9")
    assert headers.get_all("a") == ["9"]
    headers.add("b", "4")
    headers.add("c", "5")
    assert list(headers) == [("a", "9"), ("b", "3"), ("b", "4"), ("c", "5")]
    assert len(headers) == 4


def test_update_replaces_only_the_names_it_gives():
    headers = Headers([("retry-after", "1"), ("content-type", "application/json")])
    headers.update([("Retry-After", "5"), ("x-new", "a"), ("x-new", "b")])
    assert headers.get_all("retry-after") == ["5"]
    assert headers.get_all("x-new") == ["a", "b"]
    assert headers.get("content-type") == "application/json"


def test_remove_and_without_drop_names_whatever_their_case():
    headers = Headers([("Connection", "close"), ("Keep-Alive", "5"), ("x-kept", "1")])
    kept = headers.without({"connection", "keep-alive"})
    assert list(kept) == [("x-kept", "1")]
    assert "connection" in headers  # without() leaves the original alone
    headers.remove("CONNECTION", "keep-alive", "never-there")
    assert list(headers) == [("x-kept", "1")]


def test_a_copy_is_independent_of_the_original():
    original = Headers([("a", "1")])
    copy = original.copy()
    copy.add("a", "2")
    copy.set("b", "3")
    assert list(original) == [("a", "1")]
    assert list(copy) == [("a", "1"), ("a", "2"), ("b", "3")]


def test_membership_by_name_or_by_pair():
    headers = Headers([("Retry-After", "1")])
    assert "retry-after" in headers and "RETRY-AFTER" in headers
    assert ("Retry-After", "1") in headers and ("retry-after", "2") not in headers
    assert 42 not in headers
    assert b"retry-after" not in headers and ["retry-after"] not in headers  # not names
    headers.update_fields({"x-empty": ()})  # a name with no value: absent to get, not to `in`
    assert headers.get("x-empty", "d") == "d" and headers.get_all("x-empty") == []
    assert "x-empty" in headers


def test_equality_with_headers_and_with_lists_of_pairs():
    headers = Headers([("A", "1"), ("b", "2")])
    assert headers == Headers([("a", "1"), ("B", "2")])
    assert headers == [("a", "1"), ("b", "2")]
    assert headers != [("a", "2"), ("b", "1")]
    assert Headers() == [] and not Headers()
    assert dict(headers) == {"a": "1", "b": "2"}  # iterable of pairs, not a mapping


def test_wire_bytes_round_trip_as_latin_1():
    raw = [(b"Content-Type", b"text/plain"), (b"x-odd", "caf\u00e9".encode("latin-1"))]
    headers = Headers.from_raw(raw)
    assert headers.get("x-odd") == "caf\u00e9"
    assert headers.raw() == [(b"content-type", b"text/plain"), (b"x-odd", b"caf\xe9")]


def test_repeated_names_come_out_together_in_their_own_order():
    headers = Headers.from_raw([(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
    assert list(headers) == [("a", "1"), ("a", "3"), ("b", "2")]
    assert headers.names() == ["a", "b"]


def test_a_value_wider_than_latin_1_goes_on_the_wire_as_utf_8():
    assert Headers([("x-model", "gpt\u20ac")]).raw() == [(b"x-model", "gpt\u20ac".encode())]


def test_the_name_tables_stay_bounded_under_a_flood_of_distinct_names_and_stay_correct():
    from function_app.http import headers as module

    flood = [(f"X-Junk-{n}".encode(), b"v") for n in range(3 * module.NAMES_CACHED)]
    made = Headers.from_raw(flood)
    made.set("X-Late-Name", "1")
    assert made.get("x-junk-2999") == "v" and made.get("X-LATE-NAME") == "1"
    assert made.raw()[-1] == (b"x-late-name", b"1")
    for table in (module._LOWER, module._FROM_WIRE, module._TO_WIRE):
        assert len(table) <= module.NAMES_CACHED


def test_a_name_wider_than_latin1_still_goes_out_as_utf8_through_the_name_table():
    headers = Headers([("x-caf\u0113", "v\u0113")])
    assert headers.raw() == [(b"x-caf?", "v\u0113".encode())]


def test_set_all_replaces_each_name_as_set_does_and_keeps_the_others():
    headers = Headers([("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2"),
                       ("accept", "*/*")])
    headers.set_all([("x-forwarded-for", "3.3.3.3"), ("X-Request-ID", "r1")])
    assert list(headers) == [("x-forwarded-for", "3.3.3.3"), ("accept", "*/*"),
                             ("x-request-id", "r1")]
    copy = headers.without(("accept",))
    assert list(copy) == [("x-forwarded-for", "3.3.3.3"), ("x-request-id", "r1")]
    copy.set("x-new", "1")
    assert "x-new" not in headers and isinstance(copy, Headers)


def test_a_long_name_is_converted_but_never_stored_in_the_name_tables():
    from function_app.http import headers as module

    name = "X-" + "n" * module.NAME_CACHED_LEN
    made = Headers.from_raw([(name.encode(), b"v")])
    made.set(name, "w")
    assert made.get(name.lower()) == "w" and made.raw() == [(name.lower().encode(), b"w")]
    for table in (module._LOWER, module._FROM_WIRE, module._TO_WIRE):
        assert name not in table and name.lower() not in table and name.encode() not in table
