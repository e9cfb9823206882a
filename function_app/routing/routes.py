"""The route table: data that maps a client path and method to a backend and upstream path.

A route is `{"path": "/infer/python", "methods": ["POST"], "backend": "python",
"upstream_path": "/infer", "timeout_s": 30, "json_body": true}`. A path ending in `/*` matches
that prefix and appends the rest of the client path to `upstream_path`. Adding a backend or a route
is configuration (GATEWAY_BACKENDS, GATEWAY_ROUTES), not code.

A route's `kind` is "proxy" (the default: forward to `backend`) or one of the OpenAI endpoints in
OPENAI_KINDS, which take no backend: the request body's `model` picks it (model_routes.py).
OPENAI_ROUTES always follow the configured routes, so a configured route can shadow them.

Resilient routing (function_app/routing/): instead of `backend` a route may name a pool,
`"backends": ["python", {"backend": "python2", "weight": 2, "priority": 1}]`; `"fallbacks"` lists
targets tried in order when the pool fails (`"node"`, or `{"backend" or "backends": ...,
"upstream_path": "/infer", "fallback_on": ["429", "5xx", "timeout"]}`); `"idempotent": true`
says a POST may be sent again after a failure; `"attempt_timeout_s"` bounds each attempt
inside `timeout_s`, which bounds the whole request. The seed's /infer/python falls back to node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from ..core.errors import MethodNotAllowed, NotFound
from ..http.context import Fact
from ..http.headers import NAME_CACHED_LEN, learned
from .pools import Member, Plan, Target, parse_fallback_on, parse_pool

# The simulators' /infer has no side effects, so a POST there is safe to repeat.
SEED_ROUTES: tuple[dict, ...] = (
    {"path": "/infer/python", "methods": ["POST"], "backend": "python", "upstream_path": "/infer",
     "json_body": True, "fallbacks": ["node"], "idempotent": True},
    {"path": "/infer/node", "methods": ["POST"], "backend": "node", "upstream_path": "/infer",
     "json_body": True, "idempotent": True},
)

PROXY = "proxy"
OPENAI_CHAT, OPENAI_COMPLETIONS = "openai.chat", "openai.completions"
OPENAI_EMBEDDINGS, OPENAI_MODELS = "openai.embeddings", "openai.models"
# The Responses API: POST /v1/responses is routed by model; a stored response (GET, DELETE,
# input_items, cancel) goes back to the backend that made it (openai/response_ids.py).
OPENAI_RESPONSES, OPENAI_STORED = "openai.responses", "openai.stored_response"
OPENAI_KINDS = frozenset({OPENAI_CHAT, OPENAI_COMPLETIONS, OPENAI_EMBEDDINGS, OPENAI_MODELS,
                          OPENAI_RESPONSES, OPENAI_STORED})
# Anthropic's Messages API, in its own wire format (function_app/anthropic/).
ANTHROPIC_MESSAGES, ANTHROPIC_COUNT = "anthropic.messages", "anthropic.count_tokens"
ANTHROPIC_KINDS = frozenset({ANTHROPIC_MESSAGES, ANTHROPIC_COUNT})
MODEL_KINDS = OPENAI_KINDS | ANTHROPIC_KINDS  # routes whose backend the model table picks

OPENAI_ROUTES: tuple[dict, ...] = (
    {"path": "/v1/chat/completions", "methods": ["POST"], "kind": OPENAI_CHAT, "json_body": True},
    {"path": "/v1/completions", "methods": ["POST"], "kind": OPENAI_COMPLETIONS,
     "json_body": True},
    {"path": "/v1/embeddings", "methods": ["POST"], "kind": OPENAI_EMBEDDINGS, "json_body": True},
    {"path": "/v1/models", "methods": ["GET"], "kind": OPENAI_MODELS},
    {"path": "/v1/models/*", "methods": ["GET"], "kind": OPENAI_MODELS},
    {"path": "/v1/responses", "methods": ["POST"], "kind": OPENAI_RESPONSES, "json_body": True},
    {"path": "/v1/responses/*", "methods": ["GET", "DELETE", "POST"], "kind": OPENAI_STORED},
    {"path": "/v1/messages", "methods": ["POST"], "kind": ANTHROPIC_MESSAGES, "json_body": True},
    {"path": "/v1/messages/count_tokens", "methods": ["POST"], "kind": ANTHROPIC_COUNT,
     "json_body": True},
)

# The prototype's demo routes, always present after the configured ones (which can shadow
# them): GET /slow (a backend endpoint answering after 120 ms, for the cache) on either backend,
# and GET /limited, answered by the gateway itself (stages/local.py) to show the rate limiter.
LOCAL_OK = "local.ok"
DEMO_ROUTES: tuple[dict, ...] = (
    {"path": "/slow", "methods": ["GET", "HEAD"], "backend": "python", "upstream_path": "/slow"},
    {"path": "/slow/python", "methods": ["GET", "HEAD"], "backend": "python",
     "upstream_path": "/slow"},
    {"path": "/slow/node", "methods": ["GET", "HEAD"], "backend": "node",
     "upstream_path": "/slow"},
    {"path": "/limited", "methods": ["GET"], "kind": LOCAL_OK},
)

# MCP servers (#29): /mcp/{server}, answered by the MCP stage (function_app/mcp/stage.py) from
# MCP_SERVERS; always present after the configured routes.
MCP = "mcp"
ROUTE_KINDS = frozenset({PROXY, LOCAL_OK, MCP}) | MODEL_KINDS  # every kind a route can have
MCP_ROUTES: tuple[dict, ...] = (
    {"path": "/mcp/*", "methods": ["GET", "POST", "DELETE"], "kind": MCP},
)

# Where an OpenAI route forwards, unless it says otherwise: the endpoint's standard path.
OPENAI_UPSTREAM = {OPENAI_CHAT: "/v1/chat/completions", OPENAI_COMPLETIONS: "/v1/completions",
                   OPENAI_EMBEDDINGS: "/v1/embeddings", OPENAI_MODELS: "/v1/models",
                   OPENAI_RESPONSES: "/v1/responses", OPENAI_STORED: "/v1/responses",
                   ANTHROPIC_MESSAGES: "/v1/messages",
                   ANTHROPIC_COUNT: "/v1/messages/count_tokens"}

EMPTY_PLAN = Plan(())
MAX_TIMEOUT_S = 225.0  # under the platform's 230 s, leaving time to write the error

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


@dataclass(frozen=True)
class Route:
    path: str
    methods: frozenset[str]
    backend: str
    upstream_path: str
    timeout_s: float
    json_body: bool
    kind: str = PROXY
    plan: Plan = EMPTY_PLAN  # proxy routes: the pool, then the fallbacks

    @property
    def members(self) -> tuple[Member, ...]:
        return self.plan.targets[0].members if self.plan.targets else ()

    @cached_property  # read several times a request; the path never changes
    def is_prefix(self) -> bool:
        return self.path.endswith("/*")

    def upstream_for(self, path: str) -> str:
        if not self.is_prefix:
            return self.upstream_path
        rest = path[len(self.path) - 2:]
        return self.upstream_path.rstrip("/") + rest

    def matches(self, path: str) -> bool:
        if self.is_prefix:
            prefix = self.path[:-2]
            return path == prefix or path.startswith(prefix + "/")
        return path == self.path


@dataclass(frozen=True)
class Match:
    route: Route
    upstream_path: str


MATCH: Fact[Match] = Fact("match")  # the route and the path to forward (routing stage)


# Paths served by functions of their own; reaching the table with another method is a 405.
RESERVED: dict[str, list[str]] = {"/healthz": ["GET"], "/_gateway/stats": ["GET"],
                                  "/cachez": ["GET"]}


class RouteTable:
    def __init__(self, routes: Sequence[Route]):
        self.routes = tuple(routes)
        # A (path, method)'s Match, found once: the routes are a tuple of frozen routes and a
        # Match is frozen, so one can be shared. Bounded like the header names (paths come
        # from clients): once full, a new pair is matched per use, never stored. A miss that
        # raises (404, 405) stores nothing. An exact dict, probed with `in` (see NameTable).
        self._found: dict[tuple[str, str], Match] = {}

    def match(self, path: str, method: str) -> Match:
        """The first route for `path` that accepts `method`; NotFound or MethodNotAllowed.
        Matches of short paths are kept (bounded); a long path, the client's to choose, is
        matched per request so it never takes a place in the table."""
        if len(path) > NAME_CACHED_LEN:
            return self._first(path, method)
        found, key = self._found, (path, method)
        if key in found:
            return found[key]
        return learned(found, key, self._first(path, method))

    def _first(self, path: str, method: str) -> Match:
        if path in RESERVED:
            raise MethodNotAllowed(RESERVED[path])
        allowed: set[str] = set()
        for route in self.routes:
            if not route.matches(path):
                continue
            if method in route.methods:
                return Match(route, route.upstream_for(path))
            allowed |= route.methods
        if allowed:
            raise MethodNotAllowed(sorted(allowed))
        raise NotFound()


def parse_routes(
    raw: Sequence[Mapping] | None, backends: Mapping[str, str], default_timeout_s: float
) -> RouteTable:
    """Validate route entries against the known backends; ValueError names the bad entry."""
    entries = (*(raw or SEED_ROUTES), *OPENAI_ROUTES, *DEMO_ROUTES, *MCP_ROUTES)
    return RouteTable(
        [_parse_one(i, e, backends, default_timeout_s) for i, e in enumerate(entries)])


def _parse_one(index: int, entry: Mapping, backends: Mapping[str, str], default: float) -> Route:
    where = f"route {index}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected an object")
    path = entry.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{where}: 'path' must start with '/'")
    if path in RESERVED:
        raise ValueError(f"{where}: {path} is served by the gateway itself")
    methods = entry.get("methods", ["POST"])
    if not methods or not {str(m).upper() for m in methods} <= _METHODS:
        raise ValueError(f"{where}: 'methods' must be a non-empty subset of {sorted(_METHODS)}")
    kind = entry.get("kind", PROXY)
    if kind != PROXY and kind not in MODEL_KINDS and kind not in (LOCAL_OK, MCP):
        raise ValueError(f"{where}: 'kind' must be {PROXY!r} or one of {sorted(MODEL_KINDS)}")
    backend = entry.get("backend", "" if kind in MODEL_KINDS else None)
    if kind != PROXY and (backend or "backends" in entry):
        raise ValueError(f"{where}: an OpenAI route takes its backend from the model table")
    timeout = float(entry.get("timeout_s", default))
    if not 0 < timeout <= MAX_TIMEOUT_S:
        raise ValueError(f"{where}: 'timeout_s' must be in (0, {MAX_TIMEOUT_S}]")
    upstream_path = entry.get("upstream_path", OPENAI_UPSTREAM.get(kind, path.removesuffix("/*")))
    if not isinstance(upstream_path, str) or not upstream_path.startswith("/"):
        raise ValueError(f"{where}: 'upstream_path' must start with '/'")
    plan = _plan(where, entry, backends, timeout) if kind == PROXY else Plan(())
    backend = plan.targets[0].members[0].name if kind == PROXY else backend
    return Route(path, frozenset(str(m).upper() for m in methods), backend, upstream_path,
                 timeout, bool(entry.get("json_body", False)), kind, plan)


def _plan(where: str, entry: Mapping, backends: Mapping[str, str], timeout: float) -> Plan:
    def resolve(name: str) -> tuple[str, str]:
        if name not in backends:
            raise ValueError(f"{where}: unknown backend {name!r} (known: {sorted(backends)})")
        return name, backends[name]

    pool = entry.get("backends", entry.get("backend"))
    primary = Target(parse_pool(pool, resolve, where), label="primary")
    fallbacks = entry.get("fallbacks", [])
    if not isinstance(fallbacks, list):
        raise ValueError(f"{where}: 'fallbacks' must be a list")
    targets = [primary]
    for index, raw in enumerate(fallbacks):
        spec = {"backend": raw} if isinstance(raw, str) else raw
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where}: fallback {index} must be a backend name or an object")
        path = spec.get("upstream_path")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ValueError(f"{where}: fallback {index}: 'upstream_path' must start with '/'")
        members = parse_pool(spec.get("backends", spec.get("backend")), resolve, where)
        targets.append(Target(members, path, None, parse_fallback_on(
            spec.get("fallback_on"), where), label=f"fallback{index + 1}"))
    attempt = entry.get("attempt_timeout_s")
    if attempt is not None and not 0 < float(attempt) <= timeout:
        raise ValueError(f"{where}: 'attempt_timeout_s' must be in (0, timeout_s]")
    return Plan(tuple(targets), bool(entry.get("idempotent", False)),
                float(attempt) if attempt is not None else None)
