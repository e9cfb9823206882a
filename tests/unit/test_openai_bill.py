"""Reserving tokens: short denials waited out, long ones refused; settling exactly once."""

import pytest

from function_app.core.clock import SystemClock
from function_app.core.errors import TokenRateLimited
from function_app.openai.bill import Bill, reserve
from function_app.openai.ledger import TokenLedger
from function_app.openai.usage import Usage
from function_app.ratelimit.limits import Decision, Limit, ScopedLimit

SCOPES = [ScopedLimit("client_tpm", "c", Limit(10, 600))]


class ScriptedLimiter:
    """Answers acquire() from a script of decisions and records adjust() calls."""

    def __init__(self, *decisions: Decision):
        self.decisions = list(decisions)
        self.calls = 0
        self.adjusted: list[float] = []

    async def acquire(self, scoped, cost=1):
        self.calls += 1
        return self.decisions.pop(0)

    def adjust(self, scoped, delta):
        self.adjusted.append(delta)


def bill(limiter, reserved=100) -> Bill:
    return Bill(limiter, SCOPES, TokenLedger(), "c", "m", reserved)


def denied(wait: float) -> Decision:
    return Decision(False, "client_tpm", Limit(10, 600), 0, 60, retry_after_s=wait)


async def test_a_denial_that_ends_in_milliseconds_is_waited_out():
    limiter = ScriptedLimiter(denied(0.005), denied(0.001), Decision(True, "client_tpm"))
    await reserve(bill(limiter), SystemClock())
    assert limiter.calls == 3


async def test_a_longer_denial_is_a_429_at_once():
    limiter = ScriptedLimiter(denied(5.0))
    with pytest.raises(TokenRateLimited) as caught:
        await reserve(bill(limiter), SystemClock())
    assert limiter.calls == 1 and caught.value.headers["Retry-After"] == "5"
    assert "Requested 100" in caught.value.message


async def test_settling_moves_the_charge_to_the_usage_once():
    limiter = ScriptedLimiter(Decision(True, "client_tpm"))
    item = bill(limiter)
    await reserve(item, SystemClock())
    item.settle(Usage(20, 30))
    item.settle(Usage(20, 30))
    item.refund()
    assert limiter.adjusted == [-50]
    assert item.ledger.totals["refunded_tokens"] == 50


async def test_an_error_answer_refunds_everything_and_a_lost_one_nothing():
    refunded, kept = ScriptedLimiter(Decision(True)), ScriptedLimiter(Decision(True))
    first, second = bill(refunded), bill(kept)
    for item in (first, second):
        await reserve(item, SystemClock())
    first.refund()
    second.settle(None)
    assert refunded.adjusted == [-100] and kept.adjusted == []
    assert second.ledger.totals["kept_tokens"] == 100


def test_cached_and_reasoning_tokens_are_counted_as_parts_of_prompt_and_completion():
    from function_app.openai.ledger import TokenLedger
    from function_app.openai.usage import find_usage

    body = (b'{"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":40,'
            b'"total_tokens":140,"prompt_tokens_details":{"cached_tokens":64},'
            b'"completion_tokens_details":{"reasoning_tokens":30}}}')
    usage = find_usage(body)
    assert (usage.total, usage.cached_tokens, usage.reasoning_tokens) == (140, 64, 30)
    ledger = TokenLedger()
    ledger.settled("c", "m", usage, 150)
    snap = ledger.snapshot()
    assert snap["totals"]["cached_tokens"] == 64 and snap["totals"]["reasoning_tokens"] == 30
    assert snap["by_client"]["c"]["m"] == {"requests": 1, "prompt_tokens": 100,
                                           "completion_tokens": 40, "cached_tokens": 64,
                                           "reasoning_tokens": 30}
    assert snap["totals"]["refunded_tokens"] == 10  # charged 140, not 140 + 64 + 30
    hostile = find_usage(b'{"usage":{"prompt_tokens":5,"completion_tokens":1,'
                         b'"prompt_tokens_details":{"cached_tokens":999}}}')
    assert hostile.cached_tokens == 5  # never more than the count it is part of


async def test_an_oversized_event_ends_the_stream_with_an_openai_error_and_closes_upstream():
    import json

    from function_app.http.headers import Headers
    from function_app.http.messages import GatewayResponse
    from function_app.openai.bill import settle_on_answer

    first = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
    closed = []

    class Upstream:
        def __init__(self):
            self.sent = 0

        def __aiter__(self):
            return self

        async def __anext__(self):
            self.sent += 1
            if self.sent > 10_000:
                raise StopAsyncIteration
            return first if self.sent == 1 else b"x" * 4096  # never a blank line again

        async def aclose(self):
            closed.append(self.sent)

    upstream = Upstream()
    response = GatewayResponse(200, Headers([("content-type", "text/event-stream")]), upstream)
    billed = bill(ScriptedLimiter(), reserved=100)
    billed.prompt_tokens = 9
    settle_on_answer(response, billed, stream=True, strip=True, max_event_bytes=64 * 1024)
    out = [chunk async for chunk in response.body]
    assert out[0] == first and len(out) == 2
    assert out[1].startswith(b"\n\ndata: ") and out[1].endswith(b"\n\n")
    error = json.loads(out[1].strip()[len(b"data: "):])["error"]
    assert error["code"] == "upstream_event_too_large" and error["type"] == "server_error"
    assert closed and closed[0] < 100  # the backend was let go of soon after the cap
    assert billed.usage == Usage(9, 1)  # the prompt and the one delta sent


@pytest.mark.parametrize("held_bytes", [64 * 1024, 100])
async def test_a_stream_cut_short_bills_every_delta_sent_and_holds_a_bounded_share(
        monkeypatch, held_bytes):
    """The deltas sent are counted only when the count is wanted (a cut) or the pieces held
    pass the bound: the bill is the same either way, and what is held stays under the bound
    plus one piece."""
    from function_app.core.errors import UpstreamError
    from function_app.http.headers import Headers
    from function_app.http.messages import GatewayResponse
    from function_app.openai import tapped
    from function_app.openai.bill import settle_on_answer
    from function_app.openai.midstream import SentTokens

    chunk = b'data: {"choices":[{"delta":{"content":"Hi"}}],"usage":null}\n\n'
    most_held = []

    class Watched(SentTokens):
        HELD_BYTES = held_bytes

        def count(self):
            most_held.append(sum(map(len, self.held)))
            super().count()

    monkeypatch.setattr(tapped, "SentTokens", Watched)

    async def upstream():
        for _ in range(1500):  # about 90 KB of events: past the default bound once
            yield chunk
        raise UpstreamError()

    response = GatewayResponse(200, Headers([("content-type", "text/event-stream")]), upstream())
    billed = bill(ScriptedLimiter(), reserved=5000)
    billed.prompt_tokens = 9
    settle_on_answer(response, billed, stream=True, strip=True)
    out = [piece async for piece in response.body]
    assert out[:-1] == [chunk] * 1500 and out[-1].startswith(b"\n\ndata: ")
    assert billed.usage == Usage(9, 1500)
    assert max(most_held) <= held_bytes + len(chunk)
    assert len(most_held) >= 2  # counted on the way (past the bound) and at the cut


def test_held_pieces_count_as_they_would_one_by_one():
    """A match that would span two pieces joined plainly is not one: the pieces are joined by
    a byte no match can hold."""
    from function_app.openai.midstream import SentTokens

    pieces = [b'data: {"content"\n\n', b':"x"}\n\n', b'data: {"text": "y"}\n\n',
              b'data: {"delta":""}\n\n', b'data: {"content":"a","content" :"b"}\n\n']
    sent = SentTokens()
    sent.held.extend(pieces)
    assert sent.usage(3) == Usage(3, 3)
    assert sent.held == []
    one_by_one = SentTokens()
    for piece in pieces:
        one_by_one.feed(piece)
    assert one_by_one.deltas == 3
