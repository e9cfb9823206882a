"""Tokens per minute: reserve the estimate before forwarding, settle with the real usage after.

Settling rules, each applied exactly once per request (`Bill.settle` / `Bill.refund`):
- the backend reported usage (in a plain answer, or in a stream's usage chunk): the limiter is
  adjusted by usage - estimate, a refund or an extra charge;
- the backend answered an error status: the whole estimate is refunded (nothing was generated);
- the backend reported usage the request cannot have used (openai/usage.implausible): like no
  usage, the estimate stays charged, and the ledger counts it as rejected;
- no usage arrived (the client left, the upstream failed or timed out before answering): the
  estimate stays charged, since the backend may have generated up to all of it;
- a stream whose upstream failed after its first byte ends with an OpenAI error event and is
  settled for what was sent: the prompt plus the content deltas forwarded (openai/midstream.py).

Spend (`Bill.spend`, a tenants/spend.py SpendCharge, when the model has a price) follows the
same rules in currency: its reservation is charged against the spend budgets after the tokens
are, settled to the cost of the usage (each token kind at its own price), refunded on an error
answer, kept when no usage came.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from function_app.http.context import Fact
from function_app.http.messages import GatewayResponse
from function_app.ratelimit.headers import retry_after
from function_app.ratelimit.limits import Decision, ScopedLimit
from function_app.ratelimit.token_headers import duration, limit_name

from ..core.clock import Clock
from ..core.errors import GatewayError, NeverFits, StorageUnavailable, TokenRateLimited
from .ledger import TokenLedger
from .midstream import error_event
from .sse import DEFAULT_MAX_EVENT_BYTES, BodyTap, StreamTap
from .tapped import tapped_body
from .usage import Usage, find_usage, implausible

log = logging.getLogger(__name__)
BODY_COPY_LIMIT = 8 * 1024 * 1024  # a larger plain answer is not searched for its usage
SHORT_WAIT_S, QUEUE_S = 0.25, 1.0  # see _acquire_patiently
CONTENTION_WAIT_S = 0.02  # mean pause before leasing again after conflicting writers


class TokenLimiter(Protocol):
    """The part of the limiter this stage needs."""

    async def acquire(self, scoped: Sequence[ScopedLimit], cost: float = 1) -> Decision: ...

    def adjust(self, scoped: Sequence[ScopedLimit], delta: float) -> None: ...


@dataclass
class Bill:
    limiter: TokenLimiter | None
    scopes: list[ScopedLimit]
    ledger: TokenLedger
    client: str
    model: str
    reserved: int
    decision: Decision | None = None
    done: bool = False
    prompt_tokens: int = 0  # the estimate's prompt part, to bill a stream cut short
    completion_free: bool = False  # answered from the cache: only the prompt is charged
    usage: Usage | None = None  # what the backend reported, once settled (for telemetry)
    spend: Any = None  # a SpendCharge (tenants/spend.py): price, spend scopes, reservation
    spend_charged: bool = False  # the spend reservation went through
    cost: float = 0.0  # the settled cost in currency (for telemetry)

    def settle(self, usage: Usage | None) -> None:
        """Reconcile with the reported usage; None keeps the reservation charged."""
        if self.done:
            return
        self.done = True
        if usage is not None and (problem := implausible(
                usage, self.prompt_tokens, self.reserved - self.prompt_tokens)):
            # A wrong or hostile count would charge every token limit of the request (2^70
            # prompt tokens locked a tenant out): the reservation stands instead.
            log.warning("usage reported for model %r ignored (%s); the reservation of %d "
                        "tokens stands", self.model[:100], problem, self.reserved)
            self.ledger.rejected(self.reserved)
            return
        self.usage = usage
        if usage is None:
            self.ledger.unreconciled(self.reserved)
            if self.spend is not None:  # as charged: the most the request could have cost
                self.cost = self.spend.reserved / 1_000_000
                self.spend.record(self.cost)
                self.ledger.spent(self.client, self.model, self.spend.key, self.cost)
            return
        if self.completion_free:
            usage = Usage(usage.prompt_tokens, 0, usage.cached_tokens)
        self._adjust(usage.total - self.reserved)
        self.ledger.settled(self.client, self.model, usage, self.reserved)
        if self.spend is not None:
            self.cost = self.spend.cost(usage)
            self._adjust_spend(self.spend.micro(self.cost) - self.spend.reserved)
            self.spend.record(self.cost)
            self.ledger.spent(self.client, self.model, self.spend.key, self.cost)

    def refund(self) -> None:
        if not self.done:
            self.done = True
            self._adjust(-self.reserved)
            self._adjust_spend(-self.spend.reserved if self.spend is not None else 0)
            self.ledger.failed(self.reserved)

    def _adjust_spend(self, delta: float) -> None:
        if self.limiter is not None and self.spend_charged and delta:
            self.limiter.adjust(self.spend.scopes, delta)

    def _adjust(self, delta: float) -> None:
        if self.limiter is not None and self.scopes and self.decision is not None and delta:
            self.limiter.adjust(self.scopes, delta)


BILL: Fact[Bill] = Fact("bill")  # the token reservation, settled from the answer


async def reserve(bill: Bill, clock: Clock) -> None:
    """Charge the estimate against every token scope (decision in `bill.decision`), or raise
    the 429 (503 when storage is down in fail-closed mode)."""
    if bill.limiter is None or not bill.scopes:
        bill.ledger.reserved(bill.reserved)
        await _reserve_spend(bill, clock)  # a spend budget applies without token limits too
        return
    decision = bill.decision = await _acquire_patiently(bill.limiter, bill.scopes,
                                                        bill.reserved, clock)
    if not decision.allowed:
        bill.done = True  # nothing was charged: nothing to settle
        if decision.reason == "exceeds_limit" and not decision.storage_unavailable:
            limit = int(decision.limit.burst) if decision.limit is not None else 0
            raise NeverFits(f"The request needs {bill.reserved} tokens; "  # waiting cannot help
                            f"{limit_name(decision.scope)} allows at most {limit}. Lower "
                            "max_tokens, n or the prompt.")
        _refuse(decision, _denial(decision, bill.reserved))
    bill.ledger.reserved(bill.reserved)
    await _reserve_spend(bill, clock)


def _refuse(decision: Decision, message: str, error: GatewayError | None = None) -> None:
    headers = {"Retry-After": retry_after(decision)}
    if decision.storage_unavailable:
        raise StorageUnavailable(headers=headers)
    raise error or TokenRateLimited(message, headers=headers)


async def _reserve_spend(bill: Bill, clock: Clock) -> None:
    """Charge the spend reservation against its budgets; on a refusal give the tokens back
    and raise budget_exceeded (the limiter's own, or the charge's `refused`)."""
    spend = bill.spend
    if spend is None or not spend.scopes or bill.limiter is None:
        return
    try:
        decision = await _acquire_patiently(bill.limiter, spend.scopes, spend.reserved, clock)
    except BaseException:
        bill.refund()
        raise
    if not decision.allowed:
        bill.refund()
        _refuse(decision, "", spend.refused(decision, clock.now()))
    bill.spend_charged = True


async def _acquire_patiently(limiter: TokenLimiter, scopes: list[ScopedLimit], cost: int,
                             clock: Clock) -> Decision:
    """`acquire`, waiting out denials that end within SHORT_WAIT_S, for QUEUE_S at most.

    Token costs are large next to what one lease moves (rate x RATE_LIMIT_LEASE_S), so requests
    that arrive together can be refused for a few milliseconds while the pool is refilled,
    with plenty left in the shared bucket, or when instances leasing at once exhaust their
    conflict retries (reason "contention"). Waiting that out here is cheaper for everyone than a
    429 the client retries a second later; a longer wait still gets the 429 at once.
    """
    deadline = clock.now() + QUEUE_S
    while True:
        decision = await limiter.acquire(scopes, cost)
        wait = decision.retry_after_s
        if decision.reason == "contention":
            # Writers collided on the shared row; it still has tokens. The 1 s Retry-After is
            # for clients; here a jittered pause lets the other writers finish first.
            wait = random.uniform(0.5, 1.5) * CONTENTION_WAIT_S
        if decision.allowed or decision.storage_unavailable or decision.reason == "exceeds_limit" \
                or wait > SHORT_WAIT_S or clock.now() + wait > deadline:  # never fits: no wait
            return decision
        await clock.sleep(max(wait, 0.001))  # never a busy loop


def _denial(decision: Decision, requested: int) -> str:
    limit = int(decision.limit.burst) if decision.limit is not None else 0
    wait = duration(max(decision.retry_after_s, 0.001))
    return (f"Rate limit reached for {limit_name(decision.scope)}: Limit {limit}, "
            f"Requested {requested}. Please try again in {wait}.")


@dataclass(frozen=True)
class Wire:
    """How one API's answers are read for usage and ended on failure (defaults: OpenAI chat
    and completions). `stream_tap(strip, max_event_bytes)` makes the tap of an event stream
    (a StreamTap: `feed`, `flush`, `usage`, and `too_large`, which `check` raises);
    `rewrite`, when set, is applied to every forwarded piece (whole events, or the whole
    body)."""

    stream_tap: Callable[[bool, int], Any] = StreamTap
    body_usage: Callable[[bytes], Usage | None] = find_usage
    error_event: Callable[[GatewayError], bytes] = error_event
    rewrite: Callable[[bytes], bytes] | None = None


OPENAI_WIRE = Wire()


def settle_on_answer(response: GatewayResponse, bill: Bill, stream: bool, strip: bool,
                     wire: Wire = OPENAI_WIRE,
                     max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> GatewayResponse:
    """Arrange for `bill` to be settled from `response`, which is returned (body wrapped); a
    streamed event over `max_event_bytes` ends the stream with the wire's error event."""
    if not 200 <= response.status < 300:
        bill.refund()
        return response
    if isinstance(response.body, (bytes, bytearray)):
        body = bytes(response.body)
        bill.settle(wire.body_usage(body))
        if wire.rewrite is not None:
            response.body = wire.rewrite(body)
            response.headers.remove("content-length")
        return response
    if stream and _is_event_stream(response):
        # Dropping the usage chunk changes the length: let the server frame the body.
        response.headers.remove("content-length")
        response.body = tapped_body(response.body, wire.stream_tap(strip, max_event_bytes),
                                    bill, wire)
    else:
        if wire.rewrite is not None:
            response.headers.remove("content-length")
        response.body = tapped_body(response.body, BodyTap(BODY_COPY_LIMIT), bill, wire)
    return response


def _is_event_stream(response: GatewayResponse) -> bool:
    return (response.headers.get("content-type") or "").startswith("text/event-stream")
