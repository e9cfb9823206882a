"""Every setting the gateway reads, parsed once into a frozen object.

`SPECS` is the single list of settings: `load_settings` reads exactly these names from an injected
mapping (never `os.environ` directly), and the parity test checks the same names against
`local.settings.sample.json` and the Bicep app settings. A bad value raises `SettingsError` naming
the setting, which stops start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..tenants.prices import price_table
from .identity import parse_networks
from .model_routes import ModelTable, ModelTableError, parse_model_table
from .routes import parse_routes
from .setting_values import (
    boolean,
    cache_route_modes,
    choice,
    connection_string,
    container_name,
    float_range,
    header_name,
    http_url,
    int_range,
    json_of,
    name_list,
    optional_http_url,
    redis_url,
    scope_names,
    table_name,
    text,
    timer_schedule,
)

PLATFORM_TIMEOUT_S = 230.0
  # Azure's HTTP front end ends any request after 230 s.


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Spec:
    name: str
    attr: str
    default: str
    parse: Callable[[str], Any]
    help: str


SPECS: tuple[Spec, ...] = (
    Spec("PORT", "port", "7071", int_range(1, 65535), "Port of the local host (funchost)."),
    Spec("SERVICE_NAME", "service_name", "ai-gateway", text, "Name reported by /healthz."),
    Spec("PY_SERVICE_URL", "py_service_url", "http://127.0.0.1:8001", http_url,
         "Base URL of the Python backend (backend name 'python')."),
    Spec("NODE_SERVICE_URL", "node_service_url", "http://127.0.0.1:8002", http_url,
         "Base URL of the Node backend (backend name 'node')."),
    Spec("GATEWAY_BACKENDS", "extra_backends", "", json_of(dict),
         'More backends as JSON {"name": "http://host:port"}; merged over python/node.'),
    Spec("GATEWAY_ROUTES", "routes", "", json_of(list),
         "Route table as a JSON list; empty means the seed's /infer/python and /infer/node."),
    Spec("UPSTREAM_CONNECT_TIMEOUT_S", "connect_timeout_s", "2", float_range(0.05, 60),
         "Seconds to open a connection to a backend (502 after that)."),
    Spec("UPSTREAM_TIMEOUT_S", "upstream_timeout_s", "120", float_range(0.1, 225),
         "Default total seconds for one upstream exchange, below the platform's 230 s (504)."),
    Spec("UPSTREAM_CLIENT", "upstream_client", "aiohttp", choice("aiohttp", "httpx"),
         "httpx transport: aiohttp (httpx-aiohttp, measured faster) or httpx's own pool."),
    Spec("UPSTREAM_MAX_CONNECTIONS", "upstream_max_connections", "512", int_range(1, 100000),
         "Connection pool size towards all backends."),
    Spec("MAX_BODY_BYTES", "max_body_bytes", "1048576", int_range(1, 100 * 1024 * 1024),
         "Largest request body accepted (413 above)."),
    Spec("HEALTH_PROBE_TIMEOUT_S", "health_probe_timeout_s", "0.5", float_range(0.01, 10),
         "Timeout of each backend probe made by /healthz."),
    Spec("HEALTH_CACHE_S", "health_cache_s", "1", float_range(0, 60),
         "Seconds a /healthz probe result is reused."),
    Spec("RATE_LIMIT_ENABLED", "rate_limit_enabled", "true", boolean,
         "Apply rate limits; false admits every request and uses no storage."),
    Spec("GLOBAL_RPS", "global_rps", "1000", float_range(0, 1e7),
         "Requests (cost units) per second for all clients together; 0 turns it off."),
    Spec("GLOBAL_BURST", "global_burst", "2000", float_range(0, 1e8),
         "Bucket size of the global limit: how much may pass at once after a quiet spell."),
    Spec("CLIENT_RPS", "client_rps", "500", float_range(0, 1e7),
         "Default requests per second per client id; 0 turns it off (overrides still apply)."),
    Spec("CLIENT_BURST", "client_burst", "1000", float_range(0, 1e8),
         "Default bucket size per client id."),
    Spec("RATE_LIMIT_STORAGE_CONNECTION", "rate_limit_storage_connection", "",
         connection_string,
         "Table Storage connection string for limiter state and overrides (Azurite: use "
         "TableEndpoint=http://127.0.0.1:<port>/devstoreaccount1, never localhost). Dedicated "
         "rather than AzureWebJobsStorage, which is identity-based in Azure and a fixed port "
         "locally. Empty: TABLE_STORAGE_ENDPOINT is used."),
    Spec("TABLE_STORAGE_ENDPOINT", "table_storage_endpoint", "", optional_http_url,
         "https://<account>.table.core.windows.net, used with DefaultAzureCredential when "
         "RATE_LIMIT_STORAGE_CONNECTION is empty. Both empty: in-memory limits (one instance)."),
    Spec("RATE_LIMIT_SHADOW_SCOPES", "rate_limit_shadow_scopes", "", scope_names,
         "Comma-separated default limits (global, client) that only report: headers and "
         "counters as if enforced, no 429. Overrides carry their own shadow flag."),
    Spec("RATE_LIMIT_TABLE", "rate_limit_table", "ratelimits", table_name,
         "Table holding the shared token buckets."),
    Spec("LIMIT_OVERRIDES_TABLE", "limit_overrides_table", "limitoverrides", table_name,
         "Table of per-client and per-route limit overrides (PartitionKey client or route)."),
    Spec("CLIENT_ID_SOURCE", "client_id_source", "address",
         choice("address", "api-key", "principal"),
         "What names a client for per-client limits: the address (through TRUSTED_PROXIES), an "
         "API key header (hashed), or the Easy Auth principal; the address when it is absent."),
    Spec("CLIENT_ID_HEADER", "client_id_header", "x-api-key", header_name,
         "Header carrying the API key when CLIENT_ID_SOURCE=api-key."),
    Spec("TRUSTED_PROXIES", "trusted_proxies", "", parse_networks,
         "Addresses or CIDR blocks whose X-Forwarded-For/-Host/-Proto are believed; the client "
         "is the first untrusted hop from the right. Empty (the default): only the connection's "
         "peer counts. In Azure the Functions host reaches the worker over loopback and sets "
         "(replaces) X-Forwarded-For itself, so the Bicep sets 127.0.0.1/32,::1/128 there; see "
         "README, Security."),
    Spec("RATE_LIMIT_STORAGE_TIMEOUT_S", "rate_limit_storage_timeout_s", "0.5",
         float_range(0.01, 10),
         "Deadline of one limiter storage call; a slower call counts as storage unavailable."),
    Spec("RATE_LIMIT_FAILURE_MODE", "rate_limit_failure_mode", "open", choice("open", "closed"),
         "When storage is unavailable and leased tokens run out: open admits up to a local safe "
         "capacity (limit / RATE_LIMIT_EXPECTED_INSTANCES), closed denies with 503."),
    Spec("RATE_LIMIT_EXPECTED_INSTANCES", "rate_limit_expected_instances", "4",
         int_range(1, 1000),
         "Instances assumed while storage is unavailable: each admits rate / this locally."),
    Spec("RATE_LIMIT_LEASE_S", "rate_limit_lease_s", "0.25", float_range(0.01, 10),
         "Seconds of an instance's observed rate leased per storage write: larger means fewer "
         "storage calls and a larger overshoot bound (rate x this x H(instances))."),
    Spec("RATE_LIMIT_LEASE_TTL_S", "rate_limit_lease_ttl_s", "4", float_range(0.1, 60),
         "Leased tokens not renewed within this many seconds expire."),
    Spec("RATE_LIMIT_EXACT_BELOW_RPS", "rate_limit_exact_below_rps", "1", float_range(0, 1e6),
         "Keys limited to at most this rate lease exactly one request per storage write "
         "(exact, no overshoot, one round trip per request)."),
    Spec("RATE_LIMIT_GLOBAL_SHARDS", "rate_limit_global_shards", "1", int_range(1, 64),
         "Rows the global bucket is split over (rate / n each) to spread write contention."),
    Spec("RATE_LIMIT_CONFLICT_RETRIES", "rate_limit_conflict_retries", "3", int_range(0, 20),
         "Retries after an ETag conflict (412) before denying with a short Retry-After."),
    Spec("RATE_LIMIT_OVERRIDES_REFRESH_S", "rate_limit_overrides_refresh_s", "30",
         float_range(1, 3600),
         "Seconds between reloads of the limitoverrides table (changes apply without redeploy)."),
    Spec("RATE_LIMIT_SWEEP_INTERVAL_S", "rate_limit_sweep_interval_s", "300",
         float_range(10, 86400),
         "About how often one instance (holder of the sweep lease) deletes idle limiter rows."),
    Spec("RATE_LIMIT_SWEEP_IDLE_S", "rate_limit_sweep_idle_s", "600", float_range(60, 2592000),
         "A limiter row that is full, lease-free and untouched this long is deleted."),
    Spec("MODEL_ROUTES", "model_routes", "", json_of(dict),
         'OpenAI routes: JSON {"model": "backend name or base URL"}, e.g. {"llama3": '
         '"http://127.0.0.1:11434/v1"}. Empty: sim-python and sim-small to the python backend, '
         "sim-node to the node backend."),
    Spec("DEFAULT_MODEL_BACKEND", "default_model_backend", "", text,
         "Backend name or base URL for a model in no route; empty answers such a model 404."),
    Spec("MODEL_API_KEYS", "model_api_keys", "", json_of(dict),
         'JSON {"model, backend name or base URL": "key"}: sent upstream as Authorization: '
         "Bearer <key> in place of the client's own. A secret: in Azure use a Key Vault "
         "reference."),
    Spec("CLIENT_TPM", "client_tpm", "200000", float_range(0, 1e10),
         "Tokens per minute per client id on the OpenAI routes (estimate reserved, then "
         "reconciled with the usage reported); 0 turns it off."),
    Spec("MODEL_TPM", "model_tpm", "1000000", float_range(0, 1e10),
         "Tokens per minute per model, all clients together; 0 turns it off."),
    Spec("DEFAULT_MAX_TOKENS", "default_max_tokens", "1024", int_range(1, 10_000_000),
         "max_tokens sent upstream when a completion request sets neither max_tokens nor "
         "max_completion_tokens (it bounds the reservation)."),
    # Hostile input (issue 14).
    Spec("STORAGE_SDK_LOG_LEVEL", "storage_sdk_log_level", "WARNING",
         choice("DEBUG", "INFO", "WARNING", "ERROR"),
         "Level of the Azure SDK's own loggers (azure.*): at INFO they log every storage call "
         "with its headers."),
    # Resilient routing (function_app/routing/): retries, budget, breakers, health checks.
    Spec("RETRY_MAX_ATTEMPTS", "retry_max_attempts", "2", int_range(1, 10),
         "Attempts per target (pool) of a request, the first included, before its fallback."),
    Spec("RETRY_BUDGET_RATIO", "retry_budget_ratio", "0.2", float_range(0, 1),
         "Retries may add at most this share of a route's requests over the window ..."),
    Spec("RETRY_BUDGET_MIN_PER_S", "retry_budget_min_per_s", "3", float_range(0, 10000),
         "... plus this many retries per second (a floor for quiet routes)."),
    Spec("RETRY_BUDGET_WINDOW_S", "retry_budget_window_s", "10", float_range(1, 600),
         "Sliding window of the retry budget, in seconds."),
    Spec("BREAKER_FAILURES", "breaker_failures", "5", int_range(1, 10000),
         "Consecutive failures (no answer, or a 5xx) of a backend that open its breaker."),
    Spec("BREAKER_FAILURE_RATE", "breaker_failure_rate", "0.5", float_range(0.01, 1),
         "A failure share over BREAKER_WINDOW_S that opens the breaker too ..."),
    Spec("BREAKER_MIN_REQUESTS", "breaker_min_requests", "20", int_range(1, 100000),
         "... once the window holds at least this many results."),
    Spec("BREAKER_WINDOW_S", "breaker_window_s", "10", float_range(1, 600),
         "Window of the breaker's failure rate, in seconds."),
    Spec("BREAKER_OPEN_S", "breaker_open_s", "2", float_range(0.1, 600),
         "Seconds a breaker stays open before one probe request (half-open) may test it."),
    Spec("BREAKER_CACHE_S", "breaker_cache_s", "0.5", float_range(0.05, 60),
         "How often each instance re-reads the shared breaker rows and health probes."),
    Spec("ROUTING_TABLE", "routing_table", "routing", table_name,
         "Table of breaker rows, health probe results and the health-check lease (same "
         "storage as the limiter)."),
    Spec("HEALTH_CHECK_LEASE_S", "health_check_lease_s", "25", float_range(1, 3600),
         "The instance that ran the health-check timer keeps the lease this long; another "
         "instance's timer takes over only after it lapses."),
    Spec("HEALTH_CHECK_SCHEDULE", "health_check_schedule", "*/10 * * * * *", timer_schedule,
         "When the health-check timer fires (NCRONTAB, seconds first); the Functions host reads "
         "it as %HEALTH_CHECK_SCHEDULE% in the timer's binding."),
    # --- response cache (function_app/cache/) ---
    Spec("CACHE_ENABLED", "cache_enabled", "true", boolean,
         "Cache GET answers of proxied routes (and completions where opted in)."),
    Spec("CACHE_BACKEND", "cache_backend", "memory", choice("memory", "redis", "blob"),
         "Tier shared by instances behind the per-instance memory LRU: memory (none), redis "
         "or blob (the app's storage account)."),
    Spec("CACHE_TTL_SECONDS", "cache_ttl_seconds", "30", int_range(1, 86400),
         "Freshness of a stored answer that states none itself (max-age / s-maxage win)."),
    Spec("CACHE_ROUTES", "cache_routes", "", cache_route_modes,
         'JSON {"route path": "off" | "shared" | "per-client"}; GET routes not listed are '
         "cached shared. per-client keys entries by client id and admits credentialed requests."),
    Spec("CACHE_MEMORY_BYTES", "cache_memory_bytes", "67108864", int_range(1024, 2**40),
         "Byte budget of the per-instance memory tier (LRU); never exceeded."),
    Spec("CACHE_MAX_ENTRY_BYTES", "cache_max_entry_bytes", "1048576", int_range(1, 2**31),
         "Largest body stored; larger answers stream through uncached."),
    Spec("CACHE_SHARED_TIMEOUT_S", "cache_shared_timeout_s", "0.25", float_range(0.005, 10),
         "Deadline of one shared-tier call; slower or failed calls are counted and bypassed."),
    Spec("CACHE_REDIS_URL", "cache_redis_url", "", redis_url,
         "redis://host:port/db locally; rediss://<name>.<region>.redis.azure.net:10000 for "
         "Azure Managed Redis (with CACHE_REDIS_ENTRA=true)."),
    Spec("CACHE_REDIS_ENTRA", "cache_redis_entra", "false", boolean,
         "Authenticate to redis with an Entra ID token of the managed identity (azure-identity)."),
    Spec("CACHE_BLOB_CONNECTION", "cache_blob_connection", "", connection_string,
         "Blob connection string for CACHE_BACKEND=blob locally (Azurite: BlobEndpoint="
         "http://127.0.0.1:<port>/devstoreaccount1). Empty: CACHE_BLOB_ENDPOINT is used."),
    Spec("CACHE_BLOB_ENDPOINT", "cache_blob_endpoint", "", optional_http_url,
         "https://<account>.blob.core.windows.net, used with the managed identity."),
    Spec("CACHE_BLOB_CONTAINER", "cache_blob_container", "gatewaycache", container_name,
         "Blob container holding shared cache entries (expired ones are swept)."),
    Spec("CACHE_COMPLETIONS", "cache_completions", "", name_list,
         "Comma-separated models and/or OpenAI route paths (/v1/embeddings) whose answers are "
         "cached; * for all. Others are cached only on x-gateway-cache: use."),
    Spec("CACHE_COMPLETIONS_SHARED", "cache_completions_shared", "false", boolean,
         "Share cached completions between clients; false partitions them by client id."),
    Spec("CACHE_HIT_CHARGES_TOKENS", "cache_hit_charges_tokens", "false", boolean,
         "Charge a cached completion's completion tokens against token limits (false: only "
         "its prompt tokens)."),
    # Telemetry (#13): traces, metrics, request logs; exporters chosen by the last three.
    Spec("TELEMETRY_ENABLED", "telemetry_enabled", "true", boolean,
         "Traces, Prometheus metrics and the JSON request log; false removes the stage."),
    Spec("TELEMETRY_TRACE_SAMPLE_RATIO", "telemetry_trace_sample_ratio", "0.1",
         float_range(0, 1), "Share of new traces recorded (parent-based: a caller's sampled "
         "flag is followed)."),
    Spec("TELEMETRY_REQUEST_LOG", "telemetry_request_log", "true", boolean,
         "One JSON line per request on the logger gateway.requests."),
    Spec("TELEMETRY_CLIENT_LABELS", "telemetry_client_labels", "200", int_range(0, 100000),
         "Distinct hashed client labels kept in metrics; later clients count as _other."),
    Spec("TELEMETRY_CLIENT_HASH_KEY", "telemetry_client_hash_key", "", text,
         "Key of the client id hash in metrics and logs (so addresses cannot be guessed back)."),
    Spec("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint", "", optional_http_url,
         "OTLP/HTTP collector base URL (traces and metrics); empty: no OTLP export."),
    Spec("APPLICATIONINSIGHTS_CONNECTION_STRING", "appinsights_connection_string", "", text,
         "Application Insights target; set: traces and metrics go there (Azure Monitor)."),
    Spec("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "appinsights_authentication_string", "",
         text, "Authorization=AAD;ClientId=<id>: export with that managed identity (Entra ID)."),
    # Tenants and gateway API keys (issue #16).
    Spec("GATEWAY_AUTH", "gateway_auth", "none", choice("none", "optional", "required"),
         "Gateway API keys: none (ignored), optional (a key's tenant is the client when a key "
         "is sent), required (401 without a valid key)."),
    Spec("GATEWAY_KEYS_TABLE", "gateway_keys_table", "gatewaykeys", table_name,
         "Table of API key hashes, tenants and usage (same storage as the limiter)."),
    Spec("GATEWAY_KEY_CACHE_TTL_S", "gateway_key_cache_ttl_s", "4", float_range(0.1, 4),
         "Seconds a key record is used from memory; a revocation holds everywhere within it."),
    Spec("GATEWAY_KEY_LOOKUPS_PER_S", "gateway_key_lookups_per_s", "50", float_range(1, 1e5),
         "Storage reads per second per instance for keys not in the cache (503 beyond), so "
         "a flood of made-up keys cannot flood storage."),
    Spec("GATEWAY_USAGE_FLUSH_S", "gateway_usage_flush_s", "60", float_range(1, 3600),
         "Seconds between writes of one key's usage and last use from one instance."),
    Spec("MODEL_PRICES", "model_prices", "", price_table,
         'Spend per model: JSON {"model": price per million tokens}; empty: no spend.'),
)


@dataclass(frozen=True)
class Settings:
    port: int
    service_name: str
    py_service_url: str
    node_service_url: str
    extra_backends: dict = field(hash=False)
    routes: list = field(hash=False)
    connect_timeout_s: float
    upstream_timeout_s: float
    upstream_client: str
    upstream_max_connections: int
    max_body_bytes: int
    health_probe_timeout_s: float
    health_cache_s: float
    rate_limit_enabled: bool
    global_rps: float
    global_burst: float
    client_rps: float
    client_burst: float
    rate_limit_storage_connection: str = field(repr=False)
    table_storage_endpoint: str
    rate_limit_shadow_scopes: frozenset = field(hash=False)
    rate_limit_table: str
    limit_overrides_table: str
    client_id_source: str
    client_id_header: str
    trusted_proxies: tuple = field(hash=False)
    rate_limit_storage_timeout_s: float
    rate_limit_failure_mode: str
    rate_limit_expected_instances: int
    rate_limit_lease_s: float
    rate_limit_lease_ttl_s: float
    rate_limit_exact_below_rps: float
    rate_limit_global_shards: int
    rate_limit_conflict_retries: int
    rate_limit_overrides_refresh_s: float
    rate_limit_sweep_interval_s: float
    rate_limit_sweep_idle_s: float
    model_routes: dict = field(hash=False)
    default_model_backend: str
    model_api_keys: dict = field(hash=False, repr=False)
    client_tpm: float
    model_tpm: float
    default_max_tokens: int
    gateway_auth: str
    gateway_keys_table: str
    gateway_key_cache_ttl_s: float
    gateway_key_lookups_per_s: float
    gateway_usage_flush_s: float
    model_prices: dict = field(hash=False)
    telemetry_enabled: bool
    telemetry_trace_sample_ratio: float
    telemetry_request_log: bool
    telemetry_client_labels: int
    telemetry_client_hash_key: str = field(repr=False)
    otlp_endpoint: str
    appinsights_connection_string: str = field(repr=False)
    appinsights_authentication_string: str
    storage_sdk_log_level: str
    retry_max_attempts: int = 2
    retry_budget_ratio: float = 0.2
    retry_budget_min_per_s: float = 3.0
    retry_budget_window_s: float = 10.0
    breaker_failures: int = 5
    breaker_failure_rate: float = 0.5
    breaker_min_requests: int = 20
    breaker_window_s: float = 10.0
    breaker_open_s: float = 2.0
    breaker_cache_s: float = 0.5
    routing_table: str = "routing"
    health_check_lease_s: float = 25.0
    health_check_schedule: str = "*/10 * * * * *"
    cache_enabled: bool = True
    cache_backend: str = "memory"
    cache_ttl_seconds: int = 30
    cache_routes: dict = field(default_factory=dict, hash=False)
    cache_memory_bytes: int = 64 * 1024 * 1024
    cache_max_entry_bytes: int = 1024 * 1024
    cache_shared_timeout_s: float = 0.25
    cache_redis_url: str = field(default="", repr=False)
    cache_redis_entra: bool = False
    cache_blob_connection: str = field(default="", repr=False)
    cache_blob_endpoint: str = ""
    cache_blob_container: str = "gatewaycache"
    cache_completions: frozenset = field(default=frozenset(), hash=False)
    cache_completions_shared: bool = False
    cache_hit_charges_tokens: bool = False

    @property
    def backends(self) -> dict[str, str]:
        """Backend name to base URL: python, node, then GATEWAY_BACKENDS."""
        merged = {"python": self.py_service_url, "node": self.node_service_url}
        merged.update({name: str(url).rstrip("/") for name, url in self.extra_backends.items()})
        return merged


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Parse every setting in SPECS from `environ`; the first bad one raises SettingsError."""
    values: dict[str, Any] = {}
    for spec in SPECS:
        raw = environ.get(spec.name)
        raw = spec.default if raw is None or raw.strip() == "" else raw.strip()
        try:
            values[spec.attr] = spec.parse(raw)
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"setting {spec.name} is invalid: {exc}") from None
    _check_backends(values["extra_backends"])
    settings = Settings(**values)
    try:
        parse_routes(settings.routes, settings.backends, settings.upstream_timeout_s)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"setting GATEWAY_ROUTES is invalid: {exc}") from None
    try:
        model_table(settings)
    except ModelTableError as exc:
        raise SettingsError(f"setting {exc.setting} is invalid: {exc}") from None
    return settings


def model_table(settings: Settings) -> ModelTable:
    """The model table of MODEL_ROUTES, DEFAULT_MODEL_BACKEND and MODEL_API_KEYS."""
    return parse_model_table(settings.model_routes, settings.default_model_backend,
                             settings.model_api_keys, settings.backends)


def _check_backends(extra: dict) -> None:
    for name, url in extra.items():
        try:
            http_url(str(url))
        except ValueError as exc:
            raise SettingsError(f"setting GATEWAY_BACKENDS is invalid: {name}: {exc}") from None
