"""Parse one client JSON-RPC message for an MCP route, strictly and within limits.

Only a single JSON object is accepted (no batch), encoded as UTF-8 without lone surrogates, at
most MAX_JSON_DEPTH deep. What is forwarded is the message re-encoded from what was parsed, never
the client's bytes, so the server cannot read anything the gateway did not check (a duplicate
`name` key read differently by two parsers, for instance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..core.errors import BadRequest, InvalidJson, JsonTooDeep
from ..core.json_object import check_json_object
from .errors import INVALID_PARAMS, McpBatchRefused, McpError, McpMethodUnknown, McpParseError

# The client-to-server methods of MCP (2025-06-18 and 2025-11-25); anything else is refused
# here, so an unknown method never reaches a server that might treat it loosely.
REQUESTS = frozenset({
    "initialize", "ping", "tools/list", "tools/call", "resources/list",
    "resources/templates/list", "resources/read", "resources/subscribe",
    "resources/unsubscribe", "prompts/list", "prompts/get", "completion/complete",
    "logging/setLevel", "tasks/get", "tasks/result", "tasks/list", "tasks/cancel"})
NOTIFICATIONS = frozenset({
    "notifications/initialized", "notifications/cancelled", "notifications/progress",
    "notifications/roots/list_changed", "notifications/tasks/status"})
MAX_METHOD_LEN = 128


@dataclass(frozen=True)
class Message:
    """One checked message: a request (id and method), a notification (method, no id) or a
    response to a server request (id, no method)."""

    payload: dict[str, Any]
    rpc_id: object = None
    method: str | None = None

    @property
    def is_request(self) -> bool:
        return self.method is not None and "id" in self.payload

    @property
    def tool(self) -> str | None:
        """The tool a tools/call names (a str; the parser refused anything else)."""
        if self.method != "tools/call":
            return None
        return self.payload["params"]["name"]

    def encoded(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":")).encode()


def parse_message(body: bytes) -> Message:
    """The checked message; McpError (with the JSON-RPC code) for anything else."""
    if body.lstrip()[:1] == b"[":
        raise McpBatchRefused()
    try:
        payload = check_json_object(body)
    except JsonTooDeep:
        raise McpParseError("The JSON-RPC message nests deeper than the gateway accepts.") \
            from None
    except InvalidJson:
        raise McpParseError() from None
    except BadRequest:
        raise McpError("A JSON-RPC message must be a JSON object.") from None
    rpc_id = payload.get("id")
    valid_id = "id" not in payload or (isinstance(rpc_id, str | int)
                                       and not isinstance(rpc_id, bool))
    if payload.get("jsonrpc") != "2.0" or not valid_id:
        raise McpError("A JSON-RPC 2.0 message needs \"jsonrpc\": \"2.0\" and a string or "
                       "integer id.", rpc_id=rpc_id if valid_id else None)
    method = payload.get("method")
    if method is None:
        return _response(payload, rpc_id)
    return Message(payload, rpc_id, _method(payload, method, rpc_id))


def _method(payload: dict, method: object, rpc_id: object) -> str:
    if not isinstance(method, str) or len(method) > MAX_METHOD_LEN:
        raise McpError("\"method\" must be a short string.", rpc_id=rpc_id)
    known = REQUESTS if "id" in payload else NOTIFICATIONS
    if method not in known:
        raise McpMethodUnknown(f"The method {method[:64]!r} is not an MCP "
                               f"{'request' if 'id' in payload else 'notification'}.",
                               rpc_id=rpc_id)
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise _invalid_params("\"params\" must be an object.", rpc_id)
    if method == "tools/call":
        name = (params or {}).get("name")
        if not isinstance(name, str) or not name:
            raise _invalid_params("tools/call needs params.name, a tool name.", rpc_id)
    return method


def _response(payload: dict, rpc_id: object) -> Message:
    """A client's answer to a server request: an id and exactly one of result or error."""
    if "id" not in payload or ("result" in payload) == ("error" in payload):
        raise McpError("A JSON-RPC message needs a method, or an id with a result or an "
                       "error.", rpc_id=rpc_id)
    return Message(payload, rpc_id)


def _invalid_params(message: str, rpc_id: object) -> McpError:
    error = McpError(message, rpc_id=rpc_id)
    error.rpc_code = INVALID_PARAMS
    return error


def error_body(rpc_id: object, code: int, message: str, data: dict[str, Any]) -> bytes:
    """A JSON-RPC error response."""
    return json.dumps({"jsonrpc": "2.0", "id": rpc_id,
                       "error": {"code": code, "message": message, "data": data}}).encode()
