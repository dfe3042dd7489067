import datetime

from flywheel.v1 import common_pb2 as _common_pb2
from flywheel.v1 import envelope_pb2 as _envelope_pb2
from flywheel.v1 import feedback_pb2 as _feedback_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TraceSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRACE_SOURCE_UNSPECIFIED: _ClassVar[TraceSource]
    TRACE_SOURCE_GATEWAY: _ClassVar[TraceSource]
    TRACE_SOURCE_OTLP: _ClassVar[TraceSource]
    TRACE_SOURCE_SERVING: _ClassVar[TraceSource]
    TRACE_SOURCE_SDK: _ClassVar[TraceSource]

class StepKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_KIND_UNSPECIFIED: _ClassVar[StepKind]
    STEP_KIND_PLAN: _ClassVar[StepKind]
    STEP_KIND_MODEL_CALL: _ClassVar[StepKind]
    STEP_KIND_TOOL_CALL: _ClassVar[StepKind]
    STEP_KIND_TOOL_RESULT: _ClassVar[StepKind]

class StepStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATUS_UNSPECIFIED: _ClassVar[StepStatus]
    STEP_STATUS_OK: _ClassVar[StepStatus]
    STEP_STATUS_ERROR: _ClassVar[StepStatus]
    STEP_STATUS_TIMEOUT: _ClassVar[StepStatus]

class OutcomeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_STATUS_UNSPECIFIED: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_SUCCESS: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_FAILURE: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_UNKNOWN: _ClassVar[OutcomeStatus]
TRACE_SOURCE_UNSPECIFIED: TraceSource
TRACE_SOURCE_GATEWAY: TraceSource
TRACE_SOURCE_OTLP: TraceSource
TRACE_SOURCE_SERVING: TraceSource
TRACE_SOURCE_SDK: TraceSource
STEP_KIND_UNSPECIFIED: StepKind
STEP_KIND_PLAN: StepKind
STEP_KIND_MODEL_CALL: StepKind
STEP_KIND_TOOL_CALL: StepKind
STEP_KIND_TOOL_RESULT: StepKind
STEP_STATUS_UNSPECIFIED: StepStatus
STEP_STATUS_OK: StepStatus
STEP_STATUS_ERROR: StepStatus
STEP_STATUS_TIMEOUT: StepStatus
OUTCOME_STATUS_UNSPECIFIED: OutcomeStatus
OUTCOME_STATUS_SUCCESS: OutcomeStatus
OUTCOME_STATUS_FAILURE: OutcomeStatus
OUTCOME_STATUS_UNKNOWN: OutcomeStatus

class ContextDocument(_message.Message):
    __slots__ = ("id", "title", "content", "score", "source", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    content: str
    score: float
    source: str
    metadata: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., content: _Optional[str] = ..., score: _Optional[float] = ..., source: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class StepError(_message.Message):
    __slots__ = ("type", "message", "http_status")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    http_status: int
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., http_status: _Optional[int] = ...) -> None: ...

class AgentStep(_message.Message):
    __slots__ = ("step_id", "kind", "name", "input", "output", "status", "error", "latency_ms", "started_at", "parent_step_id")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    PARENT_STEP_ID_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    kind: StepKind
    name: str
    input: str
    output: str
    status: StepStatus
    error: StepError
    latency_ms: float
    started_at: _timestamp_pb2.Timestamp
    parent_step_id: str
    def __init__(self, step_id: _Optional[str] = ..., kind: _Optional[_Union[StepKind, str]] = ..., name: _Optional[str] = ..., input: _Optional[str] = ..., output: _Optional[str] = ..., status: _Optional[_Union[StepStatus, str]] = ..., error: _Optional[_Union[StepError, _Mapping]] = ..., latency_ms: _Optional[float] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., parent_step_id: _Optional[str] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("status", "failure_source", "failure_kind", "detail")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    status: OutcomeStatus
    failure_source: _common_pb2.FailureSource
    failure_kind: str
    detail: str
    def __init__(self, status: _Optional[_Union[OutcomeStatus, str]] = ..., failure_source: _Optional[_Union[_common_pb2.FailureSource, str]] = ..., failure_kind: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class SampledAnswer(_message.Message):
    __slots__ = ("text", "mean_logprob")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEAN_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    text: str
    mean_logprob: float
    def __init__(self, text: _Optional[str] = ..., mean_logprob: _Optional[float] = ...) -> None: ...

class LogprobStats(_message.Message):
    __slots__ = ("token_count", "mean_logprob", "min_logprob", "mean_entropy", "samples")
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    MIN_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    MEAN_ENTROPY_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    token_count: int
    mean_logprob: float
    min_logprob: float
    mean_entropy: float
    samples: _containers.RepeatedCompositeFieldContainer[SampledAnswer]
    def __init__(self, token_count: _Optional[int] = ..., mean_logprob: _Optional[float] = ..., min_logprob: _Optional[float] = ..., mean_entropy: _Optional[float] = ..., samples: _Optional[_Iterable[_Union[SampledAnswer, _Mapping]]] = ...) -> None: ...

class Trace(_message.Message):
    __slots__ = ("envelope", "trace_id", "session_id", "user_id", "app_id", "request_id", "source", "model", "messages", "tools", "context_documents", "steps", "outcome", "feedback", "logprobs", "tags", "started_at", "latency_ms")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    trace_id: str
    session_id: str
    user_id: str
    app_id: str
    request_id: str
    source: TraceSource
    model: _common_pb2.ModelRef
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    tools: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolDefinition]
    context_documents: _containers.RepeatedCompositeFieldContainer[ContextDocument]
    steps: _containers.RepeatedCompositeFieldContainer[AgentStep]
    outcome: Outcome
    feedback: _containers.RepeatedCompositeFieldContainer[_feedback_pb2.Feedback]
    logprobs: LogprobStats
    tags: _containers.ScalarMap[str, str]
    started_at: _timestamp_pb2.Timestamp
    latency_ms: float
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., trace_id: _Optional[str] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., app_id: _Optional[str] = ..., request_id: _Optional[str] = ..., source: _Optional[_Union[TraceSource, str]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., tools: _Optional[_Iterable[_Union[_common_pb2.ToolDefinition, _Mapping]]] = ..., context_documents: _Optional[_Iterable[_Union[ContextDocument, _Mapping]]] = ..., steps: _Optional[_Iterable[_Union[AgentStep, _Mapping]]] = ..., outcome: _Optional[_Union[Outcome, _Mapping]] = ..., feedback: _Optional[_Iterable[_Union[_feedback_pb2.Feedback, _Mapping]]] = ..., logprobs: _Optional[_Union[LogprobStats, _Mapping]] = ..., tags: _Optional[_Mapping[str, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latency_ms: _Optional[float] = ...) -> None: ...
