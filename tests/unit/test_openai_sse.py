"""Usage found in answers and streams; the usage chunk removed only when not asked for."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from function_app.openai.sse import BodyTap, StreamTap, last_boundary, split_events
from function_app.openai.usage import USAGE_OBJECT, Usage, find_usage

CHUNKS = [b'data: {"id":"a","choices":[{"delta":{"content":"Hi"}}],"usage":null}\n\n',
          b'data: {"id":"a","choices":[{"delta":{},"finish_reason":"stop"}],"usage":null}\n\n']
USAGE = (b'data: {"id":"a","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,'
         b'"total_tokens":11}}\n\n')
DONE = b"data: [DONE]\n\n"
STREAM = b"".join(CHUNKS) + USAGE + DONE


def run(tap: StreamTap, pieces: list[bytes]) -> bytes:
    return b"".join(tap.feed(piece) for piece in pieces) + tap.flush()


def test_find_usage_reads_only_the_usage_object():
    body = b'{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":4,"total_tokens":4}}'
    assert find_usage(body) == Usage(4, 0)
    assert find_usage(b'{"choices":[{"text":"\\"usage\\": {}"}]}') is None
    assert find_usage(b'{"usage": {"prompt_tokens": "x"}}').problem  # never read as 0
    assert find_usage(b'{"usage": {"prompt_tok') is None


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 50, 1000])
def test_usage_chunk_is_stripped_whatever_the_chunking(size):
    tap = StreamTap(strip_usage_event=True)
    out = run(tap, [STREAM[i:i + size] for i in range(0, len(STREAM), size)])
    assert out == b"".join(CHUNKS) + DONE
    assert tap.usage == Usage(9, 2)


@pytest.mark.parametrize("size", [1, 5, 1000])
def test_usage_chunk_is_kept_when_the_client_asked(size):
    tap = StreamTap(strip_usage_event=False)
    assert run(tap, [STREAM[i:i + size] for i in range(0, len(STREAM), size)]) == STREAM
    assert tap.usage == Usage(9, 2)


def test_events_are_forwarded_at_once_and_unchanged_chunks_are_the_same_bytes():
    tap = StreamTap(strip_usage_event=True)
    assert tap.feed(CHUNKS[0]) is CHUNKS[0]  # no copy when nothing changes
    assert tap.feed(CHUNKS[1][:10]) == b""  # an incomplete event waits for its end
    assert tap.feed(CHUNKS[1][10:] + USAGE[:5]) == CHUNKS[1]


def test_crlf_framing_is_understood():
    stream = STREAM.replace(b"\n\n", b"\r\n\r\n")
    tap = StreamTap(strip_usage_event=True)
    assert run(tap, [stream[i:i + 3] for i in range(0, len(stream), 3)]) == \
        b"".join(CHUNKS).replace(b"\n\n", b"\r\n\r\n") + b"data: [DONE]\r\n\r\n"
    assert tap.usage == Usage(9, 2)


def test_a_stream_cut_before_its_usage_reports_none():
    tap = StreamTap(strip_usage_event=True)
    assert run(tap, [b"".join(CHUNKS), USAGE[:30]]) == b"".join(CHUNKS) + USAGE[:30]
    assert tap.usage is None


def test_usage_on_a_chunk_with_choices_is_recorded_and_kept():
    event = (b'data: {"choices":[{"delta":{}}],'
             b'"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n')
    tap = StreamTap(strip_usage_event=True)
    assert run(tap, [event]) == event and tap.usage == Usage(1, 1)


def test_boundaries_and_event_split():
    assert last_boundary(b"a\n\nb") == 3 and last_boundary(b"abc") == 0
    assert split_events(b"a\n\nb\r\n\r\nc") == [b"a\n\n", b"b\r\n\r\n", b"c"]


def test_body_tap_passes_chunks_and_reads_usage_at_the_end():
    tap = BodyTap(limit=1000)
    body = b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}'
    assert [tap.feed(body[:10]), tap.feed(body[10:])] == [body[:10], body[10:]]
    assert tap.usage == Usage(3, 4)
    big = BodyTap(limit=5)
    big.feed(body)
    assert big.usage is None


class Counted:
    """last_boundary, counting the bytes it is asked to search."""

    def __init__(self, real):
        self.real, self.bytes = real, 0

    def __call__(self, data, start=0):
        self.bytes += len(data) - start
        return self.real(data, start) if start else self.real(data)


@pytest.fixture
def searched(monkeypatch):
    import function_app.openai.sse as sse

    counted = Counted(sse.last_boundary)
    monkeypatch.setattr(sse, "last_boundary", counted)
    return counted


@pytest.mark.parametrize("piece", [1, 7, 1024])
def test_an_event_without_a_blank_line_is_searched_once_whatever_the_chunking(searched,
                                                                              piece):
    size = 256 * 1024
    event = b"data: " + b"x" * size
    tap = StreamTap(strip_usage_event=True, max_event_bytes=4 * size)
    for i in range(0, len(event), piece):
        assert tap.feed(event[i:i + piece]) == b""
    tap.check()
    # Each byte once, plus the few bytes before each chunk a blank line could straddle.
    assert searched.bytes <= len(event) + 3 * (len(event) // piece + 1)
    assert tap.flush() == event


@pytest.mark.parametrize("piece", [3, 64])
def test_many_events_in_small_chunks_are_linear_work_and_unchanged(searched, piece):
    stream = (b'data: {"choices":[{"delta":{"content":"' + b"y" * 500 + b'"}}]}\n\n') * 200
    tap = StreamTap(strip_usage_event=True, max_event_bytes=4096)
    out = run(tap, [stream[i:i + piece] for i in range(0, len(stream), piece)])
    assert out == stream
    assert searched.bytes <= len(stream) + 3 * (len(stream) // piece + 1)
    assert tap.scanned == searched.bytes


def test_an_event_over_the_cap_is_dropped_and_ends_the_stream():
    from function_app.core.errors import UpstreamEventTooLarge

    cap, piece = 64 * 1024, 16 * 1024
    tap = StreamTap(strip_usage_event=True, max_event_bytes=cap)
    held = []
    for _ in range(10 * 1024 * 1024 // piece):  # a 10 MiB event without a blank line
        assert tap.feed(b"x" * piece) == b""
        held.append(tap.pending)
        try:
            tap.check()
        except UpstreamEventTooLarge as error:
            assert error.code == "upstream_event_too_large"
            assert str(cap) in error.message
            break
    else:
        pytest.fail("the stream was never ended")
    assert max(held) <= cap + piece and tap.pending == 0
    assert tap.feed(b"more\n\n") == b"" and tap.flush() == b""


def test_events_completed_before_the_oversized_one_are_still_forwarded():
    from function_app.core.errors import UpstreamEventTooLarge

    tap = StreamTap(strip_usage_event=True, max_event_bytes=1024)
    assert tap.feed(CHUNKS[0] + b"data: " + b"z" * 2000) == CHUNKS[0]
    with pytest.raises(UpstreamEventTooLarge):
        tap.check()


def test_a_blank_line_split_across_chunks_is_found():
    for mark in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        for split in range(1, len(mark)):
            tap = StreamTap(strip_usage_event=True, max_event_bytes=1024)
            assert tap.feed(b"data: a" + mark[:split]) == b""
            assert tap.feed(mark[split:] + b"data: b") == b"data: a" + mark
            assert tap.pending == len(b"data: b")


@pytest.mark.parametrize("data", [b"a\n\n", b"a\r\r", b"a\r\n\r\n", b"a\n\nb\r\n\r\n", b"\n\n",
                                  b"a\n\n\n", b"a\r\n\r\nb", b"a\n", b"a\r\n\r", b""])
def test_the_fast_path_for_chunks_of_whole_events_finds_the_same_boundary(data):
    slow = max((data.rfind(mark) + size for mark, size in
                ((b"\r\n\r\n", 4), (b"\n\n", 2), (b"\r\r", 2)) if data.rfind(mark) >= 0),
               default=0)
    assert last_boundary(data) == slow


USAGE_PIECES = [b'"usage"', b':null', b': null', b':{', b' :\n{', b'"usage":', b'x', b'"',
                b'{"a":1}', b'\n\n', b'usage', b'"usage"usage"', b'null', b':', b'{']


@given(st.lists(st.sampled_from(USAGE_PIECES), max_size=8))
@example([b'"usage"', b':null', b'"usage"', b':{'])  # a usage object after a null one
@example([b'"usage"', b' :\n{'])
@example([b'"usage"', b':null'])
@example([b'"usage"', b':null', b'"usage"'])  # a key right after, with no room for more
@example([b'"usage"', b':null', b'"usage"', b'{'])
def test_a_chunk_is_split_for_its_usage_exactly_when_the_regex_finds_a_usage_object(pieces):
    """The plain search for the key before the regex (and `"usage":null` passed over) changes
    no chunk's fate: a chunk is taken apart for its usage exactly when USAGE_OBJECT finds one."""
    chunk = b"data: " + b"".join(pieces) + b"\n\n"
    tap = StreamTap(strip_usage_event=False)
    events = []
    tap._events = lambda found: events.extend(found) or found  # the slow path, observed
    assert tap.feed(chunk) == chunk
    assert bool(events) == (USAGE_OBJECT.search(chunk) is not None)
