"""The tally's pure maths (ratelimit/tally/tally.py): shares that never sum above one, rows that
round-trip and stay within Table Storage's sizes, and the summary's hot-key cut."""

from __future__ import annotations

import random

import pytest

from function_app.ratelimit.limits import Limit
from function_app.ratelimit.tally import rows as tally_rows
from function_app.ratelimit.tally import tally

P = 2.5


def view(members, hot=None, instances=None, phi=tally.PHI, period=7):
    return tally.View(period, instances if instances is not None else len(members),
                      frozenset(members), hot or {}, phi)


def test_an_instance_alone_gets_the_whole_limit_whatever_its_demand():
    v = view({"me"})
    assert tally.share(v, "me", "k", 0.0, 100.0, P) == 1.0
    assert tally.share(v, "me", "k", 500.0, 100.0, P) == 1.0


def test_an_uncounted_instance_takes_an_average_part_of_one_more_or_the_expected_fleet():
    v = view({"a", "b", "c"}, {"k": (600.0, 3)})
    assert tally.share(v, "new", "k", 99.0, 100.0, P) == pytest.approx(1 / 4)
    assert tally.share(v, "new", "k", 99.0, 100.0, P, 50) == pytest.approx(1 / 50)


def test_unused_share_goes_mostly_where_requests_land():
    v = tally.View(7, 4, frozenset("abcd"), {}, tally.PHI, traffic=1000.0)
    busy = tally.share(v, "a", "k", 0.0, 100.0, P, traffic=700.0)
    quiet = tally.share(v, "b", "k", 0.0, 100.0, P, traffic=10.0)
    weights = [(1 - tally.EVEN) * t / 1000 + tally.EVEN / 4 for t in (700, 10)]
    assert busy == pytest.approx((1 - tally.PHI) * weights[0])
    assert quiet == pytest.approx((1 - tally.PHI) * weights[1]) and busy > 10 * quiet


def test_a_cold_key_gives_own_demand_plus_an_even_part_of_the_rest_without_traffic_figures():
    v = view({"a", "b"})
    s = tally.share(v, "a", "k", 10.0, 100.0, P)  # 10 of 250 per period
    assert s == pytest.approx(10 / 250 + (1 - tally.PHI) / 2)


def trust(total, holders):
    per_holder = total / holders
    return per_holder / (per_holder + tally.TRUST_AT)


def test_a_binding_key_seen_in_bulk_is_shared_by_its_own_counts():
    v = view({"a", "b"}, {"k": (600.0, 2)})  # 300 per holder: counts are trusted
    a, b = (tally.share(v, m, "k", d, 100.0, P) for m, d in (("a", 450.0), ("b", 150.0)))
    assert a + b == pytest.approx(1.0)
    assert a == pytest.approx((trust(600, 2) * 450 + (1 - trust(600, 2)) * 0.5 * 600) / 600)
    assert a > 0.74


def test_a_binding_key_seen_once_per_instance_is_shared_by_traffic():
    """Two requests per holder are noise: the instance with most traffic gets most."""
    v = tally.View(7, 4, frozenset("abcd"), {"k": (400.0, 200)}, tally.PHI, traffic=1000.0)
    busy = tally.share(v, "a", "k", 1.0, 100.0, P, traffic=700.0)
    quiet = tally.share(v, "b", "k", 2.0, 100.0, P, traffic=10.0)
    assert busy > 5 * quiet
    w = (1 - tally.EVEN) * 0.7 + tally.EVEN / 4
    assert busy == pytest.approx((trust(400, 200) * 1 + (1 - trust(400, 200)) * w * 400) / 400)


def test_an_idle_instance_keeps_a_part_of_a_binding_key():
    v = view({"a", "b", "c"}, {"k": (600.0, 2)})
    idle = tally.share(v, "c", "k", 0.0, 100.0, P)
    assert 0 < idle < 0.05


def test_a_hot_key_under_its_limit_gives_expected_demand_and_a_part_of_the_rest():
    v = view({"a", "b"}, {"k": (200.0, 2)})
    expected = trust(200, 2) * 150 + (1 - trust(200, 2)) * 0.5 * 200
    assert tally.share(v, "a", "k", 150.0, 100.0, P) == pytest.approx(
        expected / 250 + (50 / 250) / 2)


def test_a_counted_instance_that_was_idle_gets_the_even_part_only():
    v = tally.View(7, 4, frozenset("abc"), {"k": (600.0, 3)}, tally.PHI, traffic=900.0)
    s = tally.share(v, "d", "k", 0.0, 100.0, P, 4, 0.0, counted=True)
    assert s == pytest.approx((1 - trust(600, 3)) * tally.EVEN / 4)


@pytest.mark.parametrize("seed", range(40))
def test_shares_of_one_view_never_sum_above_one(seed):
    """The bound's premise: for any demands, hot or cold, binding or not, sum_i s_i <= 1."""
    rng = random.Random(seed)
    n = rng.choice([2, 3, 10, 100])
    rate = rng.choice([1.0, 50.0, 3333.0])
    demands = {f"i{j}": rng.choice([0.0, rng.random() * rate * P * 3]) for j in range(n)}
    total = sum(demands.values())
    hot = total >= tally.PHI * rate * P
    if not hot:  # a cold key's total is below phi * rate * P by definition
        demands = {k: d * min(1.0, tally.PHI * rate * P / max(total, 1e-9) * 0.99)
                   for k, d in demands.items()}
    holders = sum(1 for d in demands.values() if d > 0)
    traffic = {me: rng.choice([0.0, rng.random() * 1000]) for me in demands}
    v = tally.View(7, n, frozenset(demands), {"k": (sum(demands.values()), holders)} if hot
                   else {}, tally.PHI, sum(traffic.values()))
    shares = [tally.share(v, me, "k", d, rate, P, 1, traffic[me]) for me, d in demands.items()]
    idle = tally.View(v.period, n + 2, v.members, v.hot, v.phi, v.traffic)  # two counted, idle
    shares_idle = [tally.share(idle, me, "k", d, rate, P, 1, traffic[me])
                   for me, d in demands.items()]
    shares_idle += [tally.share(idle, f"x{j}", "k", 0.0, rate, P, 1, 0.0, True) for j in (1, 2)]
    assert sum(shares_idle) <= 1 + 1e-9
    assert sum(shares) <= 1 + 1e-9
    assert all(s >= 0 for s in shares)


def test_a_local_limit_keeps_at_least_one_unit_of_capacity():
    local = tally.local_limit(Limit(100.0, 200.0), 0.001, unit=8.0)
    assert local.rate == pytest.approx(0.1) and local.burst == 8.0


def test_a_local_limit_has_room_for_a_period_of_arrivals_except_alone():
    limit = Limit(100.0, 200.0)  # 250 per period of 2.5 s
    # s = 0.1: 25 expected per period, room 3 standard deviations = 15 (under 0.1 * 250).
    assert tally.local_limit(limit, 0.1, 1.0, P).burst == pytest.approx(20 + 15)
    # s = 0.9: 225 expected, 3 sigma = 45, capped by min(s, 1 - s) * 250 = 25.
    assert tally.local_limit(limit, 0.9, 1.0, P).burst == pytest.approx(180 + 25)
    assert tally.local_limit(limit, 1.0, 1.0, P).burst == 200.0


@pytest.mark.parametrize("n", [2, 10, 1000])
def test_the_rooms_of_one_view_stay_within_the_bounds_room_term(n):
    limit, rng = Limit(500.0, 1000.0), random.Random(n)
    raw = [rng.random() ** 4 for _ in range(n)]
    shares = [x / sum(raw) for x in raw]
    capacity = sum(tally.local_limit(limit, s, 1.0, P).burst for s in shares)
    room = min(500 * P, tally.ROOM_SIGMAS * (n * 500 * P) ** 0.5)
    assert capacity <= limit.burst + room + n * 1.0


def test_published_demand_decays_by_half_at_most():
    assert tally.published({"a": 4.0}, {"a": 10.0, "b": 1.0}) == {"a": 5.0, "b": 0.5}
    assert tally.published({"a": 9.0}, {"a": 10.0}) == {"a": 9.0}
    assert tally.published({}, {"a": 0.001}) == {}
    assert tally.published({}, {"a": 1.0, "b": 1.0}, {"a": 0.6}) == {"b": 0.5}


def test_an_instance_row_round_trips_and_large_rows_split_into_chunks():
    demand = {tally.key_id("client", f"c{n}"): float(n + 1) for n in range(tally.MAX_ROW_KEYS)}
    fields, dropped = tally_rows.instance_fields(12, 1000.5, demand, dict.fromkeys(demand, 50.0))
    assert dropped == 0
    chunks = [name for name in fields if name.startswith("d")]
    assert len(chunks) > 1 and all(len(fields[c]) <= tally.CHUNK for c in chunks)
    assert len(chunks) <= tally.MAX_CHUNKS
    row = tally_rows.parse_instance("m1", fields)
    assert row is not None and row.period == 12 and row.at == 1000.5
    assert row.demand[tally.key_id("client", "c5")] == (6.0, 50.0)


def test_a_row_with_too_many_keys_drops_the_smallest_and_says_how_many():
    demand = {f"{n:016x}": float(n) for n in range(tally.MAX_ROW_KEYS + 5)}
    fields, dropped = tally_rows.instance_fields(1, 0.0, demand, {})
    row = tally_rows.parse_instance("m", fields)
    assert dropped == 5 and row is not None and "0000000000000000" not in row.demand


@pytest.mark.parametrize("fields", [{}, {"p": "x", "at": 1.0}, {"p": 1.0, "at": 1.0, "d0": "[1]"},
                                    {"p": 1.0, "at": 1.0, "d0": "{\"k\": 3}"}])
def test_a_malformed_instance_row_is_skipped_not_fatal(fields):
    assert tally_rows.parse_instance("m", fields) is None


def test_aggregate_counts_recent_rows_and_lists_hot_keys_only():
    rows = [tally.InstanceRow("a", 7, 0.0, {"hot": (200.0, 100.0), "cold": (1.0, 100.0)}),
            tally.InstanceRow("b", 7, 0.0, {"hot": (100.0, 100.0)}),
            tally.InstanceRow("c", 6, 0.0, {"hot": (999.0, 100.0)}),  # stands in: behind
            tally.InstanceRow("d", 4, 0.0, {"hot": (999.0, 100.0)})]  # gone
    v = tally.aggregate(rows, 7, P)
    assert v.instances == 3 and v.members == {"a", "b", "c"} and v.behind == {"c"}
    assert v.hot == {"hot": (1299.0, 3)} and v.phi == tally.PHI
    parsed = tally_rows.parse_summary(tally_rows.summary_fields(v, "a", 5.0))
    assert parsed == (v, "a", 5.0)


def test_a_summary_too_long_keeps_the_most_used_keys_and_raises_phi():
    # Long demand figures (the 7,400 hot keys overflowed the summary's chunks).
    demand = {f"{n:016x}": 1_234_567_890_123.1234 + n for n in range(tally.MAX_HOT_KEYS)}
    v = tally.aggregate([tally.InstanceRow("a", 1, 0.0, {k: (d, 100.0) for k, d in
                                                           demand.items()})], 1, P)
    assert 6_000 < len(v.hot) < len(demand) and v.phi > tally.PHI
    dropped = [k for k in demand if k not in v.hot]
    assert all(demand[k] / (100.0 * P) <= v.phi for k in dropped)
    assert min(d for d, _ in v.hot.values()) >= max(demand[k] for k in dropped)
    tally_rows.summary_fields(v, "a", 0.0)  # fits: raises if it would not


@pytest.mark.parametrize("phi", [tally.PHI, 0.5, 1.5, 3125.0, float("inf")])
def test_an_unlisted_key_keeps_a_floor_whatever_phi_the_cut_left(phi):
    """phi above one (a summary cut by a flood of keys) once made own/R + (1 - phi) * w
    negative: clipped to 0, every unlisted key, the global key included, got a one-request
    bucket that never refilled (issue #23)."""
    v = tally.View(7, 4, frozenset("abcd"), {}, phi, traffic=400.0)
    w = (1 - tally.EVEN) * 100 / 400 + tally.EVEN / 4
    for own in (0.0, 10.0, 250.0):
        s = tally.share(v, "a", "k", own, 100.0, P, traffic=100.0)
        assert s >= (1 - tally.PHI_CUT) * w > 0


@pytest.mark.parametrize("phi", [1.5, 40.0])
def test_unlisted_shares_of_a_cut_summary_still_sum_to_at_most_one(phi):
    """D of an unlisted key is below phi * R; the own-demand part is scaled so that even then
    the fleet's shares of it sum to at most one."""
    rng = random.Random(3)
    members = [f"m{i}" for i in range(8)]
    traffic = {m: rng.uniform(0, 50) for m in members}
    v = tally.View(7, 8, frozenset(members), {}, phi, traffic=sum(traffic.values()))
    capacity = 100.0 * P
    demand = [rng.random() for _ in members]
    scale = phi * capacity * 0.999 / sum(demand)
    own = {m: d * scale for m, d in zip(members, demand, strict=True)}
    total = sum(tally.share(v, m, "k", own[m], 100.0, P, traffic=traffic[m]) for m in members)
    assert total <= 1.0 + 1e-9


def test_a_budget_is_never_listed_in_the_summary():
    """A rate-0 key's utilisation is infinite: listed, 7,501 of them made phi infinite."""
    rows = [tally.InstanceRow("a", 1, 0.0, {"budget": (5.0, 0.0), "k": (100.0, 100.0)})]
    v = tally.aggregate(rows, 1, P)
    assert "budget" not in v.hot and "k" in v.hot and v.phi == tally.PHI


def test_a_row_of_token_limits_with_long_figures_fits_by_its_encoding():
    """A token limit's rate (200000/60) once took 18 characters: from 9,575 keys the row
    raised, and the instance stopped publishing for good. Rows are measured as encoded."""
    rate = 200_000 / 60
    demand = {tally.key_id("client", f"c{n}"): 190_000.123456 + n for n in range(12_000)}
    fields, dropped = tally_rows.instance_fields(3, 0.0, demand, dict.fromkeys(demand, rate))
    row = tally_rows.parse_instance("me", fields)
    assert row is not None and len(row.demand) + dropped == len(demand)
    assert len(row.demand) >= 9_000 and dropped > 0
    assert all(len(v) <= tally.CHUNK for k, v in fields.items() if k.startswith("d"))
    assert {r for _, r in row.demand.values()} == {3333.333}
