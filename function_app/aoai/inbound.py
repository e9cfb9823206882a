"""Azure-style client paths, so clients written for Azure OpenAI (openai.AzureOpenAI,
AsyncAzureOpenAI, REST callers) work against the gateway unchanged.

    POST /openai/deployments/{deployment}/chat/completions?api-version=...   (also completions,
         embeddings)                     -> POST /v1/chat/completions, model = {deployment}
    ANY  /openai/v1/{rest}               -> /v1/{rest} (Azure's v1 surface; api-version optional)
    GET  /openai/models?api-version=...  -> GET /v1/models

`azure_paths_stage` runs before routing and rewrites the path, so the request is routed, limited,
cached and observed exactly as its OpenAI-style twin; the deployment name is the model (the model
table routes it). `deployment_model_stage` runs after the body stage and puts the deployment in
the body's `model`, whatever the client wrote there. The client's api-version is checked (as
Azure does, 400 without it) and then dropped: each backend gets its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable

from ..core.errors import BadRequest
from ..core.pipeline import Handler
from ..http.messages import GatewayRequest, GatewayResponse

_DEPLOYMENT = re.compile(
    r"^/openai/deployments/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/"
    r"(chat/completions|completions|embeddings)$")
_VERSION = re.compile(r"^[A-Za-z0-9.-]{1,32}$")


class MissingApiVersion(BadRequest, code="missing_api_version",
                        message="Missing or malformed required query parameter: api-version."):
    pass


def _without_api_version(query: str) -> tuple[str, str | None]:
    """The query without api-version, and its value (None when absent)."""
    kept, version = [], None
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        if name == "api-version":
            version = value
        else:
            kept.append(part)
    return "&".join(kept), version


def _rewrite(request: GatewayRequest, path: str) -> None:
    request.path = request.raw_path = path


# Both stages are plain functions, not coroutines: they act before the next stage only, so the
# next stage's awaitable is the one awaited (a frame fewer per request, resumed at every wait
# below). What they raise, they raise at the call, inside the `await` of the stage before.

def azure_paths_stage(request: GatewayRequest, call_next: Handler) -> Awaitable[GatewayResponse]:
    path = request.path
    if not path.startswith("/openai/"):
        return call_next(request)
    query, version = _without_api_version(request.query)
    if version is not None and not _VERSION.match(version):
        raise MissingApiVersion()
    found = _DEPLOYMENT.match(path)
    if found is not None:
        if version is None:
            raise MissingApiVersion()
        request.context.deployment = found.group(1)
        _rewrite(request, "/v1/" + found.group(2))
    elif path.startswith("/openai/v1/"):
        raw = request.raw_path or path
        # The raw path keeps its escapes: the routing stage judges it (core/paths.py).
        request.path = path.removeprefix("/openai")
        request.raw_path = raw.removeprefix("/openai") if raw.startswith("/openai/v1/") else raw
    elif path in ("/openai/models", "/openai/deployments"):
        if version is None:
            raise MissingApiVersion()
        _rewrite(request, "/v1/models")
    else:
        return call_next(request)
    request.query = query
    return call_next(request)


def deployment_model_stage(request: GatewayRequest, call_next: Handler
                           ) -> Awaitable[GatewayResponse]:
    context = request.context
    deployment = context.deployment
    if deployment is not None:
        body = context.json
        if isinstance(body, dict) and body.get("model") != deployment:
            body = context.json = {**body, "model": deployment}
            request.body = json.dumps(body, separators=(",", ":")).encode()
    return call_next(request)
