"""Backends described as objects in GATEWAY_BACKENDS: which wire they speak and how they log in.

A GATEWAY_BACKENDS value is either a base URL (an OpenAI-compatible server without credentials,
as before) or an object:

    {"url": "https://my-aoai.openai.azure.com", "api": "azure", "auth": "entra",
     "api_version": "2024-10-21", "deployment": {"gpt-4o": "gpt4o-ptu"}}

- `api`: "openai" (paths /v1/...) or "azure" (paths /openai/deployments/{deployment}/...?
  api-version=..., or the v1 surface /openai/v1/... when `api_version` is "v1");
- `auth`: "none", "key" (the key's value is read from the app setting named by `key_setting`,
  so it can be a Key Vault reference in Azure; sent as `api-key` to Azure, as a bearer token to
  OpenAI-style servers) or "entra" (a token of the gateway's managed identity for `scope`);
- `deployment`: a name, or a map from model name to deployment name; a model missing from the
  map (or no deployment at all) uses the model's own name as the deployment.

Nothing here does I/O: `parse_backend` takes the settings mapping to read a key from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

APIS, AUTHS = ("openai", "azure"), ("none", "key", "entra")
DEFAULT_SCOPE = "https://cognitiveservices.azure.com/.default"
V1 = "v1"  # api_version naming Azure's v1 surface (/openai/v1/...)
# Deployment names and api-versions go into a path and a query: keep them to safe characters.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^(v1|\d{4}-\d{2}-\d{2}(-preview)?)$")
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_KEYS = {"url", "api", "auth", "api_version", "deployment", "scope", "key_setting"}


@dataclass(frozen=True)
class BackendSpec:
    """One backend's wire and credentials; `key` is the secret read from `key_setting`."""

    name: str
    url: str
    api: str = "openai"
    auth: str = "none"
    api_version: str = ""
    deployment: str | Mapping[str, str] | None = field(default=None, hash=False)
    scope: str = DEFAULT_SCOPE
    key_setting: str = ""
    key: str = field(default="", repr=False, compare=False)

    @property
    def azure(self) -> bool:
        return self.api == "azure"

    def deployment_for(self, model: str) -> str:
        """The deployment serving `model` here (its own name when none is configured)."""
        if isinstance(self.deployment, str):
            return self.deployment
        if isinstance(self.deployment, Mapping):
            return self.deployment.get(model, model)
        return model


def parse_backend(name: str, raw: Mapping, environ: Mapping[str, str]) -> BackendSpec:
    """A GATEWAY_BACKENDS object entry; ValueError says what is wrong (without any secret)."""
    unknown = set(raw) - _KEYS
    if unknown:
        raise ValueError(f"{name}: unknown fields {sorted(unknown)} (known: {sorted(_KEYS)})")
    url = _url(name, raw.get("url"))
    api, auth = raw.get("api", "openai"), raw.get("auth", "none")
    if api not in APIS:
        raise ValueError(f"{name}: 'api' must be one of {list(APIS)}")
    if auth not in AUTHS:
        raise ValueError(f"{name}: 'auth' must be one of {list(AUTHS)}")
    version = raw.get("api_version", "")
    if api == "azure" and not (isinstance(version, str) and _VERSION.match(version)):
        raise ValueError(f"{name}: an azure backend needs 'api_version' like 2024-10-21 or v1")
    deployment = _deployment(name, raw.get("deployment"))
    scope = raw.get("scope", DEFAULT_SCOPE)
    if not isinstance(scope, str) or urlsplit(scope).scheme not in ("https", "api"):
        raise ValueError(f"{name}: 'scope' must be a URI such as {DEFAULT_SCOPE}")
    key_setting, key = raw.get("key_setting", ""), ""
    if auth == "key":
        if not isinstance(key_setting, str) or not _SETTING.match(key_setting):
            raise ValueError(f"{name}: auth 'key' needs 'key_setting', the name of the app "
                             "setting holding the key")
        key = (environ.get(key_setting) or "").strip()
        if not key:
            raise ValueError(f"{name}: the app setting {key_setting} (its key) is empty or unset")
    elif key_setting:
        raise ValueError(f"{name}: 'key_setting' is only for auth 'key'")
    return BackendSpec(name, url, api, auth, version if api == "azure" else "", deployment,
                       scope, key_setting, key)


def _url(name: str, value: object) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: 'url' must be an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{name}: 'url' must carry no credentials, query or fragment")
    return str(value).rstrip("/")


def _deployment(name: str, value: object) -> str | Mapping[str, str] | None:
    if value is None:
        return None
    if isinstance(value, str) and _NAME.match(value):
        return value
    if isinstance(value, Mapping) and value and all(
            isinstance(k, str) and k and isinstance(v, str) and _NAME.match(v)
            for k, v in value.items()):
        return dict(value)
    raise ValueError(f"{name}: 'deployment' must be a deployment name (letters, digits, . _ -) "
                     "or a non-empty map from model to deployment name")
