"""What one attempt sends to a backend given as an object (routing/backends.py): the Azure path,
query and body for the OpenAI endpoint the client called, and the backend's own credentials in
place of the client's.

Azure's deployments surface: /v1/chat/completions becomes
/openai/deployments/{deployment}/chat/completions?api-version=...; endpoints without a
deployment path (responses, models) go to /openai/{rest}?api-version=.... Azure's v1 surface
(api_version "v1"): /openai/v1/{rest}, with the deployment name as the body's `model`.
"""

from __future__ import annotations

import json

from ..http.headers import Headers
from ..routing.backends import V1, BackendSpec
from ..routing.target_request import CLIENT_CREDENTIAL_HEADERS

# The credentials a client may carry; none of them reaches a backend with credentials of its own.
CLIENT_CREDENTIALS = CLIENT_CREDENTIAL_HEADERS
DEPLOYMENT_OPERATIONS = frozenset({
    "/chat/completions", "/completions", "/embeddings", "/audio/transcriptions",
    "/audio/speech", "/images/generations",
})


def azure_path(spec: BackendSpec, path: str, model: str) -> tuple[str, str]:
    """(path, query) at an Azure backend for the OpenAI-style `path` ("/v1/...") and `model`."""
    rest = path.removeprefix("/v1") if path.startswith("/v1/") else path
    if spec.api_version == V1:
        return "/openai/v1" + rest, ""
    query = f"api-version={spec.api_version}"
    if rest in DEPLOYMENT_OPERATIONS:
        return f"/openai/deployments/{spec.deployment_for(model)}{rest}", query
    return "/openai" + rest, query


def azure_body(spec: BackendSpec, body: bytes, model: str) -> bytes:
    """On the v1 surface the deployment is named by the body's `model`."""
    deployment = spec.deployment_for(model)
    if spec.api_version != V1 or deployment == model or not body:
        return body
    decoded = json.loads(body)
    decoded["model"] = deployment
    return json.dumps(decoded, separators=(",", ":")).encode()


def with_credentials(spec: BackendSpec, headers: Headers, token: str | None) -> Headers:
    """`headers` without any client credential, with the backend's key or `token`."""
    kept = headers.without(CLIENT_CREDENTIALS)
    if spec.auth == "key":
        if spec.azure:
            kept.set("api-key", spec.key)
        else:
            kept.set("authorization", f"Bearer {spec.key}")
    elif spec.auth == "entra" and token is not None:
        kept.set("authorization", f"Bearer {token}")
    return kept
