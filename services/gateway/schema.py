"""JSON Schemas of the request bodies, derived from the Protobuf descriptors (pure).

The OpenAPI document of the gateway uses them, so the documented shape is always the one the
validator enforces (proto field names; enums by name; timestamps as RFC 3339; unknown
properties refused). The JSON mapping's other spellings (lowerCamelCase names, enum numbers,
integers as strings) are accepted by the gateway but not advertised.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from flywheel.v1 import feedback_pb2, trace_pb2

_FD = FieldDescriptor
_INT32 = (_FD.TYPE_INT32, _FD.TYPE_SINT32, _FD.TYPE_SFIXED32)
_UINT32 = (_FD.TYPE_UINT32, _FD.TYPE_FIXED32)
_INT64 = (_FD.TYPE_INT64, _FD.TYPE_SINT64, _FD.TYPE_SFIXED64, _FD.TYPE_UINT64, _FD.TYPE_FIXED64)
_WELL_KNOWN = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
}
# Fields the gateway sets itself; documented as ignored rather than offered.
_SERVER_SET = {"envelope"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _scalar(fd: FieldDescriptor, defs: dict[str, Any]) -> dict[str, Any]:
    kind = fd.type
    if kind == _FD.TYPE_STRING:
        return {"type": "string"}
    if kind == _FD.TYPE_BOOL:
        return {"type": "boolean"}
    if kind in _INT32:
        return {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    if kind in _UINT32:
        return {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
    if kind in _INT64:
        return {"type": "integer"}
    if kind in (_FD.TYPE_FLOAT, _FD.TYPE_DOUBLE):
        return {"type": "number"}
    if kind == _FD.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    if kind == _FD.TYPE_ENUM:
        name = _schema_name(fd.enum_type.full_name)
        defs.setdefault(name, {"type": "string", "enum": [v.name for v in fd.enum_type.values]})
        return _ref(name)
    if kind == _FD.TYPE_MESSAGE:
        return message_schema(fd.message_type, defs)
    raise ValueError(f"unsupported field type {kind}")


def _schema_name(full_name: str) -> str:
    return full_name.removeprefix("flywheel.v1.").replace(".", "_")


def message_schema(descriptor: Descriptor, defs: dict[str, Any]) -> dict[str, Any]:
    """A reference to ``descriptor``'s schema, adding it (and what it uses) to ``defs``."""
    if descriptor.full_name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[descriptor.full_name])
    name = _schema_name(descriptor.full_name)
    if name in defs:
        return _ref(name)
    defs[name] = {}  # placeholder: recursive messages refer to it
    properties: dict[str, Any] = {}
    for fd in descriptor.fields:
        if fd.name in _SERVER_SET:
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            properties[fd.name] = {"type": "object",
                                   "additionalProperties": _scalar(value_fd, defs)}
        elif fd.is_repeated:
            properties[fd.name] = {"type": "array", "items": _scalar(fd, defs)}
        else:
            properties[fd.name] = _scalar(fd, defs)
    defs[name] = {"type": "object", "properties": properties, "additionalProperties": False}
    return _ref(name)


def _openai_chat_trace(defs: dict[str, Any]) -> dict[str, Any]:
    defs["OpenAIChatTrace"] = {
        "type": "object",
        "description": "A trace in the OpenAI chat shape: the chat-completions request "
                       "(model, messages, tools) and optionally its response; trace_id, "
                       "session_id, user_id, tags, feedback and the other Trace fields may "
                       "be added.",
        "properties": {
            "trace_id": {"type": "string"},
            "model": {"type": "string"},
            "messages": {"type": "array", "items": {"type": "object"}},
            "tools": {"type": "array", "items": {"type": "object"}},
            "response": {"type": "object"},
            "choices": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["model", "messages"],
    }
    return _ref("OpenAIChatTrace")


def traces_body_schema(defs: dict[str, Any]) -> dict[str, Any]:
    """One trace, a JSON array of traces, or ``{"traces": [...]}``; each trace in the JSON
    mapping or the OpenAI chat shape."""
    one = {"anyOf": [message_schema(trace_pb2.Trace.DESCRIPTOR, defs), _openai_chat_trace(defs)]}
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1},
                      {"type": "object", "properties": {"traces": {"type": "array", "items": one,
                                                                   "minItems": 1}},
                       "required": ["traces"], "additionalProperties": False}]}


def feedback_body_schema(defs: dict[str, Any]) -> dict[str, Any]:
    """One feedback event, a JSON array of them, or ``{"events": [...]}``."""
    one = message_schema(feedback_pb2.FeedbackEvent.DESCRIPTOR, defs)
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1},
                      {"type": "object", "properties": {"events": {"type": "array", "items": one,
                                                                   "minItems": 1}},
                       "required": ["events"], "additionalProperties": False}]}


_COMPONENTS: dict[str, Any] = {}
TRACES_BODY = traces_body_schema(_COMPONENTS)
FEEDBACK_BODY = feedback_body_schema(_COMPONENTS)


def components() -> dict[str, Any]:
    """Every schema the request bodies refer to, for ``components.schemas``."""
    return dict(_COMPONENTS)
