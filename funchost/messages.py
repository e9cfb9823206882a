"""The host-worker protocol messages the worker library reads and builds, as plain classes.

Written by this project from the public protocol's message and field names (the Functions
language-worker protocol: StreamingMessage and its requests and responses); field numbers and
wire encoding do not matter because the library takes objects, not bytes. Only the messages and
fields that `azure_functions_runtime` touches are here. A message is a class with a fixed set of
fields (an unknown attribute raises AttributeError, as on a real message, which the library
relies on in `Datum.from_typed_data`); `WhichOneof` answers for the one-of groups it asks about.
"""

from __future__ import annotations

from typing import Any, ClassVar


class Message:
    """Fields with defaults, set by keyword; `to_wire` turns a tree of them into JSON values."""

    FIELDS: ClassVar[dict[str, Any]] = {}
    ONEOFS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, **values: Any) -> None:
        fields = self.FIELDS
        for name in values:
            if name not in fields:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
        state = self.__dict__
        for name, default in fields.items():
            value = values.get(name)
            if value is None:
                # Repeated and map fields are never None on a real message: a fresh empty one.
                value = default.__class__() if default.__class__ in (dict, list) else default
            state[name] = value
        self._set = values

    def WhichOneof(self, group: str) -> str | None:
        for name in self.ONEOFS.get(group, ()):
            if self._set.get(name) is not None:
                return name
        return None

    def to_wire(self) -> dict[str, Any]:
        return {
            name: to_wire(getattr(self, name))
            for name in self.FIELDS
            if getattr(self, name) not in (None, "", [], {})
        }


def to_wire(value: Any) -> Any:
    """A message tree as JSON values: bytes become latin-1 text under `__bytes__`."""
    if isinstance(value, Message):
        return value.to_wire()
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": bytes(value).decode("latin-1")}
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):
        return to_wire(value.value)  # enums from azure.functions
    return value


class StatusResult(Message):
    Failure, Success, Cancelled = 0, 1, 2
    FIELDS: ClassVar[dict[str, Any]] = {"status": 0, "result": "", "exception": None, "logs": []}


class RpcException(Message):
    FIELDS: ClassVar[dict[str, Any]] = {"source": "", "stack_trace": "", "message": ""}


class WorkerMetadata(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "runtime_name": "",
        "runtime_version": "",
        "worker_version": "",
        "worker_bitness": "",
        "custom_properties": {},
    }


class WorkerInitRequest(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "host_version": "",
        "capabilities": {},
        "log_categories": {},
        "worker_directory": "",
        "function_app_directory": "",
    }


class WorkerInitResponse(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "worker_version": "",
        "capabilities": {},
        "result": None,
        "worker_metadata": None,
    }


class BindingInfo(Message):
    # Direction and DataType enum values, as the protocol numbers them.
    in_, out, inout = 0, 1, 2
    undefined, string, binary, stream = 0, 1, 2, 3
    FIELDS: ClassVar[dict[str, Any]] = {
        "type": "",
        "direction": 0,
        "data_type": 0,
        "properties": {},
    }


class RpcRetryOptions(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "max_retry_count": 0,
        "delay_interval": None,
        "minimum_interval": None,
        "maximum_interval": None,
        "retry_strategy": "",
    }


class RpcFunctionMetadata(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "name": "",
        "directory": "",
        "script_file": "",
        "entry_point": "",
        "bindings": {},
        "is_proxy": False,
        "status": None,
        "language": "",
        "raw_bindings": [],
        "function_id": "",
        "managed_dependency_enabled": False,
        "retry_options": None,
        "properties": {},
    }


class FunctionMetadataResponse(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "function_metadata_results": [],
        "result": None,
        "use_default_metadata_indexing": False,
    }


class FunctionLoadRequest(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "function_id": "",
        "metadata": None,
        "managed_dependency_enabled": False,
    }


class FunctionLoadResponse(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "function_id": "",
        "result": None,
        "is_dependency_downloaded": False,
    }


class RpcHttp(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "method": "",
        "url": "",
        "headers": {},
        "body": None,
        "params": {},
        "status_code": "",
        "query": {},
        "enable_content_negotiation": False,
        "raw_body": None,
        "cookies": [],
    }


class RpcHttpCookie(Message):
    class SameSite:
        None_, Lax, Strict, ExplicitNone = 0, 1, 2, 3

    FIELDS: ClassVar[dict[str, Any]] = {
        "name": "",
        "value": "",
        "domain": None,
        "path": None,
        "expires": None,
        "secure": None,
        "http_only": None,
        "same_site": 0,
        "max_age": None,
    }


setattr(RpcHttpCookie.SameSite, "None", 0)  # the protocol's name is a Python keyword


class TypedData(Message):
    KINDS = (
        "string",
        "json",
        "bytes",
        "stream",
        "http",
        "int",
        "double",
        "collection_bytes",
        "collection_string",
        "collection_double",
        "collection_sint64",
        "model_binding_data",
        "collection_model_binding_data",
    )
    FIELDS: ClassVar[dict[str, Any]] = dict.fromkeys(KINDS)
    ONEOFS: ClassVar[dict[str, tuple[str, ...]]] = {"data": KINDS}


class ParameterBinding(Message):
    FIELDS: ClassVar[dict[str, Any]] = {"name": "", "data": None, "rpc_shared_memory": None}
    ONEOFS: ClassVar[dict[str, tuple[str, ...]]] = {"rpc_data": ("data", "rpc_shared_memory")}


class RpcTraceContext(Message):
    FIELDS: ClassVar[dict[str, Any]] = {"trace_parent": "", "trace_state": "", "attributes": {}}


class RetryContext(Message):
    FIELDS: ClassVar[dict[str, Any]] = {"retry_count": 0, "max_retry_count": 0, "exception": None}


class InvocationRequest(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "invocation_id": "",
        "function_id": "",
        "input_data": [],
        "trigger_metadata": {},
        "trace_context": None,
        "retry_context": None,
    }

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.trace_context = self.trace_context or RpcTraceContext()
        self.retry_context = self.retry_context or RetryContext()


class InvocationResponse(Message):
    FIELDS: ClassVar[dict[str, Any]] = {
        "invocation_id": "",
        "output_data": [],
        "return_value": None,
        "result": None,
    }


class FunctionEnvironmentReloadRequest(Message):
    FIELDS: ClassVar[dict[str, Any]] = {"environment_variables": {}, "function_app_directory": ""}


class FunctionEnvironmentReloadResponse(Message):
    FIELDS: ClassVar[dict[str, Any]] = {"worker_metadata": None, "capabilities": {}, "result": None}


class StreamingMessage(Message):
    """The envelope: `request_id` and exactly one request or response set."""

    FIELDS: ClassVar[dict[str, Any]] = {
        "request_id": "",
        "worker_init_request": None,
        "function_load_request": None,
        "invocation_request": None,
        "function_environment_reload_request": None,
    }


def typed_data(wire: dict[str, Any] | None) -> TypedData | None:
    """A TypedData from its wire form (the host sends `http`, `string`, `json` or `bytes`)."""
    if not wire:
        return None
    values = dict(wire)
    if "http" in values:
        http = dict(values["http"])
        http["body"] = typed_data(http.get("body")) or TypedData()  # never None on the wire
        values["http"] = RpcHttp(**http)
    if isinstance(values.get("bytes"), dict):
        values["bytes"] = values["bytes"]["__bytes__"].encode("latin-1")
    return TypedData(**values)


def invocation_request(wire: dict[str, Any]) -> InvocationRequest:
    """An InvocationRequest from the JSON the host sent."""
    inputs = [
        ParameterBinding(name=p["name"], data=typed_data(p.get("data")))
        for p in wire.get("input_data", [])
    ]
    trace = RpcTraceContext(**wire["trace_context"]) if wire.get("trace_context") else None
    return InvocationRequest(
        invocation_id=wire["invocation_id"],
        function_id=wire["function_id"],
        input_data=inputs,
        trigger_metadata={k: typed_data(v) for k, v in wire.get("trigger_metadata", {}).items()},
        trace_context=trace,
    )
