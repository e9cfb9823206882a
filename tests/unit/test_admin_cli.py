"""The admin CLI over an in-memory store: every argument validated (exit 2, one clear line, no
traceback), rotation never revives an expired key, output never prints control characters."""

from __future__ import annotations

import io

import pytest

from function_app.adapters.keystore_memory import MemoryKeyStore
from function_app.admin.cli import main as admin
from function_app.tenants.access import refusal
from function_app.tenants.keys import key_hash, prefix_of
from function_app.tenants.records import KeyRecord

NOW = 1_795_000_000.0  # 2026-11-18
DAY = 86400.0


class Run:
    def __init__(self, store: MemoryKeyStore, now: float = NOW):
        self.store, self.now = store, now

    async def __call__(self, *argv: str, capsys=None) -> tuple[int, str, str]:
        out = io.StringIO()
        code = await admin(list(argv), {}, out, store=self.store, now=lambda: self.now)
        err = capsys.readouterr().err if capsys is not None else ""
        return code, out.getvalue(), err


@pytest.fixture
def store():
    return MemoryKeyStore()


@pytest.fixture
def run(store):
    return Run(store)


async def created(run: Run, *extra: str) -> str:
    code, text, _ = await run("keys", "create", "--tenant", "acme", "--name", "ci", *extra)
    assert code == 0
    return text.splitlines()[-1]


@pytest.mark.parametrize("argv", [
    ("keys", "create", "--tenant", "acme", "--name", "n", "--expires-days", "1e300"),
    ("keys", "create", "--tenant", "acme", "--name", "n", "--expires-days", "nan"),
    ("keys", "create", "--tenant", "acme", "--name", "n", "--expires-days", "inf"),
    ("keys", "create", "--tenant", "acme", "--name", "n", "--expires-days", "-1"),
    ("keys", "create", "--tenant", "acme", "--name", "n", "--rps", "-5"),
    ("keys", "create", "--tenant", "acme", "--name", "n", "--burst", "nan"),
    ("keys", "create", "--tenant", "acme", "--name", "n", "--tpm", "-1"),
    ("keys", "create", "--tenant", "acme", "--name", "n", "--daily-tokens", "-100"),
    ("keys", "create", "--tenant", "acme", "--name", "n", "--monthly-tokens", "1e3"),
    ("keys", "create", "--tenant", "acme", "--name", "x" * 40_000),
    ("keys", "create", "--tenant", "acme", "--name", "bad\x1b[2Jname"),
    ("keys", "create", "--tenant", "acme", "--name", ""),
    ("keys", "create", "--tenant", "acme", "--name", "n", "--models", "m\nx"),
    ("keys", "create", "--tenant", "acme", "--name", "n", "--routes", "/" + "a" * 5000),
    ("keys", "create", "--tenant", "a" * 100, "--name", "n"),
    ("tenants", "usage", "acme", "--days", "10000000"),
    ("tenants", "usage", "acme", "--days", "0"),
    ("tenants", "set", "acme", "--daily-tokens", "-1"),
    ("tenants", "set", "acme", "--monthly-tokens", "99999999999999999999999"),
    ("keys", "rotate", "abcd2345", "--grace-s", "-3"),
    ("keys", "rotate", "abcd2345", "--grace-s", "nan"),
    ("keys", "rotate", "abcd2345", "--grace-s", "1e300"),
    ("keys", "update", "abcd2345", "--rps", "-1"),
    ("keys", "show", "k" * 40_000),
])
async def test_every_bad_argument_exits_2_with_one_clear_line(run, store, capsys, argv):
    code, out, err = await run(*argv, capsys=capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err + out and "error:" in err
    assert "storage unavailable" not in err
    assert len(err) < 2000  # the message names the argument, it does not echo 40 kB back
    assert store.keys == {} and store.tenants == {}


async def test_days_far_in_the_future_is_refused_not_a_traceback(run, capsys):
    code, _, err = await run("keys", "create", "--tenant", "acme", "--name", "n",
                             "--expires-days", "10000000", capsys=capsys)
    assert code == 2 and "--expires-days" in err


async def test_rotating_an_expired_key_neither_revives_it_nor_makes_a_dead_key(run, store):
    key = await created(run, "--expires-days", "1")
    run.now = NOW + 2 * DAY
    code, text, _ = await run("keys", "rotate", prefix_of(key), "--grace-s", "3600")
    assert code == 1 and "expired" in text
    old = await store.get_key(key_hash(key))
    assert refusal(old, run.now) == "expired"
    assert len(store.keys) == 1  # no new key, expired from birth


async def test_grace_never_extends_a_key_past_its_own_expiry(run, store):
    key = await created(run, "--expires-days", "1")
    run.now = NOW + DAY - 60  # a minute left
    code, text, _ = await run("keys", "rotate", prefix_of(key), "--grace-s", "86400")
    assert code == 0
    old = await store.get_key(key_hash(key))
    assert old.expires == NOW + DAY
    new = await store.get_key(key_hash(text.splitlines()[-1]))
    assert refusal(new, run.now) is None and new.expires == NOW + DAY


async def test_grace_shortens_a_key_that_would_live_longer(run, store):
    key = await created(run)
    code, _, _ = await run("keys", "rotate", prefix_of(key), "--grace-s", "600")
    assert code == 0 and (await store.get_key(key_hash(key))).expires == NOW + 600


async def test_a_stored_non_finite_expiry_counts_as_expired_and_shows(run, store):
    record = KeyRecord("h" * 64, "abcd2345", "acme", "old", NOW, expires=float("nan"))
    await store.create_key(record)
    assert refusal(record, NOW) == "expired"
    code, text, _ = await run("keys", "show", "abcd2345")
    assert code == 0 and "expired" in text
    huge = record.with_(key_hash="g" * 64, prefix="bcde2345", expires=1e300)
    await store.create_key(huge)
    code, text, _ = await run("keys", "show", "bcde2345")
    assert code == 0 and "expires" in text


async def test_control_characters_in_stored_fields_are_escaped_on_output(run, store):
    await store.create_key(KeyRecord("h" * 64, "abcd2345", "acme", "evil\x1b[31m\r\nname",
                                     NOW, models=("m\x07",)))
    for argv in (("keys", "list"), ("keys", "show", "abcd2345")):
        code, text, _ = await run(*argv)
        assert code == 0
        assert "\x1b" not in text and "\r" not in text and "\x07" not in text
        assert "\\x1b" in text
        assert all(line.count("\n") == 0 for line in text.splitlines())
        assert len(text.splitlines()) == (2 if argv[1] == "list" else 16)


async def test_valid_limits_and_names_still_work(run, store):
    key = await created(run, "--rps", "2.5", "--burst", "5", "--tpm", "1000",
                        "--daily-tokens", "100", "--monthly-tokens", "1000",
                        "--expires-days", "30", "--models", "gpt-4o*,sim", "--name", "n" * 64)
    stored = await store.get_key(key_hash(key))
    assert (stored.rps, stored.daily_tokens, stored.expires) == (2.5, 100, NOW + 30 * DAY)
    assert stored.name == "n" * 64 and stored.models == ("gpt-4o*", "sim")
    code, _, _ = await run("keys", "update", prefix_of(key), "--expires-days", "0")
    assert code == 0 and (await store.get_key(key_hash(key))).expires == 0.0
    code, _, _ = await run("tenants", "usage", "acme", "--days", "31")
    assert code == 0
