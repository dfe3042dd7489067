"""OTLP GenAI spans -> Traces (pure: no I/O).

The spans of one OTLP trace id become one agent run, one :class:`Trace`. Spans are recognised
by the OpenTelemetry GenAI semantic conventions (``gen_ai.*``) and by OpenInference
(``openinference.span.kind``, ``llm.*``, ``tool.*``); every other span is counted and skipped.

| span                                                     | becomes                                   |
|----------------------------------------------------------|-------------------------------------------|
| ``gen_ai.operation.name`` chat / text_completion / generate_content, OpenInference ``LLM`` | a MODEL_CALL step; its messages feed ``Trace.messages``; its model ``Trace.model`` |
| ``execute_tool``, OpenInference ``TOOL``                  | a TOOL_CALL step (arguments) and a TOOL_RESULT step (result or error), plus a ``tool`` message when the model's messages lack it |
| ``invoke_agent`` / ``create_agent`` / ``invoke_workflow``, OpenInference ``AGENT`` / ``CHAIN`` | the run itself: outcome, latency, agent name, conversation and user ids |
| ``retrieval``, OpenInference ``RETRIEVER``                | ``Trace.context_documents``               |
| span status ERROR, ``exception`` events, ``error.type``    | step status ERROR (TIMEOUT for timeouts) with ``StepError``; on the root span the outcome FAILURE |

Messages are read, in this order of preference, from ``gen_ai.input.messages`` /
``gen_ai.output.messages`` / ``gen_ai.system_instructions`` (JSON with ``parts``), the per-message
span events (``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``,
``gen_ai.tool.message``, ``gen_ai.choice``), the ``gen_ai.content.prompt`` /
``gen_ai.content.completion`` events, the flattened ``gen_ai.prompt.N.*`` /
``gen_ai.completion.N.*`` attributes, and OpenInference ``llm.input_messages.N.message.*`` /
``llm.output_messages.N.message.*``. The conversation is the input of the last model call that
recorded one plus its output, followed by the results of tools that ran after it.

OTLP/JSON differs from the plain Protobuf JSON mapping: trace and span ids are hex, not base64.
:func:`parse_json_request` handles that.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status

from flywheel.v1 import common_pb2, trace_pb2

MODEL, TOOL, AGENT, RETRIEVAL, OTHER_GENAI, NOT_GENAI = (
    "model", "tool", "agent", "retrieval", "other_genai", "not_genai")
_MODEL_OPS = {"chat", "text_completion", "generate_content"}
_AGENT_OPS = {"invoke_agent", "create_agent", "invoke_workflow"}
_OI_KINDS = {"LLM": MODEL, "TOOL": TOOL, "AGENT": AGENT, "CHAIN": AGENT, "RETRIEVER": RETRIEVAL}
_ROLE_ALIASES = {"model": "assistant", "ai": "assistant", "human": "user", "bot": "assistant",
                 "function": "tool", "ipython": "tool"}
_MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                   "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
_INDEXED = re.compile(r"^(\d+)\.(.+)$")
MAX_STEP_TEXT = 4000
_ERROR = Status.STATUS_CODE_ERROR
_OK = Status.STATUS_CODE_OK


class OtlpDecodeError(ValueError):
    """The OTLP body is not a valid ExportTraceServiceRequest."""


# --- decoding ---------------------------------------------------------------------------------

def _hex_to_b64(value: Any) -> Any:
    if isinstance(value, str) and value and len(value) % 2 == 0:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode("ascii")
        except ValueError:
            return value
    return value


def _fix_ids(obj: Any, keys: tuple[str, ...]) -> None:
    if isinstance(obj, dict):
        for key in keys:
            if key in obj:
                obj[key] = _hex_to_b64(obj[key])


def parse_json_request(body: bytes) -> ExportTraceServiceRequest:
    """Parse OTLP/JSON (hex ids, lowerCamelCase or proto names; unknown fields ignored).

    Raises:
        OtlpDecodeError: the text is not JSON or not an export request.
    """
    try:
        data = orjson.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OtlpDecodeError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OtlpDecodeError("expected a JSON object with resourceSpans")
    id_keys = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
    for rs in _list(data.get("resourceSpans", data.get("resource_spans"))):
        for ss in _list(_get(rs, "scopeSpans", "scope_spans")):
            for span in _list(_get(ss, "spans")):
                _fix_ids(span, id_keys)
                for link in _list(_get(span, "links")):
                    _fix_ids(link, id_keys)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise OtlpDecodeError(str(exc)) from None
    return request


def parse_protobuf_request(body: bytes) -> ExportTraceServiceRequest:
    """Parse OTLP/protobuf.

    Raises:
        OtlpDecodeError: the bytes are not an export request.
    """
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception as exc:  # noqa: BLE001 - upb raises DecodeError or RuntimeError
        raise OtlpDecodeError(f"invalid protobuf: {exc}") from None
    return request


def _get(obj: Any, *keys: str) -> Any:
    if isinstance(obj, dict):
        for key in keys:
            if key in obj:
                return obj[key]
    return None


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


# --- spans as plain values --------------------------------------------------------------------

def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as a Python value (lists and dicts for arrays and kvlists)."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which) if which else None


def _attrs(key_values: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in key_values}


@dataclass
class SpanView:
    """One span with its resource and scope, attributes decoded; ``raw`` keeps the protobuf."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    attrs: dict[str, Any]
    events: list[tuple[str, int, dict[str, Any]]]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    raw: bytes = b""
    kind: str = NOT_GENAI

    @property
    def latency_ms(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e6


def span_views(resource: Resource, scope: InstrumentationScope, spans: Any) -> list[SpanView]:
    """SpanViews for the spans of one ScopeSpans, each classified."""
    resource_attrs = _attrs(resource.attributes)
    views = []
    for span in spans:
        raw = ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=[span])])
        view = SpanView(
            trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(), name=span.name,
            start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
            attrs=_attrs(span.attributes),
            events=[(e.name, e.time_unix_nano, _attrs(e.attributes)) for e in span.events],
            status_code=span.status.code, status_message=span.status.message,
            resource=resource_attrs, raw=raw.SerializeToString(),
        )
        view.kind = classify(view)
        views.append(view)
    return views


def request_spans(request: ExportTraceServiceRequest) -> list[SpanView]:
    """Every span of an export request."""
    views: list[SpanView] = []
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            views.extend(span_views(rs.resource, ss.scope, ss.spans))
    return views


def span_from_raw(raw: bytes) -> SpanView:
    """A SpanView back from ``SpanView.raw`` (spans held while their trace is incomplete)."""
    rs = ResourceSpans.FromString(raw)
    ss = rs.scope_spans[0]
    return span_views(rs.resource, ss.scope, ss.spans)[0]


def classify(span: SpanView) -> str:
    """MODEL, TOOL, AGENT, RETRIEVAL, OTHER_GENAI or NOT_GENAI."""
    attrs = span.attrs
    op = attrs.get("gen_ai.operation.name")
    if isinstance(op, str):
        if op in _MODEL_OPS:
            return MODEL
        if op == "execute_tool":
            return TOOL
        if op in _AGENT_OPS:
            return AGENT
        if op == "retrieval":
            return RETRIEVAL
        return OTHER_GENAI
    oi_kind = attrs.get("openinference.span.kind")
    if isinstance(oi_kind, str):
        return _OI_KINDS.get(oi_kind.upper(), OTHER_GENAI)
    if "gen_ai.tool.name" in attrs:
        return TOOL
    if any(k in attrs for k in ("gen_ai.request.model", "gen_ai.system", "gen_ai.provider.name",
                                "llm.model_name")):
        return MODEL
    if any(name.startswith("gen_ai.") for name, _, _ in span.events):
        return MODEL
    return NOT_GENAI


def is_genai(span: SpanView) -> bool:
    return span.kind not in (NOT_GENAI, OTHER_GENAI)


# --- messages -----------------------------------------------------------------------------------

def _json_value(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _role(value: Any, default: str) -> str:
    role = value if isinstance(value, str) and value else default
    role = role.lower()
    return _ROLE_ALIASES.get(role, role)


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict:
    return {"id": _text(call_id), "type": "function",
            "function": {"name": _text(name), "arguments": _text(arguments)}}


def _message_from_parts(item: dict, default_role: str) -> dict:
    """A chat message from the semconv shape ``{role, parts: [...]}`` or an OpenAI-like dict."""
    role = _role(item.get("role"), default_role)
    msg: dict[str, Any] = {"role": role}
    texts: list[str] = []
    calls: list[dict] = []
    if isinstance(item.get("parts"), list):
        for part in item["parts"]:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(_text(part.get("content")))
            elif kind == "tool_call":
                calls.append(_tool_call(part.get("id"), part.get("name"), part.get("arguments")))
            elif kind == "tool_call_response":
                msg["tool_call_id"] = _text(part.get("id"))
                texts.append(_text(part.get("response")))
                msg["role"] = "tool"
    else:
        content = item.get("content")
        if isinstance(content, list):
            texts.extend(_text(p.get("text", p.get("content"))) if isinstance(p, dict) else
                         _text(p) for p in content)
        elif content is not None:
            texts.append(_text(content))
        for call in _list(_json_value(item.get("tool_calls"))):
            if isinstance(call, dict):
                function = call.get("function") if isinstance(call.get("function"), dict) else call
                calls.append(_tool_call(call.get("id"), function.get("name"),
                                        function.get("arguments")))
        for key in ("tool_call_id", "id"):
            if role == "tool" and item.get(key):
                msg["tool_call_id"] = _text(item[key])
                break
    if texts:
        msg["content"] = "\n\n".join(t for t in texts if t)
    if calls:
        msg["tool_calls"] = calls
    if isinstance(item.get("name"), str) and item["name"]:
        msg["name"] = item["name"]
    return msg


def _messages_from_json(value: Any, default_role: str) -> list[dict]:
    value = _json_value(value)
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, str):
        return [{"role": default_role, "content": value}] if value else []
    return [_message_from_parts(m, default_role) for m in _list(value) if isinstance(m, dict)]


def _unflatten(attrs: dict[str, Any], prefix: str) -> list[dict]:
    """``{prefix}.0.role`` style attributes as a list of nested dicts (indexes become lists)."""
    root: dict = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        node = root
        parts = key[len(prefix):].split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
    return _listify(root) if isinstance(_listify(root), list) else []


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_listify(node[k]) for k in sorted(node, key=int)]
    return {k: _listify(v) for k, v in node.items()}


def _oi_message(item: dict) -> dict:
    msg = item.get("message", item)
    if not isinstance(msg, dict):
        return {"role": "user", "content": _text(msg)}
    calls = []
    for call in _list(msg.get("tool_calls")):
        tc = call.get("tool_call", call) if isinstance(call, dict) else {}
        function = tc.get("function") if isinstance(tc.get("function"), dict) else {}
        calls.append({"id": tc.get("id"), "function": function})
    contents = [c.get("message_content", c) for c in _list(msg.get("contents"))
                if isinstance(c, dict)]
    content = msg.get("content")
    if content is None and contents:
        content = [{"text": c.get("text")} for c in contents if c.get("type", "text") == "text"]
    return _message_from_parts({"role": msg.get("role"), "content": content,
                                "name": msg.get("name"), "tool_calls": calls,
                                "tool_call_id": msg.get("tool_call_id")}, "user")


def _event_messages(span: SpanView) -> tuple[list[dict], list[dict]]:
    inputs: list[dict] = []
    outputs: list[dict] = []
    for name, _, attrs in span.events:
        body = _json_value(attrs.get("gen_ai.event.content"))
        data = body if isinstance(body, dict) else attrs
        if name in _MESSAGE_EVENTS:
            inputs.append(_message_from_parts(data, _MESSAGE_EVENTS[name]))
        elif name == "gen_ai.choice":
            message = _json_value(data.get("message"))
            outputs.append(_message_from_parts(message if isinstance(message, dict) else data,
                                               "assistant"))
        elif name == "gen_ai.content.prompt":
            inputs.extend(_messages_from_json(attrs.get("gen_ai.prompt"), "user"))
        elif name == "gen_ai.content.completion":
            outputs.extend(_messages_from_json(attrs.get("gen_ai.completion"), "assistant"))
    return inputs, outputs


def model_messages(span: SpanView) -> tuple[list[dict], list[dict]]:
    """``(input_messages, output_messages)`` a model-call span recorded, in chat-message dicts."""
    attrs = span.attrs
    if "gen_ai.input.messages" in attrs or "gen_ai.output.messages" in attrs:
        inputs = _messages_from_json(attrs.get("gen_ai.system_instructions"), "system")
        if inputs and all("content" in m for m in inputs):
            inputs = [{"role": "system", "content": "\n\n".join(m["content"] for m in inputs)}]
        inputs += _messages_from_json(attrs.get("gen_ai.input.messages"), "user")
        return inputs, _messages_from_json(attrs.get("gen_ai.output.messages"), "assistant")
    inputs, outputs = _event_messages(span)
    if inputs or outputs:
        return inputs, outputs
    if any(k.startswith("gen_ai.prompt.") or k.startswith("gen_ai.completion.") for k in attrs):
        return ([_message_from_parts(m, "user") for m in _unflatten(attrs, "gen_ai.prompt.")
                 if isinstance(m, dict)],
                [_message_from_parts(m, "assistant")
                 for m in _unflatten(attrs, "gen_ai.completion.") if isinstance(m, dict)])
    if "gen_ai.prompt" in attrs or "gen_ai.completion" in attrs:
        return (_messages_from_json(attrs.get("gen_ai.prompt"), "user"),
                _messages_from_json(attrs.get("gen_ai.completion"), "assistant"))
    return ([_oi_message(m) for m in _unflatten(attrs, "llm.input_messages.") if isinstance(m, dict)],
            [_oi_message(m) for m in _unflatten(attrs, "llm.output_messages.")
             if isinstance(m, dict)])


# --- steps ------------------------------------------------------------------------------------

@dataclass
class _ErrorInfo:
    type: str = ""
    message: str = ""
    http_status: int = 0


def _span_error(span: SpanView) -> _ErrorInfo | None:
    exc = next((a for n, _, a in span.events if n == "exception"), None)
    error_type = span.attrs.get("error.type")
    if span.status_code != _ERROR and exc is None and not error_type:
        return None
    info = _ErrorInfo()
    if exc is not None:
        info.type = _text(exc.get("exception.type"))
        info.message = _text(exc.get("exception.message"))
    info.type = info.type or _text(error_type) or "Error"
    info.message = info.message or span.status_message
    status = span.attrs.get("http.response.status_code", span.attrs.get("http.status_code"))
    if isinstance(status, int) and not isinstance(status, bool):
        info.http_status = status
    return info


def _is_timeout(info: _ErrorInfo) -> bool:
    return "timeout" in info.type.lower() or "timed out" in info.message.lower()


def _step(span: SpanView, kind: int, name: str, step_input: str, output: str,
          step_id: str | None = None, parent: str = "") -> trace_pb2.AgentStep:
    step = trace_pb2.AgentStep(
        step_id=step_id or span.span_id, kind=kind, name=name[:256],
        input=step_input[:MAX_STEP_TEXT], output=output[:MAX_STEP_TEXT],
        latency_ms=span.latency_ms, parent_step_id=parent, status=trace_pb2.STEP_STATUS_OK)
    if span.start_ns:
        step.started_at.FromNanoseconds(span.start_ns)
    error = _span_error(span)
    if error is not None:
        step.status = trace_pb2.STEP_STATUS_TIMEOUT if _is_timeout(error) else \
            trace_pb2.STEP_STATUS_ERROR
        step.error.type = error.type[:256]
        step.error.message = error.message[:MAX_STEP_TEXT]
        step.error.http_status = error.http_status
    return step


def _model_name(span: SpanView) -> str:
    for key in ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name"):
        if isinstance(span.attrs.get(key), str) and span.attrs[key]:
            return span.attrs[key]
    return span.name


def tool_info(span: SpanView) -> dict[str, str]:
    """Tool name, call id, arguments and result of a tool span."""
    attrs = span.attrs
    name = attrs.get("gen_ai.tool.name") or attrs.get("tool.name") or \
        attrs.get("tool_call.function.name") or span.name.removeprefix("execute_tool ").strip()
    return {
        "name": _text(name),
        "call_id": _text(attrs.get("gen_ai.tool.call.id") or attrs.get("tool_call.id")
                         or attrs.get("tool.call_id") or ""),
        "arguments": _text(attrs.get("gen_ai.tool.call.arguments")
                           or attrs.get("tool_call.function.arguments")
                           or attrs.get("input.value") or ""),
        "result": _text(attrs.get("gen_ai.tool.call.result") or attrs.get("output.value") or ""),
    }


def _last_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("content"):
            return message["content"]
        if message.get("tool_calls"):
            return json.dumps(message["tool_calls"], ensure_ascii=False)
    return ""


# --- assembling a run -------------------------------------------------------------------------

@dataclass
class RunParts:
    """What the spans of one trace contribute, before it becomes a Trace."""

    messages: list[dict] = field(default_factory=list)
    steps: list[trace_pb2.AgentStep] = field(default_factory=list)
    model_spans: list[SpanView] = field(default_factory=list)
    tool_spans: list[SpanView] = field(default_factory=list)


def _conversation(model_spans: list[SpanView], tool_spans: list[SpanView]) -> list[dict]:
    recorded = [(span, *model_messages(span)) for span in model_spans]
    base = next((r for r in reversed(recorded) if r[1]), None)
    if base is not None:
        messages = [*base[1], *base[2]]
        after = base[0].start_ns
    else:
        messages = [m for r in recorded for m in r[2]]
        after = 0
    answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    pending = [c for m in messages for c in m.get("tool_calls", ())
               if c.get("id") and c["id"] not in answered]
    for span in tool_spans:
        if span.start_ns < after:
            continue
        info = tool_info(span)
        call_id = info["call_id"]
        if not call_id:
            match = next((c for c in pending if c["function"]["name"] == info["name"]), None)
            call_id = match["id"] if match else span.span_id
        if call_id in answered:
            continue
        pending = [c for c in pending if c.get("id") != call_id]
        error = _span_error(span)
        content = info["result"] if error is None else \
            f"error: {error.type}: {error.message}".rstrip(": ")
        messages.append({"role": "tool", "tool_call_id": call_id, "name": info["name"],
                         "content": content})
        answered.add(call_id)
    return messages


def _steps(spans: list[SpanView], step_ids: set[str]) -> list[trace_pb2.AgentStep]:
    steps = []
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in step_ids else ""
        if span.kind == MODEL:
            inputs, outputs = model_messages(span)
            steps.append(_step(span, trace_pb2.STEP_KIND_MODEL_CALL, _model_name(span),
                               _last_text(inputs), _last_text(outputs), parent=parent))
        elif span.kind == TOOL:
            info = tool_info(span)
            call = _step(span, trace_pb2.STEP_KIND_TOOL_CALL, info["name"], info["arguments"], "",
                         parent=parent)
            result = _step(span, trace_pb2.STEP_KIND_TOOL_RESULT, info["name"], "", info["result"],
                           step_id=f"{span.span_id}-result", parent=span.span_id)
            result.latency_ms = 0.0
            steps.extend([call, result])
    return steps


def _root(spans: list[SpanView]) -> SpanView | None:
    agents = [s for s in spans if s.kind == AGENT]
    ids = {s.span_id for s in agents}
    outer = [s for s in agents if s.parent_span_id not in ids]
    if outer:
        return min(outer, key=lambda s: s.start_ns)
    parentless = [s for s in spans if not s.parent_span_id]
    return parentless[0] if parentless else None


def _outcome(trace: trace_pb2.Trace, root: SpanView | None) -> None:
    if root is None or not is_genai(root):
        return
    error = _span_error(root)
    if error is not None:
        trace.outcome.status = trace_pb2.OUTCOME_STATUS_FAILURE
        trace.outcome.failure_kind = re.sub(r"[^a-z0-9]+", "_", error.type.lower()).strip("_")[:64]
        trace.outcome.detail = error.message[:MAX_STEP_TEXT]
        failed_tools = [s for s in trace.steps if s.kind == trace_pb2.STEP_KIND_TOOL_CALL
                        and s.status != trace_pb2.STEP_STATUS_OK]
        system = any(s.status == trace_pb2.STEP_STATUS_TIMEOUT or s.error.http_status >= 500
                     for s in failed_tools)
        trace.outcome.failure_source = common_pb2.FAILURE_SOURCE_SYSTEM if system else \
            common_pb2.FAILURE_SOURCE_UNKNOWN
    elif root.status_code == _OK:
        trace.outcome.status = trace_pb2.OUTCOME_STATUS_SUCCESS


def _first_attr(spans: list[SpanView], *keys: str) -> str:
    for span in spans:
        for key in keys:
            value = span.attrs.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
                return str(value)
    return ""


def _tools(spans: list[SpanView]) -> list[common_pb2.ToolDefinition]:
    tools: dict[str, common_pb2.ToolDefinition] = {}
    for span in spans:
        definitions = _list(_json_value(span.attrs.get("gen_ai.tool.definitions")))
        definitions += [t.get("tool", t) for t in _unflatten(span.attrs, "llm.tools.")
                        if isinstance(t, dict)]
        for item in definitions:
            if not isinstance(item, dict):
                continue
            schema = _json_value(item.get("json_schema"))
            function = item.get("function") if isinstance(item.get("function"), dict) else \
                (schema.get("function") if isinstance(schema, dict) and
                 isinstance(schema.get("function"), dict) else item)
            name = _text(function.get("name"))
            if name and name not in tools:
                params = function.get("parameters")
                tools[name] = common_pb2.ToolDefinition(
                    name=name, description=_text(function.get("description")),
                    parameters_json=_text(params) if isinstance(params, (dict, str)) else "")
    return list(tools.values())


def _documents(spans: list[SpanView]) -> list[trace_pb2.ContextDocument]:
    docs = []
    for span in spans:
        if span.kind != RETRIEVAL:
            continue
        items = [d.get("document", d) for d in _unflatten(span.attrs, "retrieval.documents.")
                 if isinstance(d, dict)]
        items += [d for d in _list(_json_value(span.attrs.get("gen_ai.retrieval.documents")))
                  if isinstance(d, dict)]
        for item in items:
            score = item.get("score")
            doc = trace_pb2.ContextDocument(
                id=_text(item.get("id")), content=_text(item.get("content")),
                score=float(score) if isinstance(score, (int, float)) else 0.0)
            metadata = _json_value(item.get("metadata"))
            if isinstance(metadata, dict):
                doc.metadata.update(metadata)
            docs.append(doc)
    return docs


def _tags(trace: trace_pb2.Trace, spans: list[SpanView], genai: list[SpanView]) -> None:
    tags = trace.tags
    service = next((s.resource.get("service.name") for s in spans
                    if isinstance(s.resource.get("service.name"), str)), "")
    if service:
        tags["otel.service_name"] = service[:256]
    for tag, keys in (("gen_ai.agent.name", ("gen_ai.agent.name",)),
                      ("gen_ai.provider.name", ("gen_ai.provider.name", "gen_ai.system",
                                                "llm.provider", "llm.system"))):
        value = _first_attr(genai, *keys)
        if value:
            tags[tag] = value[:256]
    for tag, keys in (("usage.input_tokens", ("gen_ai.usage.input_tokens",
                                              "gen_ai.usage.prompt_tokens",
                                              "llm.token_count.prompt")),
                      ("usage.output_tokens", ("gen_ai.usage.output_tokens",
                                               "gen_ai.usage.completion_tokens",
                                               "llm.token_count.completion"))):
        total = 0
        for span in genai:
            value = next((span.attrs[k] for k in keys if isinstance(span.attrs.get(k), int)), 0)
            total += value
        if total:
            tags[tag] = str(total)
    tags["otlp.spans"] = str(len(genai))


def spans_to_trace(spans: list[SpanView]) -> trace_pb2.Trace:
    """One Trace from the spans of one OTLP trace id (GenAI spans and, for the root, others)."""
    ordered = sorted(spans, key=lambda s: (s.start_ns, s.span_id))
    genai = [s for s in ordered if is_genai(s)]
    model_spans = [s for s in genai if s.kind == MODEL]
    tool_spans = [s for s in genai if s.kind == TOOL]
    root = _root(ordered)
    trace = trace_pb2.Trace(trace_id=ordered[0].trace_id, source=trace_pb2.TRACE_SOURCE_OTLP)
    for message in _conversation(model_spans, tool_spans):
        trace.messages.add(**message)
    if not trace.messages and root is not None and root.kind == AGENT:
        for role, key in (("user", "input.value"), ("assistant", "output.value")):
            if root.attrs.get(key):
                trace.messages.add(role=role, content=_text(root.attrs[key]))
    trace.steps.extend(_steps(genai, {s.span_id for s in model_spans + tool_spans}))
    trace.tools.extend(_tools(model_spans + [s for s in genai if s.kind == AGENT]))
    trace.context_documents.extend(_documents(genai))
    if model_spans:
        last = model_spans[-1]
        trace.model.name = _text(last.attrs.get("gen_ai.request.model")
                                 or last.attrs.get("llm.model_name") or "")
        served = _text(last.attrs.get("gen_ai.response.model") or "")
        if served and served != trace.model.name:
            trace.model.version = served
        trace.request_id = _text(last.attrs.get("gen_ai.response.id") or "")[:256]
    trace.session_id = _first_attr(genai, "gen_ai.conversation.id", "session.id")[:256]
    trace.user_id = _first_attr(genai, "user.id", "enduser.id")[:256]
    start = min(s.start_ns for s in ordered)
    end = max(s.end_ns for s in ordered)
    if root is not None and root.kind == AGENT:
        start, end = root.start_ns, root.end_ns
    if start:
        trace.started_at.CopyFrom(Timestamp(seconds=start // 10**9, nanos=start % 10**9))
    trace.latency_ms = max(0, end - start) / 1e6
    _outcome(trace, root)
    _tags(trace, ordered, genai)
    return trace


@dataclass
class ExportSummary:
    """An export request sorted by trace: the spans per trace id and what was skipped."""

    by_trace: dict[str, list[SpanView]]
    complete: set[str]
    genai_spans: int
    skipped_spans: int


def summarize(spans: list[SpanView]) -> ExportSummary:
    """Group GenAI spans by trace id; a trace is complete when its local root span is present.

    A trace that has no GenAI span is not listed; its non-GenAI spans count as skipped. Roots
    that are not GenAI still mark their trace complete.
    """
    by_trace: dict[str, list[SpanView]] = {}
    complete: set[str] = set()
    skipped = genai = 0
    for span in spans:
        if is_genai(span):
            by_trace.setdefault(span.trace_id, []).append(span)
            genai += 1
        else:
            skipped += 1
        if not span.parent_span_id:
            complete.add(span.trace_id)
    return ExportSummary(by_trace, complete, genai, skipped)
