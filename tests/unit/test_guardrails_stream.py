"""Streams released window by window: nothing of a flagged window reaches the client."""

import asyncio
import json

import pytest

from function_app.guardrails.counts import CheckCounts
from function_app.guardrails.policy import parse_policies
from function_app.guardrails.stream import WindowedStream
from tests.support.safety_fake import MemorySafety


def event(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    return b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                                   "model": "m", "choices": [{"index": 0, "delta": delta,
                                                              "finish_reason": finish}]}).encode() \
        + b"\n\n"


def words(text: str) -> list[bytes]:
    return [event(w if i == 0 else " " + w) for i, w in enumerate(text.split())]


async def source(chunks):
    for chunk in chunks:
        yield chunk


def make(window: int = 20, fail: str = "closed", window_ms: int = 0, **output):
    policy = parse_policies([{"name": "p", "routes": ["/*"], "window_chars": window,
                              "fail": fail, "window_ms": window_ms,
                              "output": output or {"content_safety": "block"}}])[0]
    safety = MemorySafety(harm={"poison": ("SelfHarm", 6)})
    return WindowedStream(policy, safety, CheckCounts()), safety


def texts(out: list[bytes]) -> str:
    got = []
    for chunk in out:
        for line in chunk.split(b"\n"):
            if line.startswith(b"data: {"):
                for choice in json.loads(line[6:]).get("choices", []):
                    got.append(choice.get("delta", {}).get("content") or "")
    return "".join(got)


async def test_a_stream_turning_harmful_ends_with_content_filter_and_no_flagged_text():
    stream, _ = make(window=20)
    story = "once upon a time there was a quiet village where people drank poison every day"
    chunks = [*words(story), event(finish="stop"), b"data: [DONE]\n\n"]
    out = [c async for c in stream.run(source(chunks))]
    sent = texts(out)
    assert story.startswith(sent) and "poison" not in sent and len(sent) >= 40
    assert json.loads(out[-2][6:])["choices"][0]["finish_reason"] == "content_filter"
    assert out[-1] == b"data: [DONE]\n\n"
    assert b'"finish_reason": "stop"' not in b"".join(out)


async def test_each_window_is_checked_with_the_text_before_it_as_context():
    stream, safety = make(window=20)
    chunks = [*words("alpha beta gamma delta epsilon zeta eta theta iota kappa"),
              b"data: [DONE]\n\n"]
    out = [c async for c in stream.run(source(chunks))]
    assert texts(out) == "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    analyzed = [text for name, text in safety.calls if name == "analyze"]
    assert len(analyzed) >= 2 and analyzed[1].startswith(analyzed[0][-20:])  # context
    assert all(len(t) <= 2 * 20 + 10 for t in analyzed)  # a window plus its context, bounded


async def test_events_split_anywhere_are_reassembled_and_order_is_kept():
    stream, _ = make(window=2000)
    data = b"".join([*words("one two three"), event(finish="stop"), b"data: [DONE]\n\n"])
    pieces = [data[i:i + 7] for i in range(0, len(data), 7)]
    out = b"".join([c async for c in stream.run(source(pieces))])
    assert out == data  # nothing flagged: the same bytes, in the same order


async def test_pii_in_a_stream_is_redacted_per_window():
    stream, _ = make(window=60, pii="redact")
    chunks = [*words("write to ada@example.org please"), b"data: [DONE]\n\n"]
    out = [c async for c in stream.run(source(chunks))]
    assert texts(out) == "write to [REDACTED:email] please"


async def test_service_down_fails_closed_with_an_error_event_and_nothing_unchecked():
    stream, safety = make(window=20)
    safety.down = True
    out = [c async for c in stream.run(source([*words("hello there my friend")]))]
    assert texts(out) == "" and b"guardrail_unavailable" in out[-1]


async def test_service_down_fails_open_releasing_the_text():
    stream, safety = make(window=20, fail="open")
    safety.down = True
    out = [c async for c in stream.run(source([*words("hello there my friend")]))]
    assert texts(out) == "hello there my friend"


async def test_the_upstream_is_closed_when_the_stream_is_cut():
    closed = []

    async def upstream():
        try:
            for chunk in words("fine words then poison and more words after it"):
                yield chunk
        finally:
            closed.append(True)

    stream, _ = make(window=20)
    out = [c async for c in stream.run(upstream())]
    assert closed == [True] and "poison" not in texts(out)


async def test_a_window_held_window_ms_is_released_while_the_model_is_still_writing():
    more = asyncio.Event()

    async def slow_model():
        yield event("Hello")  # far short of the window...
        await more.wait()  # ...and the model pauses until the test has seen it released
        yield event(" again")
        yield b"data: [DONE]\n\n"

    stream, _ = make(window=200, window_ms=20)  # window_ms=0 times out below
    out = stream.run(slow_model())
    first = await asyncio.wait_for(anext(out), 10)  # a guard against hanging, not a timing
    assert texts([first]) == "Hello"
    more.set()
    rest = [c async for c in out]
    assert texts(rest) == " again" and rest[-1] == b"data: [DONE]\n\n"


async def test_an_error_the_upstream_raises_mid_stream_reaches_the_reader():
    from function_app.core.errors import UpstreamTimeout

    async def broken():
        yield event("partial text")
        raise UpstreamTimeout()

    stream, _ = make(window=20)
    with pytest.raises(UpstreamTimeout):
        [c async for c in stream.run(broken())]


async def test_an_annotated_window_is_released_and_its_finding_traced_without_text():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("t")
    parent = tracer.start_span("request")
    stream, _ = make(window=20, content_safety="annotate")
    stream.tracer, stream.parent = tracer, parent
    out = [c async for c in stream.run(source(words("then drink the poison slowly now")))]
    parent.end()
    assert texts(out) == "then drink the poison slowly now"
    windows = [s for s in spans.get_finished_spans() if s.name == "guardrails.output.window"]
    findings = [s.attributes.get("gateway.guardrails.finding") for s in windows]
    assert "content_safety=SelfHarm:6" in findings
    assert all(s.parent.span_id == parent.get_span_context().span_id for s in windows)
    assert "poison" not in str([dict(s.attributes) for s in windows])
