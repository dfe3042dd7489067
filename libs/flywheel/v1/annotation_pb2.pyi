import datetime

from flywheel.v1 import common_pb2 as _common_pb2
from flywheel.v1 import envelope_pb2 as _envelope_pb2
from flywheel.v1 import trace_pb2 as _trace_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnnotationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANNOTATION_KIND_UNSPECIFIED: _ClassVar[AnnotationKind]
    ANNOTATION_KIND_RATE: _ClassVar[AnnotationKind]
    ANNOTATION_KIND_CORRECT: _ClassVar[AnnotationKind]
    ANNOTATION_KIND_PAIRWISE: _ClassVar[AnnotationKind]
    ANNOTATION_KIND_CLASSIFY_FAILURE: _ClassVar[AnnotationKind]

class LabellerType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABELLER_TYPE_UNSPECIFIED: _ClassVar[LabellerType]
    LABELLER_TYPE_HUMAN: _ClassVar[LabellerType]
    LABELLER_TYPE_JUDGE: _ClassVar[LabellerType]
    LABELLER_TYPE_TEACHER: _ClassVar[LabellerType]
    LABELLER_TYPE_REVIEWER: _ClassVar[LabellerType]
ANNOTATION_KIND_UNSPECIFIED: AnnotationKind
ANNOTATION_KIND_RATE: AnnotationKind
ANNOTATION_KIND_CORRECT: AnnotationKind
ANNOTATION_KIND_PAIRWISE: AnnotationKind
ANNOTATION_KIND_CLASSIFY_FAILURE: AnnotationKind
LABELLER_TYPE_UNSPECIFIED: LabellerType
LABELLER_TYPE_HUMAN: LabellerType
LABELLER_TYPE_JUDGE: LabellerType
LABELLER_TYPE_TEACHER: LabellerType
LABELLER_TYPE_REVIEWER: LabellerType

class AnnotationTask(_message.Message):
    __slots__ = ("envelope", "task_id", "trace_id", "decision_id", "kind", "priority", "required_annotators", "guideline_version", "reasons", "intent", "trace", "candidates")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_ANNOTATORS_FIELD_NUMBER: _ClassVar[int]
    GUIDELINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    task_id: str
    trace_id: str
    decision_id: str
    kind: AnnotationKind
    priority: float
    required_annotators: int
    guideline_version: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    intent: str
    trace: _trace_pb2.Trace
    candidates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Answer]
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., task_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., decision_id: _Optional[str] = ..., kind: _Optional[_Union[AnnotationKind, str]] = ..., priority: _Optional[float] = ..., required_annotators: _Optional[int] = ..., guideline_version: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., intent: _Optional[str] = ..., trace: _Optional[_Union[_trace_pb2.Trace, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[_common_pb2.Answer, _Mapping]]] = ...) -> None: ...

class Labeller(_message.Message):
    __slots__ = ("id", "type", "model_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: LabellerType
    model_name: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[LabellerType, str]] = ..., model_name: _Optional[str] = ...) -> None: ...

class AnnotationLabel(_message.Message):
    __slots__ = ("envelope", "label_id", "task_id", "trace_id", "kind", "labeller", "rating", "corrected_messages", "choice", "failure_source", "failure_kind", "unusable", "reason", "guideline_version", "is_final", "prompt_version", "labelled_at")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABELLER_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_KIND_FIELD_NUMBER: _ClassVar[int]
    UNUSABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    GUIDELINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELLED_AT_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    label_id: str
    task_id: str
    trace_id: str
    kind: AnnotationKind
    labeller: Labeller
    rating: int
    corrected_messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    choice: _common_pb2.Choice
    failure_source: _common_pb2.FailureSource
    failure_kind: str
    unusable: bool
    reason: str
    guideline_version: str
    is_final: bool
    prompt_version: str
    labelled_at: _timestamp_pb2.Timestamp
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., label_id: _Optional[str] = ..., task_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., kind: _Optional[_Union[AnnotationKind, str]] = ..., labeller: _Optional[_Union[Labeller, _Mapping]] = ..., rating: _Optional[int] = ..., corrected_messages: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., choice: _Optional[_Union[_common_pb2.Choice, str]] = ..., failure_source: _Optional[_Union[_common_pb2.FailureSource, str]] = ..., failure_kind: _Optional[str] = ..., unusable: _Optional[bool] = ..., reason: _Optional[str] = ..., guideline_version: _Optional[str] = ..., is_final: _Optional[bool] = ..., prompt_version: _Optional[str] = ..., labelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
