"""Key, tenant and usage records, and their plain-field form for storage.

A field of 0 (rps, tpm, budgets) means "not limited here": the settings' defaults and the
tenant's own budgets still apply. Empty `models` / `routes` means every model / route; empty
`mcp_tools` means no MCP server at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def valid_tenant(name: str) -> str:
    """The name, if it is 1-63 letters, digits, `_`, `.` or `-` (safe in table keys)."""
    if not TENANT_RE.fullmatch(name):
        raise ValueError(f"tenant name {name!r}: use 1-63 letters, digits, '_', '.', '-'")
    return name


def valid_guardrail(name: str) -> str:
    """A GUARDRAILS policy name ("" for none): the same characters as a tenant name."""
    if name and not TENANT_RE.fullmatch(name):
        raise ValueError(f"guardrail policy name {name!r}: use 1-63 letters, digits, '_', '.', "
                         "'-'")
    return name


@dataclass(frozen=True)
class KeyRecord:
    key_hash: str = field(repr=False)
    prefix: str
    tenant: str
    name: str
    created: float
    expires: float = 0.0  # epoch seconds; 0 never
    revoked: bool = False
    revoked_at: float = 0.0
    models: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    rps: float = 0.0
    burst: float = 0.0
    tpm: float = 0.0
    daily_tokens: int = 0
    monthly_tokens: int = 0
    mcp_tools: tuple[str, ...] = ()  # SERVER:TOOL / SERVER:*; empty: no MCP server (mcp/access.py)
    # May read the operator endpoints (stats, metrics, cache counters, detailed health) when
    # GATEWAY_AUTH is on; docs/SECURITY.md. Rows written before it existed read as False.
    operator: bool = False
    daily_spend: float = 0.0  # currency, as MODEL_PRICES (tenants/spend.py)
    monthly_spend: float = 0.0
    guardrail: str = ""  # a GUARDRAILS policy name for this key's requests; "" the default

    def with_(self, **changes: Any) -> KeyRecord:
        return replace(self, **changes)


@dataclass(frozen=True)
class TenantRecord:
    name: str
    created: float
    daily_tokens: int = 0
    monthly_tokens: int = 0
    daily_spend: float = 0.0
    monthly_spend: float = 0.0
    guardrail: str = ""  # the GUARDRAILS policy of its keys that name none


@dataclass(frozen=True)
class UsageRecord:
    """One key's use on one UTC day, summed over every instance."""

    tenant: str
    prefix: str
    day: str
    requests: int = 0
    tokens: int = 0
    spend: float = 0.0
    last_used: float = 0.0


_LISTS = ("models", "routes", "mcp_tools")


def to_fields(record: KeyRecord | TenantRecord | UsageRecord) -> dict[str, Any]:
    """Plain str/int/float/bool fields (lists joined with commas) for a table entity."""
    out: dict[str, Any] = {}
    for item in fields(record):
        value = getattr(record, item.name)
        out[item.name] = ",".join(value) if item.name in _LISTS else value
    return out


def from_fields(kind: type, values: Mapping[str, Any]) -> Any:
    """The record of `kind` from stored fields; unknown fields are ignored, missing ones take
    their defaults; ValueError when a field has the wrong type."""
    args: dict[str, Any] = {}
    for item in fields(kind):
        if item.name not in values or values[item.name] is None:
            continue
        raw = values[item.name]
        if item.name in _LISTS:
            args[item.name] = tuple(p for p in str(raw).split(",") if p)
        elif item.type in ("float",):
            args[item.name] = float(raw)
        elif item.type in ("int",):
            args[item.name] = int(raw)
        elif item.type in ("bool",):
            args[item.name] = raw if isinstance(raw, bool) else str(raw).lower() == "true"
        else:
            args[item.name] = str(raw)
    try:
        return kind(**args)
    except TypeError as exc:
        raise ValueError(f"malformed {kind.__name__}: {exc}") from None
