"""What the upstream step works out once and shares (docs/perf/pass12-upstream.md) gives what
working it out per request gave: shared outcomes, the budget's current bucket, the first
attempt's time, the declared length of an answer, and the lean close of an aiohttp answer."""

import random

import aiohttp
import pytest

from function_app.core.clock import SystemClock
from function_app.core.upstream import UpstreamRequest, UpstreamResponse
from function_app.http.headers import Headers
from function_app.http.messages import GatewayRequest
from function_app.routing.answer_body import complete_body
from function_app.routing.attempts import answered
from function_app.routing.breaker import BreakerConfig
from function_app.routing.breakers import SharedBreakers
from function_app.routing.budget import RetryBudget
from function_app.routing.policy import ANSWERS, Kind, Outcome
from function_app.routing.pools import Member, Plan, Target
from function_app.routing.router import Router
from function_app.routing.routes import MATCH, Match, Route
from function_app.routing.target_request import Outgoing
from function_app.routing.upstream import upstream_step


def test_an_answers_outcome_is_one_shared_object_equal_to_a_new_one():
    assert ANSWERS[200] is ANSWERS[200]
    assert ANSWERS[200] == Outcome(Kind.ANSWER, 200) and not ANSWERS[200].failed
    assert ANSWERS[502] == Outcome(Kind.ANSWER, 502) and ANSWERS[502].failed


@pytest.mark.parametrize(("status", "headers", "retry_after"), [
    (200, [], None), (404, [], None), (503, [], None),
    (503, [("retry-after-ms", "250")], 0.25), (429, [("retry-after", "2")], 2.0)])
def test_an_answers_outcome_carries_its_status_and_wait(status, headers, retry_after):
    answer = UpstreamResponse(status, Headers(headers), None)  # type: ignore[arg-type]
    outcome, kept, error = answered(answer)
    assert outcome == Outcome(Kind.ANSWER, status, retry_after)
    assert kept is answer and error is None
    assert (outcome is ANSWERS[status]) == (retry_after is None)


class _Reference(RetryBudget):
    def record_request(self, now: float) -> None:  # the rule as it was, through `_bucket`
        self._bucket(now)[1] += 1


@pytest.mark.parametrize("seed", range(5))
def test_the_budgets_inline_bucket_keeps_the_same_counts(seed):
    rng = random.Random(seed)
    ours, reference = RetryBudget(0.2, 0.3, 10.0), _Reference(0.2, 0.3, 10.0)
    now = 1000.0
    for _ in range(2000):
        now += rng.choice([0.0, 0.001, 0.2, 0.9, 3.0, 12.0])
        if rng.random() < 0.7:
            ours.record_request(now)
            reference.record_request(now)
        else:
            assert ours.try_spend(now) == reference.try_spend(now)
        assert list(ours._buckets) == list(reference._buckets)


async def _body(*chunks: bytes):
    for chunk in chunks:
        yield chunk


@pytest.mark.parametrize(("length", "whole"), [("5", True), ("9", False), (None, False),
                                               ("\u00b2", False), ("x", False)])
async def test_an_answer_is_whole_only_when_its_first_chunk_has_the_declared_length(length,
                                                                                    whole):
    headers = Headers([("content-length", length)] if length is not None else [])
    body = await complete_body(_body(b"hello", b"more"), headers)
    if whole:
        assert body == b"hello"
    else:  # a stream of everything; superscript digits are no length (int() refuses them)
        assert b"".join([chunk async for chunk in body]) == b"hellomore"


class _Recording:
    """An Outbound and an Upstream that note what they are given."""

    def __init__(self) -> None:
        self.prepared: list[tuple[float, str]] = []
        self.sent: list[UpstreamRequest] = []

    async def prepare(self, member, path, query, headers, body, model, timeout_s=30.0,
                      key_header="authorization"):
        self.prepared.append((timeout_s, model))
        return Outgoing(path, query, headers, body)

    def refused(self, member, token):
        return False

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        self.sent.append(request)
        return UpstreamResponse(200, Headers([("content-length", "2")]), _body(b"ok"))


class _Body(dict):
    pass


@pytest.mark.parametrize(("json", "target_model", "model"), [
    (None, None, ""), ({"model": "m1"}, None, "m1"), (_Body(model="m1"), None, "m1"),
    ({"model": 3}, None, ""), ({"model": "m1"}, "m2", "m2")])
async def test_the_first_attempt_is_given_the_routes_whole_timeout_and_the_model(
        json, target_model, model):
    member = Member("node", "http://127.0.0.1:9")
    route = Route("/infer", frozenset({"POST"}), "node", "/infer", 7.0, False,
                  plan=Plan((Target((member,), model=target_model),)))
    recording = _Recording()
    breakers = SharedBreakers(None, None, SystemClock(), BreakerConfig())
    router = Router(recording, breakers, 2.0, outbound=recording)  # type: ignore[arg-type]
    request = GatewayRequest("POST", "/infer", "", Headers([("content-type", "x")]), b"{}",
                             "127.0.0.1")
    MATCH.set(request.context, Match(route, "/infer"))
    request.context.json = json
    answer = await upstream_step(router)(request)
    assert answer.status == 200 and answer.body == b"ok"
    # the deadline's own reading (nothing waited since); a fallback's model, else the body's
    assert recording.prepared == [(7.0, model)]
    sent = recording.sent[0]
    assert 0 < sent.timeout_s <= 7.0 and sent.connect_timeout_s == 2.0
    assert sent.url == "http://127.0.0.1:9/infer"


class _Answer:
    """An aiohttp answer whose close fails as a dropped connection's may."""

    def __init__(self, error: BaseException | None) -> None:
        self.error, self.exits = error, 0

    async def __aexit__(self, *args) -> None:
        self.exits += 1
        if self.error is not None:
            raise self.error


class _Response:
    is_closed = False


@pytest.mark.parametrize("error", [None, aiohttp.ClientPayloadError("gone"), OSError("reset")])
async def test_closing_an_aiohttp_answer_frees_its_slot_once_and_drops_transport_errors(error):
    from function_app.adapters.httpx_upstream import _aiohttp_closer

    freed: list[int] = []
    answer, response = _Answer(error), _Response()
    close = _aiohttp_closer(response, answer, lambda: freed.append(1))  # type: ignore[arg-type]
    await close()
    await close()  # a second close frees again (DeadlineBody calls its release once)
    assert answer.exits == 1 and response.is_closed and freed == [1, 1]


async def test_closing_an_aiohttp_answer_lets_other_errors_through_and_still_frees():
    from function_app.adapters.httpx_upstream import _aiohttp_closer

    freed: list[int] = []
    close = _aiohttp_closer(_Response(), _Answer(RuntimeError("bug")),  # type: ignore[arg-type]
                            lambda: freed.append(1))
    with pytest.raises(RuntimeError):
        await close()
    assert freed == [1]
