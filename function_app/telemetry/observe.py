"""What the telemetry stage records when an answer is complete: metrics, span, request log.

`Telemetry` holds the instruments of one gateway and the bounded naming of routes, backends,
models and clients. It reads what earlier stages left in the request context: the route match,
the client id, the rate-limit decisions, the OpenAI stage's chosen backend and its token bill.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import NonRecordingSpan, Span, Status, StatusCode, Tracer

from ..core.redact import split_userinfo
from ..http.context import RequestContext
from ..http.messages import GatewayRequest
from ..mcp.stage import MCP_CALL
from ..openai.bill import BILL
from ..ratelimit.limits import REQUESTS_DECISION, TOKENS_DECISION
from ..routing.routes import MATCH, PROXY
from .ids import PLAIN_SPAN
from .labels import NONE, OTHER, BoundedNames, ClientLabels, FirstNames
from .metrics import GatewayMetrics
from .otel_metrics import OtelInstruments
from .request_log import RequestLog

REJECTED = (429, 503)
_MATCH, _BILL, _MCP_CALL = MATCH.name, BILL.name, MCP_CALL.name  # the facts finish reads
CACHE_VERDICTS = frozenset({"hit", "miss", "stale", "bypass"})


@dataclass
class Telemetry:
    tracer: Tracer
    metrics: GatewayMetrics
    clients: ClientLabels
    models: BoundedNames
    backend_urls: Mapping[str, str]  # base URL -> backend name
    log: RequestLog | None
    otel: OtelInstruments | None = None
    mcp_tools: FirstNames = field(default_factory=lambda: FirstNames(100))

    def __post_init__(self) -> None:
        self._client_hashes = self.clients.hashes  # the table ClientLabels.hashed fills

    def backend_of_url(self, url: str) -> str:
        for base, name in self.backend_urls.items():
            if url.startswith(base):
                return name
        return OTHER

    def finish(self, request: GatewayRequest, span: Span, status: int, started: float,
               first_chunk: float | None, error: str | None,
               trace_text: str | None = None) -> None:
        """Record one answered request; called exactly once, when its last byte is out.
        `trace_text`: the span's trace id in hex when the caller has it (request_span_and_
        observer's), else read from the span here."""
        ended = time.perf_counter()
        ctx = request.context
        facts = ctx.facts  # MATCH.get(ctx), BILL.get(ctx) without the calls
        match = facts[_MATCH] if _MATCH in facts else None
        route = match.route.path if match is not None else "unmatched"
        served_by = ctx.served_by
        backend = served_by if served_by and "://" not in served_by \
            else self._backend(ctx, match)
        client = ctx.client_id
        seconds = ended - started
        self.metrics.request_done(route, backend, status, seconds)
        limited_by = self._rejection(ctx, status) if status in REJECTED else None
        cache = self._cache(ctx) if ctx.cache_status is not None else None
        bill = facts[_BILL] if _BILL in facts else None
        if bill is not None:  # usage and ttft come with a bill only
            model, usage = self.models(bill.model), bill.usage
            ttft = first_chunk - started if first_chunk is not None else None
            self._genai(model, client, usage, ttft, ended - first_chunk if ttft else None)
            if bill.spend is not None and bill.done:
                self.metrics.spend.add(model, self.clients.label(client), bill.spend.key or "",
                                       bill.cost)
        else:
            model, usage, ttft = NONE, None, None
        if self.otel is not None:
            self.otel.request(model, usage, ttft)
        mcp = self._mcp(ctx, span) if _MCP_CALL in facts else None
        if type(span) is not NonRecordingSpan:  # it ignores what _end_span would tell it
            self._end_span(span, route, status, backend, model, bill, usage, limited_by, error,
                           ctx)
        log = self.log
        if log is not None:  # RequestRecord's fields in its order, without the dataclass
            optional = None if (bill is None and limited_by is None and cache is None
                                and error is None and mcp is None) \
                else _optional_fields(ttft, usage, limited_by, cache, error, mcp)
            if trace_text is None:  # trace_id(span), without the call
                trace, _, _, _, _, valid = span._context if type(span) is PLAIN_SPAN \
                    else span.get_span_context()
                trace_text = "%032x" % trace if valid else ""  # noqa: UP031
            hashes = self._client_hashes  # clients.hashed(client): a subscript once seen
            log.write_request(
                request.request_id, trace_text, request.method, route, backend, model, status,
                seconds, hashes[client] if client in hashes else self.clients.hashed(client),
                optional)

    def _mcp(self, ctx: RequestContext, span: Span) -> dict[str, str | None] | None:
        """An MCP request's counter and span attributes; the request log's fields."""
        call = MCP_CALL.get(ctx)
        if call is None:
            return None
        tool = NONE if call.tool is None else OTHER if call.outcome == "tool_not_allowed" \
            else self.mcp_tools(call.tool)  # a refused name is the client's: never a label
        self.metrics.child(self.metrics.mcp, call.server, call.method, tool, call.outcome).inc()
        if span.is_recording():
            span.set_attributes({"mcp.server": call.server, "mcp.method.name": call.method,
                                 "gen_ai.tool.name": tool, "mcp.outcome": call.outcome})
        return {"mcp_server": call.server, "mcp_method": call.method,
                "mcp_tool": call.tool[:128] if call.tool is not None else None,
                "mcp_outcome": call.outcome}

    def _backend(self, ctx: RequestContext, match) -> str:
        served_by = ctx.served_by
        if served_by:
            return self.backend_of_url(served_by) if "://" in served_by else served_by
        if match is not None and match.route.kind == PROXY:
            return match.route.backend or NONE
        return NONE

    def _cache(self, ctx: RequestContext) -> str | None:
        """A cache stage's verdict ("hit", "miss", ...) if it left one in the context."""
        verdict = ctx.cache_status
        if verdict is None:
            return None
        verdict = verdict if verdict in CACHE_VERDICTS else OTHER
        self.metrics.child(self.metrics.cache, verdict).inc()
        return verdict

    def _rejection(self, ctx: RequestContext, status: int) -> str | None:
        if status not in REJECTED:
            return None
        scope = "overloaded"
        for decision in (REQUESTS_DECISION.get(ctx), TOKENS_DECISION.get(ctx)):
            if decision is not None and not decision.allowed:
                scope = "storage" if decision.storage_unavailable else (decision.scope or NONE)
                break
        m = self.metrics
        m.child(m.rejections, str(status), scope).inc()
        return scope

    def _genai(self, model: str, client: str | None, usage, ttft: float | None,
               after_first: float | None) -> None:
        m = self.metrics
        if usage is not None:
            who = self.clients.label(client)
            counts = (("input", usage.prompt_tokens), ("output", usage.completion_tokens))
            for kind, count in counts:
                m.tokens.add(model, who, kind, count)
                m.child(m.token_usage, model, kind).observe(count)
        if ttft is not None:
            m.child(m.ttft, model).observe(ttft)
            if usage is not None and usage.completion_tokens > 1 and after_first is not None:
                m.child(m.tpot, model).observe(after_first / (usage.completion_tokens - 1))

    def _end_span(self, span: Span, route: str, status: int, backend: str, model: str, bill,
                  usage, limited_by: str | None, error: str | None, ctx: RequestContext) -> None:
        if not span.is_recording():
            return  # the API's non-recording span ignores the calls below
        span.update_name(f"{span.name} {route}")  # span.name is the method
        attributes: dict[str, Any] = {"http.route": route,
                                      "http.response.status_code": status,
                                      "gateway.backend": backend}
        if bill is not None:
            attributes.update({"gen_ai.request.model": model,
                               "gen_ai.operation.name": _operation(ctx)})
            if usage is not None:
                attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
                attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
        _limit_attributes(attributes, ctx)
        if limited_by is not None:
            span.add_event("gateway.rate_limited", {"gateway.ratelimit.scope": limited_by})
        span.set_attributes(attributes)
        if status >= 500 or error:
            span.set_attribute("error.type", error or str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()


def _optional_fields(ttft: float | None, usage, limited_by: str | None, cache: str | None,
                     error: str | None, mcp: dict | None) -> dict[str, Any]:
    """The request log's optional fields, in RequestRecord's order, those that are not None."""
    fields: dict[str, Any] = {}
    if ttft is not None:
        fields["ttft_ms"] = round(ttft * 1000, 2)
    if usage:
        for name, value in (("tokens_in", usage.prompt_tokens),
                            ("tokens_out", usage.completion_tokens)):
            if value is not None:
                fields[name] = value
    for name, value in (("limited_by", limited_by), ("cache", cache), ("stream_error", error)):
        if value is not None:
            fields[name] = value
    if mcp:
        fields.update((name, value) for name, value in mcp.items() if value is not None)
    return fields


def _operation(ctx: RequestContext) -> str:
    kind = MATCH.need(ctx).route.kind
    return {"openai.chat": "chat", "openai.completions": "text_completion",
            "openai.embeddings": "embeddings"}.get(kind, kind)


def _limit_attributes(attributes: dict[str, Any], ctx: RequestContext) -> None:
    for decision, prefix in ((REQUESTS_DECISION.get(ctx), "gateway.ratelimit"),
                             (TOKENS_DECISION.get(ctx), "gateway.token_limit")):
        if decision is not None:
            attributes[f"{prefix}.allowed"] = decision.allowed
            attributes[f"{prefix}.scope"] = decision.scope or NONE
            attributes[f"{prefix}.remaining"] = decision.remaining
            if decision.shadow_scope:
                attributes[f"{prefix}.shadow_scope"] = decision.shadow_scope


def backend_urls(backends: Mapping[str, str], extra: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Base URL -> backend name, longest URL first (so a prefix never shadows a longer one).
    Keyed by the URL as sent, without userinfo (target_request.upstream_url)."""
    urls = {split_userinfo(url)[0].rstrip("/"): name for name, url in backends.items()}
    urls.update((split_userinfo(url)[0].rstrip("/"), name) for url, name in extra)
    return dict(sorted(urls.items(), key=lambda item: -len(item[0])))
