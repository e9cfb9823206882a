"""The fuzzer's judges can fail: the one-credential model, burst bounds and cache replays
(tests/fuzz/tenants.py, bursts.py, tenant_checks.py), on made-up answers."""

from dataclasses import replace

from tests.fuzz.bursts import Answer, Burst, judge
from tests.fuzz.generate import case
from tests.fuzz.tenant_checks import problems
from tests.fuzz.tenants import TenantCase, expected_admitted, owner
from tests.support.rawhttp import RawResponse

KEYS = {slot: f"gw_{slot.lower():a<8}_{'K' * 38}" for slot in ("A1", "A2", "B1", "R", "X", "M",
                                                             "F")} | {"S": "sk-own"}
BASE = TenantCase(7, "required", "chat", (("bearer", "A1"),), "ok", "", False, False, "hi", 0)


def answer(status: int, body: bytes = b"{}", *headers: tuple[str, str]) -> RawResponse:
    return RawResponse(status, list(headers), body, False)


def test_the_credential_model_follows_the_one_key_rule():
    def admitted(mode: str, *placements: tuple[str, str]) -> bool:
        return expected_admitted(replace(BASE, mode=mode, placements=placements))

    assert admitted("required", ("bearer", "A1"), ("api-key", "A1"))  # one key, twice
    assert not admitted("required", ("bearer", "A1"), ("api-key", "A2"))  # two keys
    assert not admitted("required", ("bearer", "A1"), ("cookie", "B1"))  # a stray key
    assert not admitted("required", ("bearer", "R"),)  # revoked
    assert not admitted("required")  # none where required
    assert admitted("optional", ("bearer", "S"),)  # a backend's own credential, anonymous
    assert not admitted("optional", ("bearer", "S"), ("api-key", "M"))  # malformed beside it
    assert admitted("required", ("bearer", "A1"), ("basic64", "A2"))  # not visible as a key


def test_tenant_answers_are_judged():
    refused = replace(BASE, placements=(("bearer", "A1"), ("query", "B1")))
    assert problems(refused, answer(200), KEYS)  # admitted with a second key
    assert problems(refused, answer(401), KEYS) == []
    assert problems(BASE, answer(401), KEYS)  # a lone valid key refused
    assert problems(BASE, answer(429), KEYS)  # locked out
    assert problems(BASE, answer(500, b'{"error": {"code": "internal_error"}}'), KEYS)
    assert problems(BASE, answer(504, b'{"error": {"code": "upstream_timeout"}}'), KEYS) == []
    assert problems(BASE, answer(200, KEYS["B1"].encode()), KEYS)  # a key in the answer


def test_a_replay_is_judged_by_the_partition_it_came_from():
    mine = owner(BASE).encode()
    b_request = replace(BASE, index=8, placements=(("bearer", "B1"),))
    theirs = owner(b_request).encode()
    assert problems(BASE, answer(200, b"owner=" + mine), KEYS) == []
    assert problems(BASE, answer(200, b"owner=" + theirs), KEYS)  # tenant B's answer to A
    same_tenant = owner(replace(BASE, index=9, placements=(("api-key", "A2"),))).encode()
    assert problems(BASE, answer(200, b"owner=" + same_tenant), KEYS) == []
    private = replace(BASE, caching="private")
    assert problems(private, answer(200, b"owner=" + same_tenant), KEYS)
    shared = replace(BASE, mode="optional")
    assert problems(shared, answer(200, b"owner=" + theirs), KEYS) == []  # shared on purpose
    with_own_key = owner(replace(b_request, placements=(("bearer", "B1"), ("api-key", "S"))))
    assert problems(shared, answer(200, b"owner=" + with_own_key.encode()), KEYS)


def burst(kind: str = "budget", limit: int = 1000) -> Burst:
    return Burst(1, kind, limit, 20, 90, "")  # reserves 4 + 90 = 94, uses 93


def test_a_burst_is_held_to_its_bounds():
    ok, spent = Answer(200, None, None), Answer(429, "budget_exceeded", None)
    assert burst().reserved == 94
    assert judge(burst(), [ok] * 10 + [spent] * 10, 1.0) == []  # 10 fit in 1,000
    assert judge(burst(), [ok] * 13 + [spent] * 7, 1.0)  # above the budget
    assert judge(burst(), [ok] * 5 + [spent] * 15, 1.0)  # "spent" with room left
    assert judge(burst(), [ok] * 10 + [Answer(429, "rate_limit_exceeded", "1")] * 10, 1.0)
    late = Answer(504, "upstream_timeout", None)  # admitted, its reservation kept
    assert judge(burst(), [ok] * 8 + [late] * 2 + [spent] * 10, 1.0) == []
    assert judge(burst(), [ok] * 10 + [late] * 3 + [spent] * 7, 1.0)
    assert judge(burst(limit=50), [Answer(400, "exceeds_limit", None)] * 20, 1.0) == []
    assert judge(burst(limit=50), [Answer(429, "budget_exceeded", None)] * 20, 1.0)
    waited = [ok] * 10 + [Answer(429, "rate_limit_exceeded", "3600")] * 10
    assert judge(burst("tpm"), waited, 1.0)  # an hour's wait for 94 tokens at 1,000/min


def test_cases_are_reproducible_by_seed_and_index():
    assert [case(5, i) for i in range(300)] == [case(5, i) for i in range(300)]
    kinds = {type(case(5, i)).__name__ for i in range(300)}
    assert kinds == {"Case", "TenantCase", "Burst"}
