"""Every setting the gateway reads: one field of `Settings` each, with its spec beside it.

A spec (`setting(...)`) holds the setting's name, its one default, its parser and its help; `SPECS`
lists them in field order. `load_settings` (load.py) reads exactly these names from an injected
mapping (never `os.environ` directly), and the parity test checks the same names against
`local.settings.sample.json` and the Bicep app settings. The fields after the specs are the typed
values parsed from several settings at once (backends, route and model tables, and the configs
of the limiter, the breakers and the cache).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from function_app.ratelimit.scopes import LimitDefaults

from ..core.identity import parse_networks
from ..core.values import header_name, http_url
from ..routing.model_routes import ModelTable
from ..routing.routes import RouteTable
from ..tenants.prices import price_table
from .parsers import (
    boolean,
    cache_route_modes,
    choice,
    connection_string,
    container_name,
    float_range,
    int_range,
    json_of,
    mcp_session_key,
    name_list,
    optional_http_url,
    redis_url,
    scope_names,
    table_name,
    text,
    timer_schedule,
)

if TYPE_CHECKING:  # annotations only: load.py builds these configs
    from function_app.ratelimit.config import LimiterConfig

    from ..cache.config import CacheConfig
    from ..routing.breaker import BreakerConfig


@dataclass(frozen=True)
class Spec:
    name: str
    attr: str
    default: str
    parse: Callable[[str], Any]
    help: str


def guardrail_policies(value: str) -> tuple:
    """GUARDRAILS: empty is no policy; a value is parsed (and a bad one named) by
    guardrails/policy.py, imported only then: its PII patterns compile when it loads, and
    without guardrails no request needs them (the cold start does not pay for them)."""
    if not value:
        return ()
    from ..guardrails.policy import guardrail_policies as parse

    return parse(value)


def setting(name: str, default: str, parse: Callable[[str], Any], help: str, *,
            secret: bool = False) -> Any:
    """A `Settings` field read from the app setting `name` (`default` when unset or blank);
    a secret stays out of the repr."""
    return field(repr=not secret, hash=False,
                 metadata={"spec": Spec(name, "", default, parse, help)})


@dataclass(frozen=True)
class Settings:
    port: int = setting("PORT", "7071", int_range(1, 65535),
        "Port of the local host (funchost).")
    service_name: str = setting("SERVICE_NAME", "ai-gateway", text,
        "Name reported by /healthz.")
    py_service_url: str = setting("PY_SERVICE_URL", "http://127.0.0.1:8001", http_url,
        "Base URL of the Python backend (backend name 'python').")
    node_service_url: str = setting("NODE_SERVICE_URL", "http://127.0.0.1:8002", http_url,
        "Base URL of the Node backend (backend name 'node').")
    extra_backends: Mapping[str, Any] = setting("GATEWAY_BACKENDS", "", json_of(dict),
        'More backends as JSON {"name": "http://host:port"}; merged over python/node. A value '
        'may be an object {"url", "api": "openai"|"azure", "auth": "none"|"key"|"entra", '
        '"api_version", "deployment", "scope", "key_setting"} (docs/AZURE_OPENAI.md).')
    routes: Sequence[Any] = setting("GATEWAY_ROUTES", "", json_of(list),
        "Route table as a JSON list; empty means the seed's /infer/python and /infer/node.")
    connect_timeout_s: float = setting("UPSTREAM_CONNECT_TIMEOUT_S", "2", float_range(0.05, 60),
        "Seconds to open a connection to a backend (502 after that).")
    upstream_timeout_s: float = setting("UPSTREAM_TIMEOUT_S", "120", float_range(0.1, 225),
        "Default total seconds for one upstream exchange, below the platform's 230 s (504).")
    upstream_client: str = setting("UPSTREAM_CLIENT", "aiohttp",
        choice("aiohttp", "httpx", "aiohttp-direct"),
        "Backend client: httpx over aiohttp (default), httpx's own pool, or aiohttp-direct "
        "(aiohttp without httpx, cheaper per request).")
    upstream_max_connections: int = setting("UPSTREAM_MAX_CONNECTIONS", "512", int_range(1, 100000),
        "Connection pool size towards all backends.")
    max_body_bytes: int = setting("MAX_BODY_BYTES", "1048576", int_range(1, 100 * 1024 * 1024),
        "Largest request body accepted (413 above).")
    health_probe_timeout_s: float = setting("HEALTH_PROBE_TIMEOUT_S", "0.5", float_range(0.01, 10),
        "Timeout of each backend probe made by /healthz.")
    health_cache_s: float = setting("HEALTH_CACHE_S", "1", float_range(0, 60),
        "Seconds a /healthz probe result is reused.")
    rate_limit_enabled: bool = setting("RATE_LIMIT_ENABLED", "true", boolean,
        "Apply rate limits; false admits every request and uses no storage.")
    global_rps: float = setting("GLOBAL_RPS", "1000", float_range(0, 1e7),
        "Requests (cost units) per second for all clients together; 0 turns it off.")
    global_burst: float = setting("GLOBAL_BURST", "2000", float_range(0, 1e8),
        "Bucket size of the global limit: how much may pass at once after a quiet spell.")
    client_rps: float = setting("CLIENT_RPS", "500", float_range(0, 1e7),
        "Default requests per second per client id; 0 turns it off (overrides still apply).")
    client_burst: float = setting("CLIENT_BURST", "1000", float_range(0, 1e8),
        "Default bucket size per client id.")
    rate_limit_storage_connection: str = setting(
        "RATE_LIMIT_STORAGE_CONNECTION", "", connection_string,
        "Table Storage connection string for limiter state and overrides (Azurite: use "
        "TableEndpoint=http://127.0.0.1:<port>/devstoreaccount1, never localhost). Dedicated "
        "rather than AzureWebJobsStorage, which is identity-based in Azure and a fixed port "
        "locally. Empty: TABLE_STORAGE_ENDPOINT is used.", secret=True)
    table_storage_endpoint: str = setting("TABLE_STORAGE_ENDPOINT", "", optional_http_url,
        "https://<account>.table.core.windows.net, used with DefaultAzureCredential when "
        "RATE_LIMIT_STORAGE_CONNECTION is empty. Both empty: in-memory limits (one instance).")
    rate_limit_shadow_scopes: frozenset[str] = setting("RATE_LIMIT_SHADOW_SCOPES", "", scope_names,
        "Comma-separated default limits (global, client) that only report: headers and "
        "counters as if enforced, no 429. Overrides carry their own shadow flag.")
    rate_limit_table: str = setting("RATE_LIMIT_TABLE", "ratelimits", table_name,
        "Table holding the shared token buckets.")
    limit_overrides_table: str = setting("LIMIT_OVERRIDES_TABLE", "limitoverrides", table_name,
        "Table of per-client and per-route limit overrides (PartitionKey client or route).")
    client_id_source: str = setting(
        "CLIENT_ID_SOURCE", "address", choice("address", "api-key", "principal"),
        "What names a client for per-client limits: the address (through TRUSTED_PROXIES), an "
        "API key header (hashed), or the Easy Auth principal; the address when it is absent.")
    client_id_header: str = setting("CLIENT_ID_HEADER", "x-api-key", header_name,
        "Header carrying the API key when CLIENT_ID_SOURCE=api-key.")
    trusted_proxies: tuple = setting("TRUSTED_PROXIES", "", parse_networks,
        "Addresses or CIDR blocks whose X-Forwarded-For/-Host/-Proto are believed; the client "
        "is the first untrusted hop from the right. Empty (the default): only the connection's "
        "peer counts. In Azure the Functions host reaches the worker over loopback and sets "
        "(replaces) X-Forwarded-For itself, so the Bicep sets 127.0.0.1/32,::1/128 there; see "
        "README, Security.")
    rate_limit_storage_timeout_s: float = setting(
        "RATE_LIMIT_STORAGE_TIMEOUT_S", "0.5", float_range(0.01, 10),
        "Deadline of one limiter storage call; a slower call counts as storage unavailable.")
    rate_limit_failure_mode: str = setting(
        "RATE_LIMIT_FAILURE_MODE", "open", choice("open", "closed"),
        "When storage is unavailable and leased tokens run out: open admits up to a local safe "
        "capacity (limit / RATE_LIMIT_EXPECTED_INSTANCES), closed denies with 503.")
    rate_limit_expected_instances: int = setting(
        "RATE_LIMIT_EXPECTED_INSTANCES", "4", int_range(1, 1000),
        "Instances assumed while storage is unavailable: each admits rate / this locally.")
    rate_limit_sync: str = setting(
        "RATE_LIMIT_SYNC", "lease", choice("lease", "tally"),
        "How instances share a limit: lease (blocks of tokens leased from one row per key; "
        "exact for small limits, storage cost per request grows with instances on a key) or "
        "tally (each instance publishes its demand once per period and enforces its share "
        "locally; two storage calls per instance per period whatever the instances and keys).")
    rate_limit_tally_period_s: float = setting(
        "RATE_LIMIT_TALLY_PERIOD_S", "3", float_range(0.2, 60),
        "Tally mode: seconds between an instance's storage syncs (two calls each); shares "
        "follow demand about one to two periods late, and P is in the overshoot bound.")
    rate_limit_lease_s: float = setting("RATE_LIMIT_LEASE_S", "0.25", float_range(0.01, 10),
        "Seconds of rate a lease's fair share is made of (S = rate x this, shared among the "
        "instances holding leases); part of the overshoot bound in docs/RATELIMITS.md.")
    rate_limit_lease_ttl_s: float = setting("RATE_LIMIT_LEASE_TTL_S", "4", float_range(0.1, 60),
        "Leased tokens not renewed within this many seconds expire; a lease holds what the "
        "instance's rate spends in three quarters of this (up to a block), so longer means "
        "fewer storage writes per request and more tokens idle in pools.")
    rate_limit_exact_below_rps: float = setting(
        "RATE_LIMIT_EXACT_BELOW_RPS", "1", float_range(0, 1e6),
        "Keys limited to at most this rate lease exactly one request per storage write "
        "(exact, no overshoot, one round trip per request).")
    rate_limit_global_shards: int = setting("RATE_LIMIT_GLOBAL_SHARDS", "1", int_range(1, 64),
        "Rows the global bucket is split over (rate / n each, a partition each) to spread write "
        "contention: about one per 32 instances of the app's maximum instance count.")
    rate_limit_conflict_retries: int = setting("RATE_LIMIT_CONFLICT_RETRIES", "3", int_range(0, 20),
        "Retries after an ETag conflict (412) in one lease, with a back-off of about one write "
        "round trip doubling each time; a request leases once more after that, then is denied "
        "with a short Retry-After.")
    rate_limit_overrides_refresh_s: float = setting(
        "RATE_LIMIT_OVERRIDES_REFRESH_S", "30", float_range(1, 3600),
        "Seconds between reloads of the limitoverrides table (changes apply without redeploy).")
    rate_limit_sweep_interval_s: float = setting(
        "RATE_LIMIT_SWEEP_INTERVAL_S", "300", float_range(10, 86400),
        "About how often one instance (holder of the sweep lease) deletes idle limiter rows.")
    rate_limit_sweep_idle_s: float = setting(
        "RATE_LIMIT_SWEEP_IDLE_S", "600", float_range(60, 2592000),
        "A limiter row that is full, lease-free and untouched this long is deleted.")
    model_routes: Mapping[str, Any] = setting("MODEL_ROUTES", "", json_of(dict),
        'OpenAI routes: JSON {"model": "backend name or base URL"}, e.g. {"llama3": '
        '"http://127.0.0.1:11434/v1"}. Empty: sim-python and sim-small to the python backend, '
        "sim-node to the node backend.")
    default_model_backend: str = setting("DEFAULT_MODEL_BACKEND", "", text,
        "Backend name or base URL for a model in no route; empty answers such a model 404.")
    model_api_keys: Mapping[str, Any] = setting("MODEL_API_KEYS", "", json_of(dict),
        'JSON {"model, backend name or base URL": "key"}: sent upstream as Authorization: '
        "Bearer <key> in place of the client's own. A secret: in Azure use a Key Vault "
        "reference.", secret=True)
    client_tpm: float = setting("CLIENT_TPM", "200000", float_range(0, 1e10),
        "Tokens per minute per client id on the OpenAI routes (estimate reserved, then "
        "reconciled with the usage reported); 0 turns it off.")
    model_tpm: float = setting("MODEL_TPM", "1000000", float_range(0, 1e10),
        "Tokens per minute per model, all clients together; 0 turns it off.")
    default_max_tokens: int = setting("DEFAULT_MAX_TOKENS", "1024", int_range(1, 10_000_000),
        "max_tokens sent upstream when a completion request sets neither max_tokens nor "
        "max_completion_tokens (it bounds the reservation).")
    sse_max_event_bytes: int = setting("SSE_MAX_EVENT_BYTES", "1048576",
        int_range(1024, 1 << 30),
        "Largest server-sent event a backend may stream on the OpenAI routes (bytes up to its "
        "blank line); past it the stream ends with an OpenAI error event "
        "(upstream_event_too_large). Bounds what one stream holds in memory.")
    # Hostile input (issue 14).
    storage_sdk_log_level: str = setting(
        "STORAGE_SDK_LOG_LEVEL", "WARNING", choice("DEBUG", "INFO", "WARNING", "ERROR"),
        "Level of the Azure SDK's own loggers (azure.*): at INFO they log every storage call "
        "with its headers.")
    # Resilient routing (function_app/routing/): retries, budget, breakers, health checks.
    retry_max_attempts: int = setting("RETRY_MAX_ATTEMPTS", "2", int_range(1, 10),
        "Attempts per target (pool) of a request, the first included, before its fallback.")
    retry_budget_ratio: float = setting("RETRY_BUDGET_RATIO", "0.2", float_range(0, 1),
        "Retries may add at most this share of a route's requests over the window ...")
    retry_budget_min_per_s: float = setting("RETRY_BUDGET_MIN_PER_S", "3", float_range(0, 10000),
        "... plus this many retries per second (a floor for quiet routes).")
    retry_budget_window_s: float = setting("RETRY_BUDGET_WINDOW_S", "10", float_range(1, 600),
        "Sliding window of the retry budget, in seconds.")
    breaker_failures: int = setting("BREAKER_FAILURES", "5", int_range(1, 10000),
        "Consecutive failures (no answer, or a 5xx) of a backend that open its breaker.")
    breaker_failure_rate: float = setting("BREAKER_FAILURE_RATE", "0.5", float_range(0.01, 1),
        "A failure share over BREAKER_WINDOW_S that opens the breaker too ...")
    breaker_min_requests: int = setting("BREAKER_MIN_REQUESTS", "20", int_range(1, 100000),
        "... once the window holds at least this many results.")
    breaker_window_s: float = setting("BREAKER_WINDOW_S", "10", float_range(1, 600),
        "Window of the breaker's failure rate, in seconds.")
    breaker_open_s: float = setting("BREAKER_OPEN_S", "2", float_range(0.1, 600),
        "Seconds a breaker stays open before one probe request (half-open) may test it.")
    breaker_cache_s: float = setting("BREAKER_CACHE_S", "0.5", float_range(0.05, 60),
        "How often each instance re-reads the shared breaker rows and health probes.")
    routing_table: str = setting("ROUTING_TABLE", "routing", table_name,
        "Table of breaker rows, health probe results and the health-check lease (same "
        "storage as the limiter).")
    health_check_lease_s: float = setting("HEALTH_CHECK_LEASE_S", "25", float_range(1, 3600),
        "The instance that ran the health-check timer keeps the lease this long; another "
        "instance's timer takes over only after it lapses.")
    health_check_schedule: str = setting("HEALTH_CHECK_SCHEDULE", "*/10 * * * * *", timer_schedule,
        "When the health-check timer fires (NCRONTAB, seconds first); the Functions host reads "
        "it as %HEALTH_CHECK_SCHEDULE% in the timer's binding.")
    # --- response cache (function_app/cache/) ---
    cache_enabled: bool = setting("CACHE_ENABLED", "true", boolean,
        "Cache GET answers of proxied routes (and completions where opted in).")
    cache_backend: str = setting("CACHE_BACKEND", "memory", choice("memory", "redis", "blob"),
        "Tier shared by instances behind the per-instance memory LRU: memory (none), redis "
        "or blob (the app's storage account).")
    cache_ttl_seconds: int = setting("CACHE_TTL_SECONDS", "30", int_range(1, 86400),
        "Freshness of a stored answer that states none itself (max-age / s-maxage win).")
    cache_routes: Mapping[str, Any] = setting("CACHE_ROUTES", "", cache_route_modes,
        'JSON {"route path": "off" | "shared" | "per-client"}; GET routes not listed are '
        "cached shared. per-client keys entries by client id and admits credentialed requests.")
    cache_memory_bytes: int = setting("CACHE_MEMORY_BYTES", "67108864", int_range(1024, 2**40),
        "Byte budget of the per-instance memory tier (LRU); never exceeded.")
    cache_max_entry_bytes: int = setting("CACHE_MAX_ENTRY_BYTES", "1048576", int_range(1, 2**31),
        "Largest body stored; larger answers stream through uncached.")
    cache_shared_timeout_s: float = setting(
        "CACHE_SHARED_TIMEOUT_S", "0.25", float_range(0.005, 10),
        "Deadline of one shared-tier call; slower or failed calls are counted and bypassed.")
    cache_redis_url: str = setting("CACHE_REDIS_URL", "", redis_url,
        "redis://host:port/db locally; rediss://<name>.<region>.redis.azure.net:10000 for "
        "Azure Managed Redis (with CACHE_REDIS_ENTRA=true).", secret=True)
    cache_redis_entra: bool = setting("CACHE_REDIS_ENTRA", "false", boolean,
        "Authenticate to redis with an Entra ID token of the managed identity (azure-identity).")
    cache_blob_connection: str = setting("CACHE_BLOB_CONNECTION", "", connection_string,
        "Blob connection string for CACHE_BACKEND=blob locally (Azurite: BlobEndpoint="
        "http://127.0.0.1:<port>/devstoreaccount1). Empty: CACHE_BLOB_ENDPOINT is used.",
        secret=True)
    cache_blob_endpoint: str = setting("CACHE_BLOB_ENDPOINT", "", optional_http_url,
        "https://<account>.blob.core.windows.net, used with the managed identity.")
    cache_blob_container: str = setting("CACHE_BLOB_CONTAINER", "gatewaycache", container_name,
        "Blob container holding shared cache entries (expired ones are swept).")
    cache_completions: frozenset[str] = setting("CACHE_COMPLETIONS", "", name_list,
        "Comma-separated models and/or OpenAI route paths (/v1/embeddings) whose answers are "
        "cached; * for all. Others are cached only on x-gateway-cache: use.")
    cache_completions_shared: bool = setting("CACHE_COMPLETIONS_SHARED", "false", boolean,
        "Share cached completions between clients; false partitions them by client id.")
    cache_hit_charges_tokens: bool = setting("CACHE_HIT_CHARGES_TOKENS", "false", boolean,
        "Charge a cached completion's completion tokens against token limits (false: only "
        "its prompt tokens).")
    # Telemetry (#13): traces, metrics, request logs; exporters chosen by the last three.
    telemetry_enabled: bool = setting("TELEMETRY_ENABLED", "true", boolean,
        "Traces, Prometheus metrics and the JSON request log; false removes the stage.")
    telemetry_trace_sample_ratio: float = setting(
        "TELEMETRY_TRACE_SAMPLE_RATIO", "0.1", float_range(0, 1),
        "Share of new traces recorded (parent-based: a caller's sampled "
        "flag is followed).")
    telemetry_request_log: bool = setting("TELEMETRY_REQUEST_LOG", "true", boolean,
        "One JSON line per request on the logger gateway.requests.")
    telemetry_client_labels: int = setting("TELEMETRY_CLIENT_LABELS", "200", int_range(0, 100000),
        "Distinct hashed client labels kept in metrics; later clients count as _other.")
    telemetry_client_hash_key: str = setting("TELEMETRY_CLIENT_HASH_KEY", "", text,
        "Key of the client id hash in metrics and logs (so addresses cannot be guessed back).",
        secret=True)
    otlp_endpoint: str = setting("OTEL_EXPORTER_OTLP_ENDPOINT", "", optional_http_url,
        "OTLP/HTTP collector base URL (traces and metrics); empty: no OTLP export.")
    appinsights_connection_string: str = setting("APPLICATIONINSIGHTS_CONNECTION_STRING", "", text,
        "Application Insights target; set: traces and metrics go there (Azure Monitor).",
        secret=True)
    appinsights_authentication_string: str = setting(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "", text,
        "Authorization=AAD;ClientId=<id>: export with that managed identity (Entra ID).")
    # Tenants and gateway API keys (issue #16).
    gateway_auth: str = setting("GATEWAY_AUTH", "none", choice("none", "optional", "required"),
        "Gateway API keys: none (ignored), optional (a key's tenant is the client when a key "
        "is sent), required (401 without a valid key).")
    gateway_keys_table: str = setting("GATEWAY_KEYS_TABLE", "gatewaykeys", table_name,
        "Table of API key hashes, tenants and usage (same storage as the limiter).")
    gateway_key_cache_ttl_s: float = setting("GATEWAY_KEY_CACHE_TTL_S", "4", float_range(0.1, 4),
        "Seconds a key record is used from memory; a revocation holds everywhere within it.")
    gateway_key_lookups_per_s: float = setting(
        "GATEWAY_KEY_LOOKUPS_PER_S", "50", float_range(1, 1e5),
        "Storage reads per second per instance for keys not in the cache (503 beyond), so "
        "a flood of made-up keys cannot flood storage.")
    gateway_usage_flush_s: float = setting("GATEWAY_USAGE_FLUSH_S", "60", float_range(1, 3600),
        "Seconds between writes of one key's usage and last use from one instance.")
    model_prices: Mapping[str, Any] = setting("MODEL_PRICES", "", price_table,
        'Spend per model: JSON {"model": price per million tokens}; empty: no spend.')
    # MCP servers behind /mcp/{server} (issue #29; docs/MCP.md).
    mcp_servers: Mapping[str, Any] = setting("MCP_SERVERS", "", json_of(dict),
        'MCP servers: JSON {"name": "http://host:port/mcp"} or {"name": {"url", "auth": '
        '"none|key|entra", "key_setting", "header", "scope", "tool_limits": {"tool or *": '
        '{"rps", "burst"}}}}; reached at /mcp/{name}.')
    mcp_session_key: bytes | None = setting("MCP_SESSION_KEY", "", mcp_session_key,
        "At least 32 random bytes, base64: seals the MCP session ids clients hold, so any "
        "instance can carry a session on. The same on every instance; empty: a random key per "
        "process (sessions then stay on one instance). In Azure: a Key Vault reference (the "
        "Bicep makes one).", secret=True)
    mcp_session_ttl_s: float = setting("MCP_SESSION_TTL_S", "86400", float_range(60, 2592000),
        "Seconds an MCP session id stays valid after initialize; then 404 (start a new one).")
    mcp_max_message_bytes: int = setting("MCP_MAX_MESSAGE_BYTES", "1048576",
        int_range(1024, 104857600), "Largest JSON-RPC message a client may POST to an MCP route.")
    mcp_max_event_bytes: int = setting("MCP_MAX_EVENT_BYTES", "4194304",
        int_range(1024, 67108864),
        "Largest JSON answer or single SSE event taken from an MCP server; a larger one ends "
        "the stream with a JSON-RPC error.")
    mcp_stream_timeout_s: float = setting("MCP_STREAM_TIMEOUT_S", "220", float_range(1, 225),
        "Longest one MCP exchange or stream may last (under the platform's 230 s); a client "
        "resumes a cut stream with Last-Event-ID.")
    responses_id_secret: str = setting("RESPONSES_ID_SECRET", "", text,
        "Key of the MAC in stored-response ids (docs/APIS.md); the same on every instance. "
        "Empty: ids still route back to their backend but can be forged.", secret=True)
    # Guardrails (issue #28): Content Safety, Prompt Shields, PII (function_app/guardrails/).
    content_safety_endpoint: str = setting("CONTENT_SAFETY_ENDPOINT", "", optional_http_url,
        "Azure AI Content Safety resource endpoint (https://<name>.cognitiveservices.azure.com); "
        "the gateway calls {endpoint}/contentsafety/text:analyze and text:shieldPrompt with "
        "api-version 2024-09-01. Empty: only the offline PII checks can run.")
    content_safety_auth: str = setting("CONTENT_SAFETY_AUTH", "entra", choice("entra", "key"),
        "entra: a token of the managed identity (azure-identity, scope "
        "https://cognitiveservices.azure.com/.default); key: CONTENT_SAFETY_KEY in the "
        "Ocp-Apim-Subscription-Key header.")
    content_safety_key: str = setting("CONTENT_SAFETY_KEY", "", text,
        "The resource key when CONTENT_SAFETY_AUTH=key; in Azure a Key Vault reference.",
        secret=True)
    content_safety_timeout_s: float = setting(
        "CONTENT_SAFETY_TIMEOUT_S", "2", float_range(0.05, 30),
        "Deadline of one Content Safety call; a slower one counts as unavailable (the "
        "policy's fail mode applies).")
    content_safety_rps: float = setting("CONTENT_SAFETY_RPS", "100", float_range(1, 100000),
        "Calls per second this instance may make to Content Safety (cache misses only, burst "
        "twice that); beyond, a check counts as unavailable.")
    guardrails: tuple = setting("GUARDRAILS", "", guardrail_policies,
        'JSON list of policies: {"name", "models", "routes", "input": {"prompt_shields" | '
        '"content_safety" | "pii": "block" | "redact" | "annotate"}, "output": {...}, '
        '"severity": 0-7, "window_chars", "fail": "open" | "closed"}; docs/GUARDRAILS.md.')
    # Parsed from several settings at once, by load_settings.
    backends: Mapping[str, str] = field(hash=False)  # python, node, then GATEWAY_BACKENDS
    route_table: RouteTable = field(hash=False, repr=False)
    model_table: ModelTable = field(hash=False, repr=False)
    limiter: LimiterConfig = field(hash=False)
    breaker: BreakerConfig = field(hash=False)
    cache: CacheConfig = field(hash=False)
    limit_defaults: LimitDefaults = field(hash=False)
    # GATEWAY_BACKENDS entries given as objects (routing/backends.py), by name.
    backend_specs: Mapping[str, Any] = field(hash=False, default_factory=dict)
    mcp_table: Mapping[str, Any] = field(hash=False, repr=False, default_factory=dict)


SPECS: tuple[Spec, ...] = tuple(
    replace(f.metadata["spec"], attr=f.name) for f in fields(Settings) if "spec" in f.metadata)

