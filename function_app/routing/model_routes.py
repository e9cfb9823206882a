"""The model table: which OpenAI-compatible backend serves each model name.

MODEL_ROUTES maps a model name to a backend, given either as a backend name (python, node, or one
from GATEWAY_BACKENDS) or as the base URL of any OpenAI-compatible server ("http://host:8000" or
"http://host:11434/v1": a trailing /v1 is dropped because the client path already carries it).
Empty, it is DEFAULT_MODELS, which maps the simulators. A model in no route goes to
DEFAULT_MODEL_BACKEND when set, otherwise the caller answers 404.

A route may also be an object naming a pool and fallbacks (function_app/routing/pools.py):
`{"backends": ["python", {"backend": "http://gpu2:8000", "weight": 2}], "fallbacks": ["sim-node"],
"fallback_on": ["429", "5xx", "timeout", "context_length"]}`. A fallback is another model of the
table: the request goes to that model's pool with its `model` field rewritten.

MODEL_API_KEYS maps a model name, a backend name or a base URL (looked up in that order) to the
key sent upstream as `Authorization: Bearer <key>`; it replaces the client's own Authorization.
A backend given as an object in GATEWAY_BACKENDS (routing/backends.py: Azure OpenAI, keys from
a named setting, Entra tokens) carries its own credentials, which win over MODEL_API_KEYS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..core.redact import display_url
from .backends import BackendSpec
from .pools import Member, Plan, Target, parse_fallback_on, parse_pool

# "sim-small" is the model name of the k6 scripts; it is served by the Python simulator.
DEFAULT_MODELS: Mapping[str, str] = {
    "sim-python": "python", "sim-node": "node", "sim-small": "python",
}


class ModelTableError(ValueError):
    """A model setting is malformed; `setting` names it."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class ModelBackend:
    """Where a model is served: `base_url` has no trailing / or /v1; `name` is for display."""

    name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ModelRoute:
    """A model's pool and the models it falls back to, in order."""

    members: tuple[Member, ...]
    fallbacks: tuple[str, ...] = ()
    fallback_on: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ModelTable:
    models: Mapping[str, ModelBackend]
    default: ModelBackend | None = None
    routes: Mapping[str, ModelRoute] = field(default_factory=dict)
    default_route: ModelRoute | None = None

    def plan(self, model: str) -> Plan | None:
        """The targets for `model`: its pool, then each fallback model's pool, renamed."""
        route = self.routes.get(model, self.default_route)
        if route is None:
            return None
        targets = [Target(route.members, label=model)]
        for name in route.fallbacks:
            other = self.routes[name]
            targets.append(Target(other.members, model=name, fallback_on=route.fallback_on,
                                  label=name))
        # Completions are stateless inference: safe to send again after a reset.
        return Plan(tuple(targets), repeatable=True)

    def resolve(self, model: str) -> ModelBackend | None:
        """The backend for `model`: its route, else the default backend, else None."""
        return self.models.get(model, self.default)

    def names(self) -> list[str]:
        return sorted(self.models)

    def members(self, allowed: Callable[[str], bool] = lambda _: True) -> list[Member]:
        """Every member of the pools of the models `allowed` (one per name), then the default
        backend's when `allowed("*")` (it serves models of any name)."""
        found: dict[str, Member] = {}
        for model, route in self.routes.items():
            if allowed(model):
                for member in route.members:
                    found.setdefault(member.name, member)
        if self.default_route is not None and allowed("*"):
            for member in self.default_route.members:
                found.setdefault(member.name, member)
        return list(found.values())


def parse_model_table(routes: Mapping, default: str, api_keys: Mapping,
                      backends: Mapping[str, str],
                      specs: Mapping[str, BackendSpec] | None = None) -> ModelTable:
    """Validate the three model settings; ModelTableError names the bad one. `specs` are the
    backends given as objects, whose members carry their wire and credentials."""
    specs = specs or {}
    for key, value in api_keys.items():
        if not isinstance(value, str) or not value:
            raise ModelTableError("MODEL_API_KEYS", f"{key!r}: the key must be a non-empty string")
    table, pools = {}, {}
    for model, target in (routes or DEFAULT_MODELS).items():
        if not model:
            raise ModelTableError("MODEL_ROUTES", "a model name must not be empty")
        pools[model] = _route(model, target, backends, api_keys, specs)
        first = pools[model].members[0]
        table[model] = ModelBackend(first.name, first.url, first.api_key)
    for model, route in pools.items():
        unknown = [name for name in route.fallbacks if name not in pools or name == model]
        if unknown:
            raise ModelTableError("MODEL_ROUTES", f"model {model!r}: fallbacks {unknown} are "
                                                  "not other models of the table")
    fallback = _backend("DEFAULT_MODEL_BACKEND", default, backends, api_keys, None) \
        if default else None
    default_route = ModelRoute((Member(fallback.name, fallback.base_url,
                                       api_key=fallback.api_key,
                                       backend=specs.get(fallback.name)),)) if fallback else None
    return ModelTable(table, fallback, pools, default_route)


def _route(model: str, raw: object, backends: Mapping[str, str], api_keys: Mapping,
           specs: Mapping[str, BackendSpec]) -> ModelRoute:
    """A MODEL_ROUTES value: a backend name or URL, or an object with a pool and fallbacks."""
    spec = raw if isinstance(raw, Mapping) else {"backends": str(raw)}
    where = f"model {model!r}"

    def resolve(target: str) -> tuple[str, str]:
        found = _backend("MODEL_ROUTES", target, backends, api_keys, model)
        keys[found.name] = found.api_key
        return found.name, found.base_url

    keys: dict[str, str | None] = {}
    try:
        members = parse_pool(spec.get("backends", spec.get("backend")), resolve, where)
        fallback_on = parse_fallback_on(spec.get("fallback_on"), where)
    except ModelTableError:
        raise
    except ValueError as exc:
        raise ModelTableError("MODEL_ROUTES", str(exc)) from None
    fallbacks = spec.get("fallbacks", [])
    if not isinstance(fallbacks, list) or not all(isinstance(f, str) for f in fallbacks):
        raise ModelTableError("MODEL_ROUTES", f"{where}: 'fallbacks' must be a list of models")
    members = tuple(Member(m.name, m.url, m.weight, m.priority, keys[m.name],
                           specs.get(m.name)) for m in members)
    return ModelRoute(members, tuple(fallbacks), fallback_on)


def _backend(setting: str, target: str, backends: Mapping[str, str], api_keys: Mapping,
             model: str | None) -> ModelBackend:
    if target in backends:
        name, url = target, backends[target]
    else:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            where = f"model {model!r}: " if model else ""
            raise ModelTableError(setting, f"{where}{target!r} is neither a backend name "
                                           f"({', '.join(sorted(backends))}) nor an http(s) URL")
        # A URL names its backend in stats, labels, /healthz and breaker rows: its shown form,
        # so a `user:password@` in it stays in the one place that sends it (the member's url).
        name, url = display_url(target), target
    base = url.rstrip("/").removesuffix("/v1")
    key = next((api_keys[k] for k in (model, name, url, base) if k is not None and k in api_keys),
               None)
    return ModelBackend(name, base, key)
