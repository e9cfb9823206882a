"""Tally mode under ServerBusy, fourth round: a row of the period before stands in for one that
storage refused (the instance's own, or a whole group partition's read), so that a refusal
costs one operation and the summary is still written every period. Virtual clock,
in-memory store; refusals injected."""

from __future__ import annotations

import pytest

from function_app.ratelimit.store import RowKey
from function_app.ratelimit.tally import rows as tally_rows
from function_app.ratelimit.tally import tally
from function_app.ratelimit.tally.aggregator import SUMMARY, copy_key, group_key
from function_app.ratelimit.tally.ledger import Ledger
from tests.unit.test_tally_throttled import Busy, P, busy_follower, leading

RATE = 100.0  # R = RATE * P = 300 per period


def test_a_row_of_the_period_before_stands_in_and_its_figures_keep_the_sum():
    """A refused row used to leave its instance counted in N with no demand and no traffic
    (a share of almost nothing for the period) unless it was written again: two operations.
    Its row of the period before now stands in as a member (`behind`), and the instance takes
    its own figures from that row, not from the one refused: with those the shares of a
    binding key sum to one; with the refused row's larger demand they would exceed it."""
    p = 20
    rows = [tally.InstanceRow("a", p, 0.0, {"k": (200.0, RATE)}, 100.0),
            tally.InstanceRow("b", p - 1, 0.0, {"k": (200.0, RATE)}, 100.0)]
    view = tally.aggregate(rows, p, P)
    assert view.members == {"a", "b"} and view.behind == {"b"} and view.instances == 2
    assert tally_rows.parse_summary(tally_rows.summary_fields(view, "a", 1.0))[0] == view

    ledger = Ledger(P, "b")  # b asked 200 in p - 1 and 600 in p, whose row was refused
    for period, asked in ((p - 1, 200.0), (p, 600.0)):
        ledger.record("k", asked, RATE, period * P + 1.0)
        for _ in range(100):
            ledger.request(period * P + 1.0)
        ledger.close(period)
    own = ledger.own("k", view)
    assert own == 200.0 and ledger.summed(view) == p - 1
    shares = [tally.share(view, "a", "k", 200.0, RATE, P, 1, 100.0),
              tally.share(view, "b", "k", own, RATE, P, 1, ledger.own_traffic(view))]
    assert sum(shares) <= 1.0 + 1e-9
    refused_figure = tally.share(view, "b", "k", 600.0, RATE, P, 1, 100.0)
    assert shares[0] + refused_figure > 1.0


@pytest.mark.asyncio
async def test_a_refused_group_read_the_period_before_stands_in():
    """Retried 0.5 s apart, the ten group queries of 1,000 instances and the summary's write
    rarely all succeeded within a period under 50 % ServerBusy: the fleet ran on stale views,
    then on the failure mode. A refused group that was read for the period before stands in
    with those rows (its instances counted, `behind`); the summary is written at once."""
    clock, store, agg, done = await leading(4)
    assert (await agg.aggregate(done, clock.now())).instances == 4
    for g in range(4):  # every instance writes its next row
        fields, _ = tally_rows.instance_fields(done + 1, clock.now(), {"k": 5.0}, {"k": 10.0},
                                               5.0)
        await store.put(RowKey(group_key(g), f"{g:016x}"), fields)
    await clock.advance((done + 2.6) * P - clock.now())  # past AGGREGATE_AT after done + 1
    store.refuse = {group_key(2)}
    view = await agg.tick(done + 1, clock.now())
    assert view is not None and view.period == done + 1 and view.instances == 4
    assert view.behind == {f"{2:016x}"}
    assert store.queries == {group_key(g): 2 for g in range(4)}  # once a period each


@pytest.mark.asyncio
async def test_a_refused_copy_is_put_again_in_the_next_period():
    """A refused copy was put again only while its period was the last aggregated: refused
    until the period ended, its group's readers read the copy and then the summary itself
    (two operations each) until the next aggregate. It is put on the next ticks, whatever
    the period."""
    clock, store, agg, done = await leading(4)
    store.refuse = {copy_key(1).partition}
    assert await agg.aggregate(done, clock.now()) is not None
    await clock.advance((done + 2.1) * P - clock.now())  # the next period, before its aggregate
    assert await agg.tick(done + 1, clock.now()) is None
    assert store.puts[copy_key(1).partition] == 2
    copy = await store.read(copy_key(1))
    assert copy is not None and tally_rows.parse_summary(copy.fields)[0].period == done


@pytest.mark.asyncio
async def test_a_refused_row_is_left_to_the_next_when_the_row_before_stands_in():
    """Half of the row puts refused: each refused row was tried again after a jittered pause
    (two puts a period, most of all operations under 50 % ServerBusy). With the row of the
    period before in storage it stands in, and the instance stays a member of every summary
    and keeps a usable view: about one put a period."""
    store = Busy()
    clock, lims, follower, traffic, run_for = await busy_follower(store)
    me = follower._sync.me
    store.failing, store.every, before = True, False, store.puts[me]
    seen, summaries = [], []

    async def watched():
        await traffic()
        seen.append((follower._sync.view, follower._sync.usable(clock.now())))
        summaries.append(tally_rows.parse_summary((await store.read(SUMMARY)).fields)[0])

    await run_for(clock, lims, 10 * P, each_step=watched)
    assert store.puts[me] - before <= 10 + 2, store.puts[me] - before
    assert all(usable and me in view.members for view, usable in seen)
    assert all(me in view.members for view in summaries)
    assert any(me in view.behind for view in summaries)  # its refused rows' stand-ins
    assert follower.counters["fallback_admitted"] == 0
