"""Strict decoding and validation of traces and feedback (pure: no I/O).

Two layers:

1. **JSON -> message** (:func:`message_from_json`): the Protobuf JSON mapping, strictly. Unknown
   fields, wrong types, unknown enum names and bad timestamps are errors, each reported with
   its path (``traces[3].messages[1].role``). A typo such as ``mesages`` is refused rather
   than silently dropped. The fast path hands the dict to the C constructor of the generated
   class; when that refuses the input (or the input uses lowerCamelCase names or string
   integers, which the JSON mapping allows), a descriptor-driven walker parses it again and
   collects every problem with its path.
2. **Semantic checks** (:func:`check_trace`, :func:`check_feedback_event`) on messages, so JSON
   and binary Protobuf input obey the same rules: roles, tool-call pairing fields, 1-7 ratings,
   feedback kinds with the fields they need, id formats, sizes.

Ids: a trace without ``trace_id`` (or feedback without ``feedback_id``) gets a uuid4, which the
gateway returns; clients that may retry should send their own id, since idempotency keys on it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from flywheel.v1 import feedback_pb2, trace_pb2

from .errors import FieldIssue, InvalidInput

MAX_ISSUES = 50
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+=\-]{0,127}$")
ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_TAGS = 64
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 2048
MAX_SHORT_TEXT = 256

_FD = FieldDescriptor
_INT32 = {_FD.TYPE_INT32, _FD.TYPE_SINT32, _FD.TYPE_SFIXED32}
_UINT32 = {_FD.TYPE_UINT32, _FD.TYPE_FIXED32}
_INT64 = {_FD.TYPE_INT64, _FD.TYPE_SINT64, _FD.TYPE_SFIXED64}
_UINT64 = {_FD.TYPE_UINT64, _FD.TYPE_FIXED64}
_RANGES = {
    **{t: (-(2**31), 2**31 - 1) for t in _INT32},
    **{t: (0, 2**32 - 1) for t in _UINT32},
    **{t: (-(2**63), 2**63 - 1) for t in _INT64},
    **{t: (0, 2**64 - 1) for t in _UINT64},
}
_FLOATS = {_FD.TYPE_FLOAT, _FD.TYPE_DOUBLE}
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_INT_TEXT = re.compile(r"^-?\d+$")
_FLOAT_TEXT = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_BAD = object()


class _Issues(list):
    """Collected issues; stops growing at MAX_ISSUES. ``filled`` is set when a check filled in
    a field of the message it checked (an inferred feedback kind)."""

    filled = False

    def add(self, path: str, message: str) -> None:
        if len(self) < MAX_ISSUES:
            self.append(FieldIssue(path, message))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- layer 1a: the descriptor-driven walker (authoritative, reports paths) -----------------

@lru_cache(maxsize=None)
def _field_index(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    index: dict[str, FieldDescriptor] = {}
    for fd in descriptor.fields:
        index[fd.name] = fd
        index[fd.json_name] = fd
    return index


def _enum_value(enum: EnumDescriptor, value: Any) -> Any:
    if isinstance(value, str):
        found = enum.values_by_name.get(value)
        return found.number if found is not None else _BAD
    if isinstance(value, int) and not isinstance(value, bool) and value in enum.values_by_number:
        return value
    return _BAD


def _enum_hint(enum: EnumDescriptor) -> str:
    names = [v.name for v in enum.values]
    return f"expected one of {', '.join(names[:12])}{', ...' if len(names) > 12 else ''}"


def _scalar(fd: FieldDescriptor, value: Any, path: str, issues: _Issues) -> Any:
    kind = fd.type
    if kind == _FD.TYPE_STRING:
        if isinstance(value, str):
            return value
        issues.add(path, "expected a string")
    elif kind == _FD.TYPE_BOOL:
        if isinstance(value, bool):
            return value
        issues.add(path, "expected true or false")
    elif kind in _RANGES:
        number = _BAD
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INT_TEXT.match(value):
            number = int(value)
        low, high = _RANGES[kind]
        if number is not _BAD and low <= number <= high:
            return number
        issues.add(path, f"expected an integer between {low} and {high}")
    elif kind in _FLOATS:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        if isinstance(value, str) and _FLOAT_TEXT.match(value):
            return float(value)
        issues.add(path, "expected a number")
    elif kind == _FD.TYPE_ENUM:
        number = _enum_value(fd.enum_type, value)
        if number is not _BAD:
            return number
        issues.add(path, _enum_hint(fd.enum_type))
    elif kind == _FD.TYPE_BYTES:
        if isinstance(value, str):
            try:
                return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_"
                                        if ("-" in value or "_" in value) else None,
                                        validate=True)
            except (binascii.Error, ValueError):
                pass
        issues.add(path, "expected base64 text")
    return _BAD


def _well_known(value: Any, target: Message, path: str, issues: _Issues) -> None:
    name = target.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        if isinstance(value, str):
            try:
                target.FromJsonString(value)
                return
            except ValueError:
                pass
        issues.add(path, "expected an RFC 3339 timestamp such as 2025-01-31T12:00:00Z")
        return
    if name == "google.protobuf.Struct" and not isinstance(value, dict):
        issues.add(path, "expected a JSON object")
        return
    try:
        json_format.ParseDict(value, target)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        issues.add(path, f"invalid {name.rpartition('.')[2]}: {exc}")


def _is_well_known(descriptor: Descriptor) -> bool:
    return descriptor.file.name.startswith("google/protobuf/")


def _walk_message(obj: Any, msg: Message, path: str, issues: _Issues) -> None:
    if not isinstance(obj, dict):
        issues.add(path or "$", "expected a JSON object")
        return
    index = _field_index(msg.DESCRIPTOR)
    seen: set[str] = set()
    for key, value in obj.items():
        here = _join(path, str(key))
        fd = index.get(key) if isinstance(key, str) else None
        if fd is None:
            issues.add(here, "unknown field")
            continue
        if fd.name in seen:
            issues.add(here, "field given twice (proto and JSON names)")
            continue
        seen.add(fd.name)
        if value is None:  # the JSON mapping reads null as "not set"
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            _walk_map(value, msg, fd, here, issues)
        elif fd.is_repeated:
            _walk_repeated(value, msg, fd, here, issues)
        elif fd.message_type is not None:
            sub = getattr(msg, fd.name)
            sub.SetInParent()
            if _is_well_known(fd.message_type):
                _well_known(value, sub, here, issues)
            else:
                _walk_message(value, sub, here, issues)
        else:
            scalar = _scalar(fd, value, here, issues)
            if scalar is not _BAD:
                setattr(msg, fd.name, scalar)


def _walk_repeated(value: Any, msg: Message, fd: FieldDescriptor, path: str,
                   issues: _Issues) -> None:
    if not isinstance(value, list):
        issues.add(path, "expected a JSON array")
        return
    container = getattr(msg, fd.name)
    for i, item in enumerate(value):
        here = f"{path}[{i}]"
        if fd.message_type is not None:
            sub = container.add()
            if _is_well_known(fd.message_type):
                _well_known(item, sub, here, issues)
            else:
                _walk_message(item, sub, here, issues)
        elif item is None:
            issues.add(here, "null is not allowed in an array")
        else:
            scalar = _scalar(fd, item, here, issues)
            if scalar is not _BAD:
                container.append(scalar)


def _walk_map(value: Any, msg: Message, fd: FieldDescriptor, path: str, issues: _Issues) -> None:
    if not isinstance(value, dict):
        issues.add(path, "expected a JSON object")
        return
    key_fd = fd.message_type.fields_by_name["key"]
    value_fd = fd.message_type.fields_by_name["value"]
    container = getattr(msg, fd.name)
    for raw_key, item in value.items():
        here = f"{path}.{raw_key}"
        key = raw_key if key_fd.type == _FD.TYPE_STRING else _scalar(key_fd, raw_key, here, issues)
        if key is _BAD:
            continue
        if value_fd.message_type is not None:
            _walk_message(item, container[key], here, issues)
        else:
            scalar = _scalar(value_fd, item, here, issues)
            if scalar is not _BAD:
                container[key] = scalar


# --- layer 1b: the fast path through the C constructor --------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SECOND = timedelta(seconds=1)


def _timestamp(value: Any) -> Timestamp:
    """An RFC 3339 string as a Timestamp message (exact to the microsecond; finer precision is
    left to the exact parser of the walker)."""
    if not isinstance(value, str) or len(value) < 20 or value[10] != "T":
        raise ValueError("not an RFC 3339 timestamp")
    if value[19] == "." and len(value.rstrip("Z")) > 26 and value[26].isdigit():
        raise ValueError("sub-microsecond precision: leave it to the exact parser")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("timestamp without offset")
    return Timestamp(seconds=(parsed - _EPOCH) // _SECOND, nanos=parsed.microsecond * 1000)


def _convert_timestamps(obj: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in obj and obj[key] is not None:
            obj[key] = _timestamp(obj[key])


def _prepare_trace(obj: dict) -> dict:
    """A copy of a JSON trace that the generated constructor accepts (timestamps as datetimes)."""
    out = dict(obj)
    out.pop("envelope", None)  # the gateway stamps its own
    _convert_timestamps(out, ("started_at",))
    for key in ("steps", "feedback"):
        items = out.get(key)
        if isinstance(items, list) and items:
            items = [dict(i) if isinstance(i, dict) else i for i in items]
            for item in items:
                if isinstance(item, dict):
                    _convert_timestamps(item, ("started_at", "given_at"))
            out[key] = items
    return out


def _prepare_feedback_event(obj: dict) -> dict:
    out = dict(obj)
    out.pop("envelope", None)
    feedback = out.get("feedback")
    if isinstance(feedback, dict) and feedback.get("given_at") is not None:
        feedback = dict(feedback)
        _convert_timestamps(feedback, ("given_at",))
        out["feedback"] = feedback
    return out


_PREPARE: dict[str, Callable[[dict], dict]] = {
    trace_pb2.Trace.DESCRIPTOR.full_name: _prepare_trace,
    feedback_pb2.FeedbackEvent.DESCRIPTOR.full_name: _prepare_feedback_event,
}


def _fast(obj: dict, cls: type[Message]) -> Message | None:
    prepare = _PREPARE.get(cls.DESCRIPTOR.full_name)
    if prepare is None:
        return None
    try:
        return cls(**prepare(obj))
    except Exception:  # noqa: BLE001 - any refusal: the walker finds and reports the problem
        return None


def message_from_json(obj: Any, cls: type[Message], path: str = "") -> Message:
    """Build a ``cls`` message from a decoded JSON value, strictly (Protobuf JSON mapping).

    A client-supplied ``envelope`` is ignored: the gateway stamps every event itself.

    Raises:
        InvalidInput: every problem found, each with its path below ``path``.
    """
    if isinstance(obj, dict):
        msg = _fast(obj, cls)
        if msg is not None:
            return msg
    issues = _Issues()
    msg = cls()
    if isinstance(obj, dict) and "envelope" in obj:
        obj = {k: v for k, v in obj.items() if k != "envelope"}
    _walk_message(obj, msg, path, issues)
    if issues:
        raise InvalidInput(list(issues))
    return msg


# --- layer 2: semantic checks on messages ----------------------------------------------------
# Paths are only built when something is wrong: a valid trace costs field reads and compares.

_ID_TEXT = ("expected 1-128 characters: letters, digits and ._:/@+=- "
            "(starting with a letter or digit)")
_FINITE = "expected a finite number >= 0"
_ROLE_SET = frozenset(ROLES)
_STEP_KINDS = frozenset(trace_pb2.StepKind.values()) - {trace_pb2.STEP_KIND_UNSPECIFIED}
_STEP_STATUSES = frozenset(trace_pb2.StepStatus.values())
_SOURCES = frozenset(trace_pb2.TraceSource.values())
_FEEDBACK_KINDS = frozenset(feedback_pb2.FeedbackKind.values())
_THUMBS = frozenset(feedback_pb2.Thumbs.values())


@lru_cache(maxsize=None)
def _enum_numbers(descriptor: Descriptor, name: str) -> frozenset[int]:
    return frozenset(descriptor.fields_by_name[name].enum_type.values_by_number)


def _bad_enum(msg: Message, name: str) -> bool:
    return getattr(msg, name) not in _enum_numbers(msg.DESCRIPTOR, name)


def _enum_issue(msg: Message, name: str, path: str, issues: _Issues) -> None:
    issues.add(_join(path, name), _enum_hint(msg.DESCRIPTOR.fields_by_name[name].enum_type))


def _check_id(value: str, path: str, issues: _Issues, *, required: bool = False) -> None:
    if not value:
        if required:
            issues.add(path, "required")
    elif not ID_PATTERN.match(value):
        issues.add(path, _ID_TEXT)


def _finite(value: float) -> bool:
    return value >= 0 and value != math.inf  # NaN fails the first comparison


def _messages_ok(messages: Any) -> bool:
    """True when every message passes :func:`_check_message` (one loop, no paths built: the
    common case; the per-message checks then run only to say what is wrong)."""
    for msg in messages:
        role = msg.role
        if role == "tool":
            if not msg.tool_call_id:
                return False
        elif role not in _ROLE_SET:
            return False
        if len(msg.name) > MAX_SHORT_TEXT:
            return False
        calls = msg.tool_calls
        if calls:
            if role != "assistant":
                return False
            for call in calls:
                call_id, name = call.id, call.function.name
                if not call_id or not name or len(call_id) > MAX_SHORT_TEXT or \
                        len(name) > MAX_SHORT_TEXT or call.type not in ("", "function"):
                    return False
    return True


def _steps_ok(steps: Any) -> bool:
    """True when every step passes :func:`_check_step` (see :func:`_messages_ok`)."""
    kinds, statuses, inf = _STEP_KINDS, _STEP_STATUSES, math.inf
    for step in steps:
        latency = step.latency_ms
        if step.kind not in kinds or step.status not in statuses or not latency >= 0 or \
                latency == inf or len(step.step_id) > MAX_SHORT_TEXT or \
                len(step.parent_step_id) > MAX_SHORT_TEXT or len(step.name) > MAX_SHORT_TEXT:
            return False
    return True


def _check_message(msg: Message, prefix: str, index: int, issues: _Issues) -> None:
    """What is wrong with one message (run when :func:`_messages_ok` found something)."""
    role = msg.role
    calls = msg.tool_calls
    path = f"{prefix}[{index}]"
    if role not in _ROLE_SET:
        issues.add(f"{path}.role", f"expected one of {', '.join(ROLES)}")
    if len(msg.name) > MAX_SHORT_TEXT:
        issues.add(f"{path}.name", f"longer than {MAX_SHORT_TEXT} characters")
    if role == "tool" and not msg.tool_call_id:
        issues.add(f"{path}.tool_call_id", "required for a tool message")
    if not calls:
        return
    if role != "assistant":
        issues.add(f"{path}.tool_calls", "only assistant messages make tool calls")
    for j, call in enumerate(calls):
        call_id, kind, name = call.id, call.type, call.function.name
        if call_id and kind in ("", "function") and name and len(call_id) <= MAX_SHORT_TEXT \
                and len(name) <= MAX_SHORT_TEXT:
            continue
        here = f"{path}.tool_calls[{j}]"
        if not call_id or len(call_id) > MAX_SHORT_TEXT:
            issues.add(f"{here}.id", "required, at most 256 characters")
        if kind not in ("", "function"):
            issues.add(f"{here}.type", "expected \"function\"")
        if not name or len(name) > MAX_SHORT_TEXT:
            issues.add(f"{here}.function.name", "required, at most 256 characters")


def _check_step(step: Message, prefix: str, index: int, issues: _Issues) -> None:
    """What is wrong with one step (run when :func:`_steps_ok` found something)."""
    path = f"{prefix}[{index}]"
    if step.kind == trace_pb2.STEP_KIND_UNSPECIFIED:
        issues.add(f"{path}.kind", "required (STEP_KIND_MODEL_CALL, STEP_KIND_TOOL_CALL, ...)")
    elif _bad_enum(step, "kind"):
        _enum_issue(step, "kind", path, issues)
    if _bad_enum(step, "status"):
        _enum_issue(step, "status", path, issues)
    for name in ("step_id", "parent_step_id", "name"):
        if len(getattr(step, name)) > MAX_SHORT_TEXT:
            issues.add(f"{path}.{name}", f"longer than {MAX_SHORT_TEXT} characters")
    if not _finite(step.latency_ms):
        issues.add(f"{path}.latency_ms", _FINITE)


def _ratings_ok(ratings: Message) -> bool:
    return 0 <= ratings.helpfulness <= 7 and 0 <= ratings.correctness <= 7 and \
        0 <= ratings.style <= 7


def _check_ratings(ratings: Message, path: str, issues: _Issues) -> None:
    for name in ("helpfulness", "correctness", "style"):
        value = getattr(ratings, name)
        if not 0 <= value <= 7:
            issues.add(_join(path, name), "expected 1-7 (0 or absent: not rated)")


_FEEDBACK_NEEDS: dict[int, tuple[str, Callable[[Message], bool]]] = {
    feedback_pb2.FEEDBACK_KIND_THUMBS: (
        "thumbs", lambda f: f.thumbs in (feedback_pb2.THUMBS_UP, feedback_pb2.THUMBS_DOWN)),
    feedback_pb2.FEEDBACK_KIND_RATING: (
        "ratings", lambda f: any((f.ratings.helpfulness, f.ratings.correctness, f.ratings.style))),
    feedback_pb2.FEEDBACK_KIND_COMMENT: ("comment", lambda f: bool(f.comment.strip())),
    feedback_pb2.FEEDBACK_KIND_CORRECTION: (
        "corrected_answer", lambda f: bool(f.corrected_answer.strip())),
    feedback_pb2.FEEDBACK_KIND_PREFERENCE: (
        "preference.chosen", lambda f: f.preference.chosen != 0),
}
_NEED_TEXT = {
    "thumbs": "THUMBS_UP or THUMBS_DOWN",
    "ratings": "at least one rating from 1 to 7",
    "comment": "a non-empty comment",
    "corrected_answer": "a non-empty corrected answer",
    "preference.chosen": "CHOICE_A, CHOICE_B or CHOICE_TIE",
}


def infer_feedback_kind(feedback: Message) -> int:
    """The kind implied by the one populated field, or UNSPECIFIED when that is ambiguous."""
    kinds = [kind for kind, (_, present) in _FEEDBACK_NEEDS.items() if present(feedback)]
    return kinds[0] if len(kinds) == 1 else feedback_pb2.FEEDBACK_KIND_UNSPECIFIED


def _check_feedback(feedback: Message, path: str, issues: _Issues) -> None:
    kind = feedback.kind
    if kind in _FEEDBACK_KINDS and kind != feedback_pb2.FEEDBACK_KIND_UNSPECIFIED and \
            kind != feedback_pb2.FEEDBACK_KIND_PREFERENCE and feedback.thumbs in _THUMBS and \
            (not feedback.HasField("ratings") or _ratings_ok(feedback.ratings)):
        need = _FEEDBACK_NEEDS.get(kind)
        if need is None or need[1](feedback):
            return  # the common, valid case; the full check below says what is wrong
    if feedback.kind == feedback_pb2.FEEDBACK_KIND_UNSPECIFIED:
        feedback.kind = infer_feedback_kind(feedback)
        issues.filled = True
        if feedback.kind == feedback_pb2.FEEDBACK_KIND_UNSPECIFIED:
            issues.add(_join(path, "kind"), "required (FEEDBACK_KIND_THUMBS, ..._RATING, "
                                             "..._COMMENT, ..._CORRECTION, ..._REGENERATE, "
                                             "..._REPHRASE, ..._PREFERENCE, ..._ABANDON)")
    for name in ("kind", "thumbs"):
        if _bad_enum(feedback, name):
            _enum_issue(feedback, name, path, issues)
    if feedback.HasField("ratings"):
        _check_ratings(feedback.ratings, _join(path, "ratings"), issues)
    need = _FEEDBACK_NEEDS.get(feedback.kind)
    if need is not None and not need[1](feedback):
        issues.add(_join(path, need[0]), f"required for this kind: {_NEED_TEXT[need[0]]}")
    if feedback.kind == feedback_pb2.FEEDBACK_KIND_PREFERENCE:
        if _bad_enum(feedback.preference, "chosen"):
            _enum_issue(feedback.preference, "chosen", _join(path, "preference"), issues)
        _check_id(feedback.preference.request_id, _join(path, "preference.request_id"), issues,
                  required=True)


def _check_tags(tags: Any, path: str, issues: _Issues) -> None:
    if len(tags) <= MAX_TAGS and all(0 < len(k) <= MAX_TAG_KEY and len(v) <= MAX_TAG_VALUE
                                     for k, v in tags.items()):
        return
    if len(tags) > MAX_TAGS:
        issues.add(path, f"at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if not key or len(key) > MAX_TAG_KEY:
            issues.add(f"{path}.{key}", f"tag names are 1-{MAX_TAG_KEY} characters")
        if len(value) > MAX_TAG_VALUE:
            issues.add(f"{path}.{key}", f"tag values are at most {MAX_TAG_VALUE} characters")


def _check_tools(tools: Any, path: str, issues: _Issues) -> None:
    for i, tool in enumerate(tools):
        name, params = tool.name, tool.parameters_json
        if not name or len(name) > MAX_SHORT_TEXT:
            issues.add(f"{_join(path, 'tools')}[{i}].name", "required, at most 256 characters")
        if params and not (params[0] == "{" and _is_json_object(params)):
            issues.add(f"{_join(path, 'tools')}[{i}].parameters_json",
                       "expected a JSON object as text")


@lru_cache(maxsize=1024)  # an app sends the same tool schemas with every trace
def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def check_trace(trace: Message, path: str = "") -> list[FieldIssue]:
    """Problems with a decoded trace (empty when valid). Fills in what it may decide: the
    feedback kind implied by its content (the returned list's ``filled`` is then true)."""
    issues = _Issues()
    if trace.trace_id:
        _check_id(trace.trace_id, _join(path, "trace_id"), issues)
    for name in ("session_id", "user_id", "request_id"):
        if len(getattr(trace, name)) > MAX_SHORT_TEXT:
            issues.add(_join(path, name), f"longer than {MAX_SHORT_TEXT} characters")
    if trace.source not in _SOURCES:
        _enum_issue(trace, "source", path, issues)
    messages, steps = trace.messages, trace.steps
    if not messages and not steps:
        issues.add(_join(path, "messages"), "a trace needs at least one message or step")
    if messages and not _messages_ok(messages):
        prefix = _join(path, "messages")
        for i, message in enumerate(messages):
            _check_message(message, prefix, i, issues)
    tools = trace.tools
    if tools:
        _check_tools(tools, path, issues)
    if steps and not _steps_ok(steps):
        prefix = _join(path, "steps")
        for i, step in enumerate(steps):
            _check_step(step, prefix, i, issues)
    if trace.HasField("outcome"):
        for name in ("status", "failure_source"):
            if _bad_enum(trace.outcome, name):
                _enum_issue(trace.outcome, name, _join(path, "outcome"), issues)
    feedbacks = trace.feedback
    if feedbacks:
        prefix = _join(path, "feedback")
        for i, feedback in enumerate(feedbacks):
            _check_feedback(feedback, f"{prefix}[{i}]", issues)
    tags = trace.tags
    if tags:
        _check_tags(tags, _join(path, "tags"), issues)
    if not _finite(trace.latency_ms):
        issues.add(_join(path, "latency_ms"), _FINITE)
    return issues


def check_feedback_event(event: Message, path: str = "") -> list[FieldIssue]:
    """Problems with a decoded feedback event (empty when valid); infers an unset kind (the
    returned list's ``filled`` is then true)."""
    issues = _Issues()
    _check_id(event.trace_id, _join(path, "trace_id"), issues, required=True)
    _check_id(event.feedback_id, _join(path, "feedback_id"), issues)
    for name in ("user_id", "request_id"):
        if len(getattr(event, name)) > MAX_SHORT_TEXT:
            issues.add(_join(path, name), f"longer than {MAX_SHORT_TEXT} characters")
    if not event.HasField("feedback"):
        issues.add(_join(path, "feedback"), "required")
    else:
        _check_feedback(event.feedback, _join(path, "feedback"), issues)
    return issues


def ensure_id(current: str) -> tuple[str, bool]:
    """``(id, generated)``: the given id, or a new uuid4 when empty."""
    return (current, False) if current else (str(uuid.uuid4()), True)
