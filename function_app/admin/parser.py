"""The CLI's arguments (argparse), kept apart from what the commands do.

Every value goes through a type of arguments.py: a bad one exits 2 with argparse's message.
"""

from __future__ import annotations

import argparse

from . import arguments as a


def _limits(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    d = 0 if defaults else None
    parser.add_argument("--models", type=a.patterns, default=None if not defaults else "",
                        help="comma-separated models (shell patterns) the key may use; "
                             "empty: all")
    parser.add_argument("--routes", type=a.patterns, default=None if not defaults else "",
                        help="comma-separated route paths (patterns) the key may use; empty: all")
    parser.add_argument("--mcp-tools", default=None if not defaults else "",
                        help="comma-separated MCP tools the key may call, SERVER:TOOL or "
                             "SERVER:* (every tool); empty: no MCP server")
    parser.add_argument("--rps", type=a.rate, default=d, help="requests per second (0: none)")
    parser.add_argument("--burst", type=a.rate, default=d, help="request burst")
    parser.add_argument("--tpm", type=a.rate, default=d, help="tokens per minute (0: none)")
    parser.add_argument("--daily-tokens", type=a.tokens, default=d,
                        help="UTC daily token budget")
    parser.add_argument("--monthly-tokens", type=a.tokens, default=d,
                        help="UTC monthly token budget")
    _spend(parser, d)
    parser.add_argument("--expires-days", type=a.expires_days, default=None,
                        help=f"the key expires this many days from now (at most {a.MAX_DAYS}; "
                             "0: never)")
    parser.add_argument("--guardrail", type=a.guardrail, default=None if not defaults else "",
                        help="GUARDRAILS policy name for the key's requests; empty: the "
                             "tenant's, else by route and model")


def _key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", type=a.key_argument, help="the key or its prefix")


def _spend(parser: argparse.ArgumentParser, default: float | None) -> None:
    parser.add_argument("--daily-spend", type=a.spend, default=default,
                        help="UTC daily spend budget, in MODEL_PRICES' currency (0: none)")
    parser.add_argument("--monthly-spend", type=a.spend, default=default,
                        help="UTC monthly spend budget, in MODEL_PRICES' currency (0: none)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m function_app.admin",
        description="Tenants and gateway API keys, in the table the gateway reads "
                    "(RATE_LIMIT_STORAGE_CONNECTION, else TABLE_STORAGE_ENDPOINT with "
                    "DefaultAzureCredential; GATEWAY_KEYS_TABLE).")
    groups = parser.add_subparsers(dest="group", required=True)

    keys = groups.add_parser("keys", help="gateway API keys").add_subparsers(
        dest="command", required=True)
    create = keys.add_parser("create", help="create a key (printed once)")
    create.add_argument("--tenant", type=a.tenant, required=True)
    create.add_argument("--name", type=a.name, required=True)
    create.add_argument("--operator", action="store_true",
                        help="the key may also read the operator endpoints (/_gateway/stats, "
                             "/metrics, /cachez, /_gateway/health) when GATEWAY_AUTH is on")
    _limits(create)
    listing = keys.add_parser("list", help="keys with limits, spend and last use")
    listing.add_argument("--tenant", type=a.tenant)
    for name, text in (("show", "one key"), ("revoke", "revoke a key now")):
        _key(keys.add_parser(name, help=text))
    rotate = keys.add_parser("rotate", help="a new key with the same settings; the old one "
                                            "is revoked (or expires after --grace-s, never "
                                            "later than it would have)")
    _key(rotate)
    rotate.add_argument("--grace-s", type=a.grace_s, default=0.0,
                        help=f"seconds the old key still works (at most {a.MAX_GRACE_S})")
    update = keys.add_parser("update", help="change a key's limits")
    _key(update)
    update.add_argument("--operator", action=argparse.BooleanOptionalAction, default=None,
                        help="grant or withdraw the operator scope")
    _limits(update, defaults=False)

    tenants = groups.add_parser("tenants", help="tenants").add_subparsers(
        dest="command", required=True)
    tenants.add_parser("list", help="tenants, their keys and budgets")
    setter = tenants.add_parser("set", help="create or change a tenant's budgets")
    setter.add_argument("tenant", type=a.tenant)
    setter.add_argument("--daily-tokens", type=a.tokens, default=0)
    setter.add_argument("--monthly-tokens", type=a.tokens, default=0)
    _spend(setter, 0.0)
    setter.add_argument("--guardrail", type=a.guardrail, default="",
                        help="GUARDRAILS policy name for the tenant's keys that name none")
    usage = tenants.add_parser("usage", help="tokens, requests and spend per day")
    usage.add_argument("tenant", type=a.tenant, nargs="?")
    usage.add_argument("--days", type=a.usage_days, default=31)
    return parser
