"""Errors of the MCP routes: gateway errors that also carry a JSON-RPC error code and the id of
the message they answer, so the errors stage can answer them as JSON-RPC (stages/errors.py).

JSON-RPC codes: -32700 parse error, -32600 invalid request, -32601 method not found, -32602
invalid params (MCP's code for an unknown tool); -32001 the gateway refused (key, limit,
session), -32002 the upstream failed. `data` always holds the gateway's stable `code` and the
request id.
"""

from __future__ import annotations

import json

from ..core.errors import GatewayError
from ..http.headers import Headers
from ..http.messages import GatewayResponse

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
REFUSED, UPSTREAM_FAILED = -32001, -32002


class McpError(GatewayError, status=400, code="mcp_invalid_request",
               message="The JSON-RPC message is not valid."):
    rpc_code = INVALID_REQUEST

    def __init__(self, message: str | None = None, *, rpc_id: object = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message, headers=headers)
        self.rpc_id = rpc_id


class McpParseError(McpError, code="mcp_parse_error",
                    message="The request body is not valid JSON."):
    rpc_code = PARSE_ERROR


class McpMessageTooLarge(McpError, status=413, code="mcp_message_too_large",
                         message="The JSON-RPC message is larger than the gateway accepts."):
    pass


class McpBatchRefused(McpError, code="mcp_batch_not_supported", message=(
        "JSON-RPC batches are not accepted: send one message per request (MCP 2025-06-18 "
        "removed batching).")):
    pass


class McpMethodUnknown(McpError, status=200, code="mcp_method_not_found",
                       message="The method is not an MCP method the gateway forwards."):
    rpc_code = METHOD_NOT_FOUND


class McpToolNotAllowed(McpError, status=200, code="mcp_tool_not_allowed",
                        message="The API key may not call this tool."):
    rpc_code = INVALID_PARAMS


class McpServerNotFound(McpError, status=404, code="mcp_server_not_found",
                        message="No MCP server of that name is configured."):
    rpc_code = REFUSED


class McpForbidden(McpError, status=403, code="mcp_forbidden",
                   message="The API key may not use this MCP server."):
    rpc_code = REFUSED


class McpSessionNotFound(McpError, status=404, code="mcp_session_not_found",
                         message="The session does not exist, has ended or has expired; start a "
                                 "new one with initialize."):
    rpc_code = REFUSED


class McpRateLimited(McpError, status=429, code="mcp_tool_rate_limited",
                     message="Too many calls of this tool; retry after the time in "
                             "Retry-After."):
    rpc_code = REFUSED


class McpUpstreamBroken(McpError, status=502, code="mcp_upstream_invalid", message=(
        "The MCP server sent an answer the gateway cannot pass on (malformed, or an event "
        "over the size limit).")):
    rpc_code = UPSTREAM_FAILED


def mcp_error_response(error: GatewayError, request_id: str) -> GatewayResponse:
    """Any gateway error on an MCP route as a JSON-RPC error, with the error's HTTP status
    (a 401 from the key check and a 429 from the request limit included)."""
    rpc_code = getattr(error, "rpc_code", REFUSED if error.status < 500 else UPSTREAM_FAILED)
    body = json.dumps({"jsonrpc": "2.0", "id": getattr(error, "rpc_id", None), "error": {
        "code": rpc_code, "message": error.message,
        "data": {"code": error.code, "request_id": request_id}}}).encode()
    headers = Headers([("content-type", "application/json"), *error.headers.items()])
    return GatewayResponse(error.status, headers, body)
