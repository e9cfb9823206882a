"""Pure lease maths, key encoding and scope merging."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from function_app.core.table_keys import decode_key, encode_key
from function_app.ratelimit.lease import lease
from function_app.ratelimit.lease.keys import bucket_partition
from function_app.ratelimit.limits import Limit
from function_app.ratelimit.scopes import defaults_from, effective_limits, index_overrides
from function_app.ratelimit.store import Override
from tests.support.bounds import lease_overshoot_bound

T0 = 1_700_000_000.0
LIMIT = Limit(rate=200, burst=400)


def take(row, held=0.0, target=1000.0, cost=1.0, instance="a", now=T0):
    return lease.take(row, LIMIT, held=held, target=target, cost=cost, instance=instance,
                      now=now, lease_s=0.25, ttl_s=2.0)


def test_a_fresh_row_grants_the_cap_and_records_the_holder():
    grant = take(None)
    # one cost on top of the larger of the 1/1 share (S = 50) and a block (B = 128 requests)
    assert grant.cap == 129 and grant.tokens == 129
    assert grant.row is not None and grant.row.tokens == 271
    assert grant.row.holders == {"a": T0 + 2.0 + lease.SKEW_MARGIN_S}


def test_the_share_is_divided_among_live_holders_only():
    big = Limit(rate=2000, burst=4000)  # S = 500: a third of it is still more than a block
    row = lease.Row(4000, T0, 2000, 4000, {"b": T0 + 1, "c": T0 + 1, "gone": T0 - 1})
    grant = lease.take(row, big, held=0.0, target=1e6, cost=1.0, instance="a", now=T0,
                       lease_s=0.25, ttl_s=2.0)
    assert grant.cap == pytest.approx(1 + 500 / 3) and grant.tokens == 167
    assert set(grant.row.holders) == {"a", "b", "c"}


def test_a_block_floors_the_share_however_many_instances_hold_leases():
    holders = {f"i{k}": T0 + 1 for k in range(999)}
    grant = take(lease.Row(400, T0, 200, 400, holders))
    # 50 / 1000 would be a twentieth of a token per write; the block keeps 128 per write
    assert grant.cap == 129 and grant.tokens == 129
    # a key whose costs are refunded reservations (token limits) gets fair shares only:
    # blocks would park its burst in a few pools, refilled by refunds, and shut others out
    reserved = lease.take(lease.Row(400, T0, 200, 400, holders), LIMIT, held=0.0, target=1e6,
                          cost=1.0, instance="a", now=T0, lease_s=0.25, ttl_s=2.0, blocks=False)
    assert reserved.cap == pytest.approx(1 + 50 / 1000)


def test_a_block_is_128_requests_and_never_more_than_a_third_of_burst():
    assert lease.block(Limit(10, 30), 1) == 10
    assert lease.block(LIMIT, 1) == 128 and lease.block(LIMIT, 0) == 0  # 128 requests of cost 1


def test_a_large_cost_still_gets_a_share_on_top_so_the_next_requests_need_no_lease():
    grant = lease.take(None, Limit(3333.0, 200_000.0), held=0.0, target=1e9, cost=1030.0,
                       instance="a", now=T0, lease_s=0.25, ttl_s=2.0, blocks=False)
    # a token limit leases no block: the burst share S, more than 833 = r x 0.25
    assert grant.tokens == 1030 + 200_000 // 32


def test_the_pool_is_only_topped_up_to_the_goal():
    grant = take(None, held=45.0, cost=0.0)
    assert grant.row is None  # 5 more is below half a lease: not worth a write
    assert take(None, held=20.0, cost=0.0).tokens == 30


def test_a_waiting_request_takes_what_pays_for_it_from_a_nearly_empty_row():
    row = lease.Row(1.5, T0, 200, 400, {})
    grant = take(row)
    assert grant.tokens == 1 and grant.row.tokens == pytest.approx(0.5)


def test_an_empty_row_grants_nothing_and_says_when_a_fair_block_has_accrued():
    row = lease.Row(0.2, T0, 200, 400, {"b": T0 + 1})
    grant = take(row)
    assert grant.tokens == 0 and grant.row is None
    # want = cap = 1 + max(25, 128): its turn comes when 2 x 129 tokens have accrued
    assert grant.wait_s == pytest.approx((258 - 0.2) / 200)


def test_give_back_returns_tokens_and_drops_the_holder():
    row = lease.Row(10, T0, 200, 400, {"a": T0 + 1, "b": T0 + 1})
    back = lease.returned(row, LIMIT, 25, "a", T0)
    assert back.tokens == 35 and back.holders == {"b": T0 + 1}
    assert lease.returned(row, LIMIT, 1000, "a", T0).tokens == 400


def test_only_full_idle_lease_free_rows_are_idle():
    full = lease.Row(400, T0, 200, 400, {})
    assert lease.is_idle(full, T0 + 700, 600)
    assert not lease.is_idle(full, T0 + 500, 600)
    assert not lease.is_idle(lease.Row(400, T0, 200, 400, {"a": T0 + 800}), T0 + 700, 600)
    assert not lease.is_idle(lease.Row(0, T0, 0.1, 400, {}), T0 + 700, 600)


def test_rows_round_trip_through_fields_and_garbage_is_refused():
    row = lease.Row(1.5, T0, 200, 400, {"a": T0 + 2})
    assert lease.row_from_fields(lease.row_to_fields(row)) == row
    with pytest.raises(ValueError):
        lease.row_from_fields({"tokens": 1.0})
    with pytest.raises(ValueError):
        lease.row_from_fields({**lease.row_to_fields(row), "holders": "[1]"})


def test_the_overshoot_bound_is_share_harmonic_plus_n_blocks_plus_n_costs():
    assert lease_overshoot_bound(LIMIT, 0.25, 1, 1) == pytest.approx(50 + 128 + 1)
    assert lease_overshoot_bound(LIMIT, 0.25, 4, 1) == pytest.approx(
        50 * (1 + 1/2 + 1/3 + 1/4) + 4 * 128 + 4)
    # never more than N bursts held (plus the waiting costs): S = 250 here, burst only 10
    assert lease_overshoot_bound(Limit(1000, 10), 0.25, 3, 1) == pytest.approx(3 * 10 + 3)


@given(st.text(max_size=80))
def test_keys_round_trip_and_never_contain_characters_tables_refuse(key):
    encoded = encode_key(key)
    assert decode_key(encoded) == key
    assert not set(encoded) & set("/\\#?%~'\"") and encoded.isprintable() and encoded


def test_plain_ids_stay_readable_and_paths_are_encoded():
    assert encode_key("team-a") == "team-a"
    assert encode_key("/infer/python") == "b64.L2luZmVyL3B5dGhvbg"
    assert encode_key("b64.trap") != "b64.trap"
    assert bucket_partition("client", "team-a") == "client:team-a"
    assert len(bucket_partition("client", "x" * 5000)) < 200
    with pytest.raises(ValueError):
        decode_key("has/slash")


def test_effective_limits_merge_defaults_with_overrides():
    defaults = defaults_from(1000, 2000, 200, 400, global_shards=2)
    index = index_overrides([
        Override("client", "vip", Limit(500, 1000)),
        Override("route", "/infer/python", Limit(5, 5, shadow=True)),
    ])
    scoped = effective_limits(defaults, index, "vip", "/infer/python")
    assert [(s.scope, s.key, s.limit.rate, s.shards) for s in scoped] == [
        ("global", "global", 1000, 2), ("client", "vip", 500, 1), ("route", "/infer/python", 5, 1)
    ]
    plain = effective_limits(defaults, index, "other", "/infer/node")
    assert [(s.scope, s.limit.rate) for s in plain] == [("global", 1000), ("client", 200)]
    assert effective_limits(defaults_from(0, 0, 0, 0), index, None, None) == []


def test_a_shared_saturated_row_keeps_its_crumbs_until_a_useful_block_has_accrued():
    shared = lease.Row(10.0, T0, 200, 400, {"b": T0 + 1})
    grant = take(shared)
    # 10 tokens would pay the request, but under half of the 129 it wanted: one write per
    # request at saturation is what made storage cost grow with instances
    assert grant.short and grant.row is None and grant.available == 10.0
    assert grant.wait_s == pytest.approx((258 - 10) / 200)
    alone = take(lease.Row(10.0, T0, 200, 400, {}))
    assert not alone.short and alone.tokens == 10  # alone on the row it stays exact
    # alone and short, it comes back when half of what it wanted (64 of 129) has accrued, then
    # takes what is there: one write per half block, not one per request, at saturation
    empty = take(lease.Row(0.5, T0, 200, 400, {}))
    assert empty.short and empty.wait_s == pytest.approx((64 - 0.5) / 200)


def test_a_short_row_never_asks_for_more_than_two_seconds_of_its_share():
    # a token limit: 3,333/s, a block of 25,000 tokens; the rest of the burst sits in two other
    # instances' pools. Waiting for half a block would shut this instance out for 4 s.
    tpm = Limit(200_000 / 60, 200_000)
    holders = {"b": T0 + 1, "c": T0 + 1}
    grant = lease.take(lease.Row(2_500.0, T0, tpm.rate, tpm.burst, holders), tpm, held=0.0,
                       target=1e9, cost=1030.0, instance="a", now=T0, lease_s=0.25, ttl_s=4.0)
    # its share of 2 s of refill is 2,222 tokens: 2,500 in the row are worth a write
    assert not grant.short and grant.tokens == 2_500


def test_a_keys_shard_limit_follows_its_limit_and_shards():
    """KeyState keeps one shard's limit between requests; a changed limit (overrides) or
    shard count gives the new one at once, whichever way it was changed."""
    from function_app.ratelimit.lease.keystate import KeyState
    from function_app.ratelimit.limits import ScopedLimit

    ks = KeyState.create(ScopedLimit("client", "a", Limit(100.0, 200.0), shards=4), 0.0, 0.0)
    first = ks.shard_limit
    assert first == Limit(25.0, 50.0) and ks.shard_limit is first  # made once
    ks.update_limit(ScopedLimit("client", "a", Limit(40.0, 80.0), shards=4), 0.0)
    assert ks.shard_limit == Limit(10.0, 20.0)
    ks.update_limit(ScopedLimit("client", "a", Limit(40.0, 80.0), shards=2), 0.0)
    assert ks.shard_limit == Limit(20.0, 40.0)
    ks.limit = Limit(8.0, 8.0, shadow=True)  # set directly, as tests and the leaser may
    assert ks.shard_limit == Limit(4.0, 4.0, shadow=True)
    ks.shards = 1
    assert ks.shard_limit == Limit(8.0, 8.0, shadow=True)
