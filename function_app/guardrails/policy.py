"""Guardrail policies (the GUARDRAILS setting) and which one applies to a request: pure.

A policy:

    {"name": "strict", "models": ["gpt-4o*"], "routes": ["/v1/chat/completions"],
     "input": {"prompt_shields": "block", "content_safety": "block", "pii": "redact"},
     "output": {"content_safety": "block", "pii": "annotate"},
     "severity": 4, "window_chars": 200, "window_ms": 500, "fail": "closed",
     "categories": ["Hate", "SelfHarm", "Sexual", "Violence"],
     "pii_kinds": ["card", "email"], "pii_patterns": {"employee_id": "EMP-[0-9]{6}"}}

- `models` and `routes` are shell patterns; a policy applies by route/model only when it lists
  at least one of them, and then every list it gives must match. A policy listing neither
  applies only to keys or tenants that name it (`--guardrail NAME` in the admin CLI).
- A key's (else its tenant's) named policy replaces the route/model choice; otherwise the first
  matching policy in the list applies; none: no checks.
- Actions: `block` (400 content_filter; a stream ends with finish_reason "content_filter"),
  `annotate` (pass, reported in the x-gateway-guardrails header and telemetry) and, for `pii`
  only, `redact` (the values are replaced before the text goes on).
- `severity`: the lowest Content Safety severity (0-7) that acts; `window_chars`: the most text
  of a streamed answer held back before it is checked; `fail`: what a check that cannot run
  (service down, slow, over its rate limit) does: `open` lets the text through, `closed`
  refuses it (503 guardrail_unavailable; a stream ends with OpenAI's error event).
  `window_ms` (0: off) releases a stream's window held that long even when it is shorter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from .patterns import custom_detector
from .pii import BUILT_IN, PII_KINDS, Detector

CHECKS = ("prompt_shields", "content_safety", "pii")
ACTIONS = ("block", "redact", "annotate")
CATEGORIES = ("Hate", "SelfHarm", "Sexual", "Violence")
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
_KEYS = {"name", "models", "routes", "input", "output", "severity", "window_chars", "fail",
         "categories", "pii_kinds", "pii_patterns", "window_ms"}


@dataclass(frozen=True)
class Policy:
    name: str
    models: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    input: Mapping[str, str] = field(default_factory=dict)
    output: Mapping[str, str] = field(default_factory=dict)
    severity: int = 4
    window_chars: int = 200
    fail: str = "closed"
    categories: tuple[str, ...] = CATEGORIES
    detectors: tuple[Detector, ...] = field(default=BUILT_IN, repr=False)
    window_ms: int = 0  # also release a window held this long (0: by characters only)

    @property
    def fails_open(self) -> bool:
        return self.fail == "open"

    def applies_to(self, route: str, model: str | None) -> bool:
        if not self.models and not self.routes:
            return False
        if self.routes and not any(fnmatchcase(route, p) for p in self.routes):
            return False
        return not self.models or (model is not None and
                                   any(fnmatchcase(model, p) for p in self.models))

    @property
    def uses_service(self) -> bool:
        """Whether any check of this policy calls Content Safety."""
        return any(c in m for m in (self.input, self.output)
                   for c in ("prompt_shields", "content_safety"))


def select(policies: Sequence[Policy], route: str, model: str | None,
           named: str | None) -> Policy | None:
    """The policy for a request: the named one if it exists, else the first that applies."""
    if named:
        for policy in policies:
            if policy.name == named:
                return policy
    return next((p for p in policies if p.applies_to(route, model)), None)


def parse_policies(raw: Any) -> tuple[Policy, ...]:
    """GUARDRAILS' JSON list as policies; ValueError names the entry and what is wrong."""
    if not isinstance(raw, list):
        raise ValueError("expected a JSON list of policies")
    policies = tuple(_policy(i, entry) for i, entry in enumerate(raw))
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise ValueError("policy names must be unique")
    return policies


def _names(where: str, entry: Mapping, key: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: '{key}' must be a list of non-empty strings")
    return tuple(value)


def _actions(where: str, entry: Mapping, key: str) -> dict[str, str]:
    value = entry.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{where}: '{key}' must be an object of check -> action")
    for check, action in value.items():
        if check not in CHECKS:
            raise ValueError(f"{where}: {key}: unknown check {check!r} (known: {CHECKS})")
        if action not in ACTIONS:
            raise ValueError(f"{where}: {key}.{check}: action must be one of {ACTIONS}")
        if action == "redact" and check != "pii":
            raise ValueError(f"{where}: {key}.{check}: only pii can be redacted")
    if key == "output" and "prompt_shields" in value:
        raise ValueError(f"{where}: output: prompt_shields checks prompts, not answers")
    return dict(value)


def _int(where: str, entry: Mapping, key: str, default: int, lo: int, hi: int) -> int:
    value = entry.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{where}: '{key}' must be an integer in {lo}..{hi}")
    return value


def _policy(index: int, entry: Any) -> Policy:
    where = f"policy {index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object")
    unknown = set(entry) - _KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    name = entry.get("name", f"policy{index}")
    if not isinstance(name, str) or not name or len(name) > 63 or set(name) - set(NAME_CHARS):
        raise ValueError(f"{where}: 'name' must be 1-63 letters, digits, '_', '.', '-'")
    fail = entry.get("fail", "closed")
    if fail not in ("open", "closed"):
        raise ValueError(f"{where}: 'fail' must be 'open' or 'closed'")
    categories = _names(where, entry, "categories") or CATEGORIES
    if set(categories) - set(CATEGORIES):
        raise ValueError(f"{where}: 'categories' must be among {CATEGORIES}")
    return Policy(name, _names(where, entry, "models"), _names(where, entry, "routes"),
                  _actions(where, entry, "input"), _actions(where, entry, "output"),
                  _int(where, entry, "severity", 4, 0, 7),
                  _int(where, entry, "window_chars", 200, 20, 10000), fail, categories,
                  _detectors(where, entry), _int(where, entry, "window_ms", 0, 0, 60000))


def _detectors(where: str, entry: Mapping) -> tuple[Detector, ...]:
    kinds = _names(where, entry, "pii_kinds") or PII_KINDS
    if set(kinds) - set(PII_KINDS):
        raise ValueError(f"{where}: 'pii_kinds' must be among {PII_KINDS}")
    chosen = tuple(d for d in BUILT_IN if d.kind in kinds)
    custom = entry.get("pii_patterns", {})
    if not isinstance(custom, dict) or len(custom) > 32:
        raise ValueError(f"{where}: 'pii_patterns' must be an object of at most 32 patterns")
    try:
        extra = tuple(custom_detector(k, v if isinstance(v, str) else "")
                      for k, v in custom.items())
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return chosen + extra


def guardrail_policies(value: str) -> tuple[Policy, ...]:
    """The GUARDRAILS setting's parser: empty is no policy."""
    if not value:
        return ()
    try:
        decoded = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return parse_policies(decoded)
