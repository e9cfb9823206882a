"""What each admin command does, over any KeyStore (Table in use, memory in tests).

A new key is printed once, on its own line; it is never stored or printed again (only its
prefix). Exit status: 0 done, 1 not found or refused, 2 bad arguments or settings (argparse's
usage line and one `error:` line, never a traceback). Stored text is escaped on output
(display.py): a name or model list cannot drive the operator's terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from ..adapters.keystore_table import open_key_store
from ..mcp.access import parse_entry
from ..settings.load import SettingsError, load_settings
from ..tenants import keys as keyfmt
from ..tenants.access import refusal
from ..tenants.budgets import DAY, MONTH, period_id
from ..tenants.records import (
    KeyRecord,
    TenantRecord,
    UsageRecord,
    valid_guardrail,
    valid_tenant,
)
from ..tenants.store import KeyExists, KeyStore, KeyStoreUnavailable
from .display import shown, when
from .parser import build_parser

LIMIT_FIELDS = ("rps", "burst", "tpm", "daily_tokens", "monthly_tokens", "daily_spend",
                "monthly_spend")


async def main(argv: list[str], environ: Mapping[str, str], out: TextIO = sys.stdout,
               store: KeyStore | None = None, now: Callable[[], float] = time.time) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed usage and the error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    if store is None:
        try:
            settings = load_settings(environ)
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        store = open_key_store(settings.rate_limit_storage_connection,
                               settings.table_storage_endpoint, table=settings.gateway_keys_table)
        if store is None:
            print("error: set RATE_LIMIT_STORAGE_CONNECTION or TABLE_STORAGE_ENDPOINT",
                  file=sys.stderr)
            return 2
    try:
        return await COMMANDS[(args.group, args.command)](args, store, out, now())
    except Refused as exc:
        print(exc, file=out)
        return 1
    except (KeyStoreUnavailable, OSError) as exc:
        print(f"error: key storage unavailable ({exc})", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()


def _csv(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(p.strip() for p in text.split(",") if p.strip())


def _mcp_tools(text: str | None) -> tuple[str, ...] | None:
    """--mcp-tools, each entry checked (ValueError, exit 2, names a bad one)."""
    entries = _csv(text)
    for entry in entries or ():
        parse_entry(entry)
    return entries


class Refused(Exception):
    """The command cannot do what it was asked (exit 1); the message says why."""


async def _find(store: KeyStore, text: str, *, active: bool = False) -> KeyRecord:
    """By the whole key (its hash) or by prefix; Refused when there is none (or, with `active`,
    when it is revoked)."""
    if keyfmt.prefix_of(text) is not None:
        record = await store.get_key(keyfmt.key_hash(text))
    else:
        prefix = keyfmt.normalise_prefix(text)
        if prefix is None:
            raise ValueError(f"{text!r} is neither a gateway key nor a key prefix")
        record = next((r for r in await store.list_keys() if r.prefix == prefix), None)
    if record is None or (active and record.revoked):
        raise Refused("no such active key" if active else "no such key")
    return record


def _print_new_key(out: TextIO, headline: str, key: str) -> None:
    """The one time a key is shown: `headline`, then the key alone on its line."""
    print(f"{headline}; it is shown only now:", file=out)
    print(key, file=out)


async def _create_record(store: KeyStore, base: KeyRecord) -> str:
    """Store `base` under a fresh key (unique prefix); the key, to print once."""
    taken = {r.prefix for r in await store.list_keys()}
    for _ in range(10):
        key = keyfmt.generate()
        prefix = keyfmt.prefix_of(key)
        if prefix in taken:
            continue
        try:
            await store.create_key(base.with_(key_hash=keyfmt.key_hash(key), prefix=prefix))
        except KeyExists:
            continue
        return key
    raise ValueError("could not find a free key prefix")


async def keys_create(args: argparse.Namespace, store: KeyStore, out: TextIO, now: float) -> int:
    expires = now + args.expires_days * 86400 if args.expires_days else 0.0
    base = KeyRecord("", "", valid_tenant(args.tenant), args.name, now, expires=expires,
                     models=_csv(args.models) or (), routes=_csv(args.routes) or (),
                     guardrail=valid_guardrail(args.guardrail),
                     mcp_tools=_mcp_tools(args.mcp_tools) or (),
                     operator=args.operator, **{f: getattr(args, f) for f in LIMIT_FIELDS})
    key = await _create_record(store, base)
    scope = " with the operator scope" if args.operator else ""
    _print_new_key(out, f"created key {keyfmt.display(keyfmt.prefix_of(key))} for tenant "
                        f"{args.tenant}{scope}", key)
    return 0


async def _usage_by_prefix(store: KeyStore, now: float, tenant: str | None = None
                           ) -> dict[str, UsageRecord]:
    """This month's usage summed per key (last_used: the latest of all days)."""
    month = period_id(MONTH, now)
    sums: dict[str, UsageRecord] = {}
    for row in await store.list_usage(tenant, since_day=month + "-01"):
        old = sums.get(row.prefix)
        sums[row.prefix] = row if old is None else UsageRecord(
            row.tenant, row.prefix, month, old.requests + row.requests,
            old.tokens + row.tokens, old.spend + row.spend, max(old.last_used, row.last_used))
    return sums


def _status(record: KeyRecord, now: float) -> str:
    return refusal(record, now) or "active"


def _limits(record: KeyRecord) -> str:
    parts = [f"{f}={getattr(record, f):g}" for f in LIMIT_FIELDS if getattr(record, f)]
    return " ".join(parts) or "defaults"


async def keys_list(args: argparse.Namespace, store: KeyStore, out: TextIO, now: float) -> int:
    usage = await _usage_by_prefix(store, now, args.tenant)
    print(f"{'PREFIX':<14}{'TENANT':<16}{'NAME':<16}{'STATUS':<9}{'TOKENS(MONTH)':>14}"
          f"{'SPEND':>10}  {'LAST USED':<21}LIMITS", file=out)
    for r in await store.list_keys():
        if args.tenant and r.tenant != args.tenant:
            continue
        u = usage.get(r.prefix)
        status = _status(r, now) + ("*" if r.operator else "")
        print(f"{shown(r.prefix):<14}{shown(r.tenant):<16}{shown(r.name):<16}{status:<9}"
              f"{(u.tokens if u else 0):>14}{(u.spend if u else 0.0):>10.4f}  "
              f"{when(u.last_used if u else 0):<21}{_limits(r)}", file=out)
    return 0


async def keys_show(args: argparse.Namespace, store: KeyStore, out: TextIO, now: float) -> int:
    record = await _find(store, args.key)
    u = (await _usage_by_prefix(store, now, record.tenant)).get(record.prefix)
    rows = [("prefix", keyfmt.display(record.prefix)), ("tenant", record.tenant),
            ("name", record.name), ("status", _status(record, now)),
            ("operator", "yes" if record.operator else "no"),
            ("created", when(record.created)), ("expires", when(record.expires)),
            ("revoked_at", when(record.revoked_at)),
            ("models", ",".join(record.models) or "all"),
            ("routes", ",".join(record.routes) or "all"),
            ("mcp tools", ",".join(record.mcp_tools) or "none"), ("limits", _limits(record)),
            # Only when the key names a policy (else the tenant's, or the route's, applies).
            *([("guardrail", record.guardrail)] if record.guardrail else []),
            ("tokens this month", str(u.tokens if u else 0)),
            ("requests this month", str(u.requests if u else 0)),
            ("spend this month", f"{u.spend if u else 0.0:.4f}"),
            ("last used", when(u.last_used if u else 0))]
    for name, value in rows:
        print(f"{name:<20}{shown(value)}", file=out)
    return 0


async def keys_revoke(args: argparse.Namespace, store: KeyStore, out: TextIO, now: float) -> int:
    record = await _find(store, args.key)
    await store.save_key(record.with_(revoked=True, revoked_at=now))
    print(f"revoked {keyfmt.display(record.prefix)} (tenant {record.tenant}); every gateway "
          "instance refuses it within GATEWAY_KEY_CACHE_TTL_S", file=out)
    return 0


async def keys_rotate(args: argparse.Namespace, store: KeyStore, out: TextIO, now: float) -> int:
    """The new key keeps the old one's settings and its expiry (rotation is a new secret, not
    a longer life); an expired key is not rotated, and a grace never outlives the old expiry."""
    record = await _find(store, args.key, active=True)
    if refusal(record, now) is not None:
        raise Refused(f"{keyfmt.display(record.prefix)} is {refusal(record, now)}; create a new "
                      "key instead (keys create)")
    key = await _create_record(store, record.with_(created=now, revoked=False, revoked_at=0.0))
    if args.grace_s > 0:
        ends = now + args.grace_s
        await store.save_key(record.with_(expires=min(ends, record.expires or ends)))
    else:
        await store.save_key(record.with_(revoked=True, revoked_at=now))
    _print_new_key(out, f"rotated {keyfmt.display(record.prefix)} -> "
                        f"{keyfmt.display(keyfmt.prefix_of(key))}; the new key", key)
    return 0


async def keys_update(args: argparse.Namespace, store: KeyStore, out: TextIO, now: float) -> int:
    record = await _find(store, args.key)
    changes = {f: getattr(args, f) for f in LIMIT_FIELDS if getattr(args, f) is not None}
    for name in ("models", "routes"):
        if getattr(args, name) is not None:
            changes[name] = _csv(getattr(args, name))
    if args.guardrail is not None:
        changes["guardrail"] = valid_guardrail(args.guardrail)
    if args.mcp_tools is not None:
        changes["mcp_tools"] = _mcp_tools(args.mcp_tools)
    if args.operator is not None:
        changes["operator"] = args.operator
    if args.expires_days is not None:
        changes["expires"] = now + args.expires_days * 86400 if args.expires_days else 0.0
    await store.save_key(record.with_(**changes))
    print(f"updated {keyfmt.display(record.prefix)}", file=out)
    return 0


async def tenants_list(args: argparse.Namespace, store: KeyStore, out: TextIO,
                       now: float) -> int:
    records = {t.name: t for t in await store.list_tenants()}
    counts: dict[str, int] = {}
    for r in await store.list_keys():
        if not refusal(r, now):
            counts[r.tenant] = counts.get(r.tenant, 0) + 1
    print(f"{'TENANT':<20}{'ACTIVE KEYS':>12}{'DAILY BUDGET':>14}{'MONTHLY BUDGET':>16}"
          f"{'DAILY SPEND':>13}{'MONTHLY SPEND':>15}", file=out)
    for name in sorted(set(records) | set(counts)):
        t = records.get(name)
        print(f"{shown(name):<20}{counts.get(name, 0):>12}{(t.daily_tokens if t else 0):>14}"
              f"{(t.monthly_tokens if t else 0):>16}{(t.daily_spend if t else 0):>13.2f}"
              f"{(t.monthly_spend if t else 0):>15.2f}", file=out)
    return 0


async def tenants_set(args: argparse.Namespace, store: KeyStore, out: TextIO, now: float) -> int:
    old = await store.get_tenant(valid_tenant(args.tenant))
    await store.save_tenant(TenantRecord(args.tenant, old.created if old else now,
                                         args.daily_tokens, args.monthly_tokens,
                                         args.daily_spend, args.monthly_spend,
                                         guardrail=valid_guardrail(args.guardrail)))
    print(f"tenant {args.tenant}: daily budget {args.daily_tokens or 'none'}, monthly budget "
          f"{args.monthly_tokens or 'none'} tokens; daily spend budget "
          f"{args.daily_spend or 'none'}, monthly {args.monthly_spend or 'none'}", file=out)
    return 0


async def tenants_usage(args: argparse.Namespace, store: KeyStore, out: TextIO,
                        now: float) -> int:
    since = period_id(DAY, now - max(0, args.days - 1) * 86400)
    print(f"{'TENANT':<16}{'DAY':<12}{'KEY':<14}{'REQUESTS':>10}{'TOKENS':>12}{'SPEND':>10}  "
          "LAST USED", file=out)
    for u in await store.list_usage(args.tenant, since_day=since):
        print(f"{shown(u.tenant):<16}{shown(u.day):<12}{shown(u.prefix):<14}{u.requests:>10}"
              f"{u.tokens:>12}"
              f"{u.spend:>10.4f}  {when(u.last_used)}", file=out)
    return 0


COMMANDS = {
    ("keys", "create"): keys_create, ("keys", "list"): keys_list, ("keys", "show"): keys_show,
    ("keys", "revoke"): keys_revoke, ("keys", "rotate"): keys_rotate,
    ("keys", "update"): keys_update, ("tenants", "list"): tenants_list,
    ("tenants", "set"): tenants_set, ("tenants", "usage"): tenants_usage,
}
