"""The model table: which OpenAI-compatible backend serves each model name.

MODEL_ROUTES maps a model name to a backend, given either as a backend name (python, node, or one
from GATEWAY_BACKENDS) or as the base URL of any OpenAI-compatible server ("http://host:8000" or
"http://host:11434/v1": a trailing /v1 is dropped because the client path already carries it).
Empty, it is DEFAULT_MODELS, which maps the simulators. A model in no route goes to
DEFAULT_MODEL_BACKEND when set, otherwise the caller answers 404.

MODEL_API_KEYS maps a model name, a backend name or a base URL (looked up in that order) to the
key sent upstream as `Authorization: Bearer <key>`; it replaces the client's own Authorization.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

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
class ModelTable:
    models: Mapping[str, ModelBackend]
    default: ModelBackend | None = None

    def resolve(self, model: str) -> ModelBackend | None:
        """The backend for `model`: its route, else the default backend, else None."""
        return self.models.get(model, self.default)

    def names(self) -> list[str]:
        return sorted(self.models)


def parse_model_table(routes: Mapping, default: str, api_keys: Mapping,
                      backends: Mapping[str, str]) -> ModelTable:
    """Validate the three model settings; ModelTableError names the bad one."""
    for key, value in api_keys.items():
        if not isinstance(value, str) or not value:
            raise ModelTableError("MODEL_API_KEYS", f"{key!r}: the key must be a non-empty string")
    table = {}
    for model, target in (routes or DEFAULT_MODELS).items():
        if not model:
            raise ModelTableError("MODEL_ROUTES", "a model name must not be empty")
        table[model] = _backend("MODEL_ROUTES", str(target), backends, api_keys, model)
    fallback = _backend("DEFAULT_MODEL_BACKEND", default, backends, api_keys, None) \
        if default else None
    return ModelTable(table, fallback)


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
        name, url = target, target
    base = url.rstrip("/").removesuffix("/v1")
    key = next((api_keys[k] for k in (model, name, url, base) if k is not None and k in api_keys),
               None)
    return ModelBackend(name, base, key)
