"""`load_settings`: every setting parsed once, from an injected mapping, into a frozen `Settings`.

A bad value raises `SettingsError` naming the setting, which stops start-up; values that depend on
several settings (backends, the route and model tables, the default limits, and the configs of
the limiter, the breakers and the cache) are parsed here too, so nothing downstream parses a
setting again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.scopes import LimitDefaults, defaults_from

from ..cache.config import CacheConfig
from ..core.values import http_url
from ..mcp.config import parse_servers
from ..routing.backends import BackendSpec, parse_backend
from ..routing.breaker import BreakerConfig
from ..routing.model_routes import ModelTable, ModelTableError, parse_model_table
from ..routing.routes import RouteTable, parse_routes
from .configs import read_into
from .errors import SettingsError
from .specs import SPECS, Settings


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
    _check_guardrails(values)
    _check_cache_backend(values)
    backends, specs = _backends(values, environ)
    return Settings(**values, backends=backends, route_table=_route_table(values, backends),
                    model_table=_model_table(values, backends, specs), backend_specs=specs,
                    limiter=read_into(LimiterConfig, values),
                    limit_defaults=_limit_defaults(values),
                    breaker=read_into(BreakerConfig, values), cache=_cache_config(values),
                    mcp_table=_mcp_table(values, environ))


def _backends(values: dict[str, Any], environ: Mapping[str, str]
              ) -> tuple[dict[str, str], dict[str, BackendSpec]]:
    """Backend name to base URL: python, node, then GATEWAY_BACKENDS; and the entries given as
    objects (their wire and credentials), by name."""
    merged = {"python": values["py_service_url"], "node": values["node_service_url"]}
    specs: dict[str, BackendSpec] = {}
    for name, url in values["extra_backends"].items():
        try:
            if isinstance(url, Mapping):
                specs[name] = parse_backend(name, url, environ)
                merged[name] = specs[name].url
            else:
                merged[name] = http_url(str(url))
        except ValueError as exc:
            raise SettingsError(f"setting GATEWAY_BACKENDS is invalid: {name}: {exc}") from None
    return merged, specs


def _route_table(values: dict[str, Any], backends: dict[str, str]) -> RouteTable:
    try:
        return parse_routes(values["routes"], backends, values["upstream_timeout_s"])
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"setting GATEWAY_ROUTES is invalid: {exc}") from None


def _model_table(values: dict[str, Any], backends: dict[str, str],
                 specs: dict[str, BackendSpec]) -> ModelTable:
    """The model table of MODEL_ROUTES, DEFAULT_MODEL_BACKEND and MODEL_API_KEYS."""
    try:
        return parse_model_table(values["model_routes"], values["default_model_backend"],
                                 values["model_api_keys"], backends, specs)
    except ModelTableError as exc:
        raise SettingsError(f"setting {exc.setting} is invalid: {exc}") from None


def _limit_defaults(values: dict[str, Any]) -> LimitDefaults:
    """GLOBAL_/CLIENT_ RPS and BURST, the global shard count and the shadow scopes."""
    return defaults_from(values["global_rps"], values["global_burst"], values["client_rps"],
                         values["client_burst"], values["rate_limit_global_shards"],
                         values["rate_limit_shadow_scopes"])


def _cache_config(values: dict[str, Any]) -> CacheConfig:
    # Any API key header is a credential, whatever names the client for rate limits; so is a
    # cookie (an answer may be built for the session it names).
    credentials = {"authorization", "api-key", "x-api-key", "cookie", values["client_id_header"]}
    return read_into(CacheConfig, values, credential_headers=frozenset(credentials))


def _mcp_table(values: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """MCP_SERVERS, each key read from the app setting its entry names (key_setting)."""
    try:
        return parse_servers(values["mcp_servers"], environ)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"setting MCP_SERVERS is invalid: {exc}") from None


def _check_guardrails(values: dict[str, Any]) -> None:
    """A policy calling Content Safety needs its endpoint; key auth needs the key."""
    if values["content_safety_endpoint"]:
        if values["content_safety_auth"] == "key" and not values["content_safety_key"]:
            raise SettingsError("setting CONTENT_SAFETY_KEY is invalid: CONTENT_SAFETY_AUTH=key "
                                "needs it")
        return
    for policy in values["guardrails"]:
        if policy.uses_service:
            raise SettingsError(f"setting GUARDRAILS is invalid: policy {policy.name!r} uses "
                                "Content Safety but CONTENT_SAFETY_ENDPOINT is empty")


def _check_cache_backend(values: dict[str, Any]) -> None:
    """With the cache on, CACHE_BACKEND=redis needs CACHE_REDIS_URL; blob needs a connection
    string or an endpoint. Checked here once; the cache's wiring opens what is named."""
    backend = values["cache_backend"] if values["cache_enabled"] else "memory"
    if backend == "redis" and not values["cache_redis_url"]:
        raise SettingsError("setting CACHE_REDIS_URL is invalid: CACHE_BACKEND=redis needs it")
    if backend == "blob" and not (values["cache_blob_connection"] or values["cache_blob_endpoint"]):
        raise SettingsError("setting CACHE_BLOB_CONNECTION is invalid: CACHE_BACKEND=blob needs "
                            "it or CACHE_BLOB_ENDPOINT")
