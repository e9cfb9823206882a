"""Where a request may go: pools of members, ordered targets (primary, then fallbacks), plans.

A member is one backend (a name from the backend table, or a base URL for OpenAI models) with a
weight and a priority (0 is tried first). A target is a pool plus what the request becomes
there: the upstream path (proxy routes) or the model name (OpenAI routes). A plan is the ordered
targets of one request and the route's retry rules.

Pool syntax, shared by GATEWAY_ROUTES and MODEL_ROUTES entries: `"python"` or
`{"backend": "python", "weight": 2, "priority": 0}`, or a list of those.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..http.context import Fact
from .backends import BackendSpec

# What makes a request move to the next target: a 429, any 5xx (refusals and resets included),
# a timeout; "context_length" (a 400 whose code says the prompt is too long) is opt-in.
FALLBACK_CLASSES = frozenset({"429", "5xx", "timeout", "context_length"})
DEFAULT_FALLBACK_ON = frozenset({"429", "5xx", "timeout"})


@dataclass(frozen=True)
class Member:
    """One backend of a pool; `name` keys its breaker, its probe row and its stats."""

    name: str
    url: str
    weight: float = 1.0
    priority: int = 0
    api_key: str | None = field(default=None, repr=False, compare=False)
    # Wire and credentials of a backend given as an object in GATEWAY_BACKENDS (backends.py).
    backend: BackendSpec | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Target:
    members: tuple[Member, ...]
    path: str | None = None  # None: the matched route's own upstream path
    model: str | None = None  # OpenAI: the model name sent upstream (None: as the client sent)
    fallback_on: frozenset[str] = DEFAULT_FALLBACK_ON
    label: str = ""


@dataclass(frozen=True)
class Plan:
    """The targets of one request in order, and whether a POST may be sent twice."""

    targets: tuple[Target, ...]
    repeatable: bool = False
    attempt_timeout_s: float | None = None


PLAN: Fact[Plan] = Fact("plan")  # the model's plan, in place of the route's
MEMBER: Fact[Member] = Fact("member")  # the pool member that answered (upstream step)


def parse_pool(raw: object, resolve: Callable[[str], tuple[str, str]], where: str
               ) -> tuple[Member, ...]:
    """Members from the pool syntax; `resolve(target)` gives (name, base URL) or ValueError."""
    items: Sequence = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ValueError(f"{where}: a pool needs at least one backend")
    members = []
    for item in items:
        spec = {"backend": item} if isinstance(item, str) else item
        if not isinstance(spec, Mapping) or not isinstance(spec.get("backend"), str):
            raise ValueError(f"{where}: each pool member is a backend name or "
                             '{"backend": ..., "weight": ..., "priority": ...}')
        weight, priority = spec.get("weight", 1), spec.get("priority", 0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ValueError(f"{where}: 'weight' must be a positive number")
        if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
            raise ValueError(f"{where}: 'priority' must be a non-negative integer")
        name, url = resolve(spec["backend"])
        members.append(Member(name, url, float(weight), priority))
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: a backend appears twice in one pool")
    return tuple(members)


def parse_fallback_on(raw: object, where: str) -> frozenset[str]:
    if raw is None:
        return DEFAULT_FALLBACK_ON
    if not isinstance(raw, list) or not set(map(str, raw)) <= FALLBACK_CLASSES:
        raise ValueError(f"{where}: 'fallback_on' must be a list of {sorted(FALLBACK_CLASSES)}")
    return frozenset(map(str, raw))
