"""The host's route table: ASP.NET route templates from the worker's raw bindings (pure).

Templates follow ASP.NET Core routing: `/`-separated segments of literals and parameters
`{name}`, `{name?}` (optional, last), `{name=default}`, `{name:constraint(...)}` (several may
chain), and a final catch-all `{*name}` or `{**name}`. Literals match case-insensitively. As
ASP.NET orders candidates, a literal segment beats a constrained parameter, which beats a plain
one, which beats a catch-all (segment by segment, then by template text); among the routes whose
path matches, the first that allows the method wins, so `POST /healthz` can fall through to a
catch-all that takes POST. host.json's `extensions.http.routePrefix` goes in front of each.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

PARAM = re.compile(
    r"\{(\*{1,2})?([A-Za-z_]\w*)((?::[^{}=?]+(?:\([^)]*\))?)*)(\?)?(?:=([^}]*))?\}")
CONSTRAINTS = {
    "int": r"-?\d+", "long": r"-?\d+", "bool": r"(?i:true|false)", "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
    "decimal": r"-?\d+(?:\.\d+)?", "double": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "float": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", "datetime": r"[\d\-:.TZ ]+",
}
RANK_LITERAL, RANK_MIXED, RANK_CONSTRAINED, RANK_PARAM, RANK_CATCH_ALL = 1, 2, 3, 4, 5


class TemplateError(ValueError):
    """A route template this host cannot read."""


@dataclass(frozen=True)
class HttpFunction:
    """One HTTP-triggered function as the worker reported it."""

    name: str
    function_id: str
    route: str
    methods: tuple[str, ...]  # upper case; empty means every method
    auth_level: str           # anonymous, function or admin
    trigger_param: str        # the handler's parameter bound to the request


@dataclass(frozen=True)
class Route:
    function: HttpFunction
    template: str
    pattern: re.Pattern = field(compare=False)
    checks: tuple[tuple[str, str], ...] = field(compare=False)  # (param, numeric constraint)
    precedence: tuple[int, ...] = ()

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        values = {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
        for name, check in self.checks:
            if name in values and not _passes(values[name], check):
                return None
        return values


def _passes(value: str, check: str) -> bool:
    kind, _, arg = check.partition("(")
    args = [a.strip() for a in arg.rstrip(")").split(",") if a.strip()]
    try:
        if kind in ("minlength", "maxlength", "length"):
            size = len(value)
            bounds = [int(a) for a in args]
            return {"minlength": size >= bounds[0], "maxlength": size <= bounds[0],
                    "length": (bounds[0] <= size <= bounds[-1]) if len(bounds) == 2
                    else size == bounds[0]}[kind]
        number = float(value)
        bounds = [float(a) for a in args]
        return {"min": number >= bounds[0], "max": number <= bounds[0],
                "range": bounds[0] <= number <= bounds[1]}[kind]
    except (ValueError, IndexError, KeyError):
        return False


def compile_template(template: str, prefix: str = "") -> tuple[re.Pattern, tuple, tuple]:
    """A template as a full-match regex over the request path, its value checks and its rank."""
    full = "/".join(p for p in (prefix.strip("/"), template.strip("/")) if p)
    segments = full.split("/") if full else []
    regex, checks, ranks = "", [], []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        part, rank = _segment(segment, last, checks)
        regex += part
        ranks.append(rank)
    return re.compile(regex or "/?", re.IGNORECASE), tuple(checks), tuple(ranks)


def _segment(segment: str, last: bool, checks: list) -> tuple[str, int]:
    params = list(PARAM.finditer(segment))
    if not params:
        if "{" in segment or "}" in segment:
            raise TemplateError(f"cannot read route segment {segment!r}")
        return "/" + re.escape(segment), RANK_LITERAL
    alone = len(params) == 1 and params[0].group(0) == segment
    out, pos, rank = "", 0, RANK_PARAM if alone else RANK_MIXED
    for found in params:
        out += re.escape(segment[pos:found.start()])
        star, name, constraint_text, optional, default = found.groups()
        if star:
            if not (last and alone):
                raise TemplateError("a catch-all parameter must be the whole last segment")
            return f"(?:/(?P<{name}>.*))?", RANK_CATCH_ALL
        value = "[^/]+"
        for constraint in (c for c in constraint_text.split(":") if c):
            kind = constraint.split("(", 1)[0]
            if kind in CONSTRAINTS:
                value = CONSTRAINTS[kind]
            elif kind == "regex":
                value = constraint[len("regex("):-1]
            else:
                checks.append((name, constraint))
            rank = RANK_CONSTRAINED if alone else rank
        group = f"(?P<{name}>{value})"
        skippable = bool(optional) or default is not None
        out += f"(?:{group})?" if skippable and not alone else group
        pos = found.end()
        if alone and skippable:
            return f"(?:/{out})?", rank
    return "/" + out + re.escape(segment[pos:]), rank


def build_table(functions: list[HttpFunction], prefix: str) -> list[Route]:
    """The routes in the order they are tried."""
    routes = []
    for function in functions:
        pattern, checks, ranks = compile_template(function.route, prefix)
        routes.append(Route(function, function.route, pattern, checks, ranks))
    return sorted(routes, key=lambda r: (r.precedence, r.template.lower()))


@dataclass(frozen=True)
class Matched:
    route: Route | None
    params: dict[str, str]
    allowed: tuple[str, ...]  # methods of routes whose path matched (for 405's Allow)


def match(table: list[Route], method: str, path: str) -> Matched:
    """The first route whose template matches `path` and that allows `method`."""
    allowed: list[str] = []
    for route in table:
        params = route.match(path)
        if params is None:
            continue
        methods = route.function.methods
        if not methods or method in methods:
            return Matched(route, params, ())
        allowed += [m for m in methods if m not in allowed]
    return Matched(None, {}, tuple(allowed))


def http_function(metadata: dict) -> HttpFunction | None:
    """The HTTP trigger of one function's metadata (raw_bindings are JSON strings), if any."""
    for raw in metadata.get("raw_bindings", []):
        binding = json.loads(raw) if isinstance(raw, str) else raw
        if binding.get("type") != "httpTrigger":
            continue
        methods = tuple(str(m).upper() for m in binding.get("methods") or ())
        return HttpFunction(
            name=metadata["name"], function_id=metadata["function_id"],
            route=binding.get("route") or metadata["name"], methods=methods,
            auth_level=str(binding.get("authLevel", "function")).lower(),
            trigger_param=binding.get("name", "req"))
    return None
