from flywheel.v1 import common_pb2 as _common_pb2
from flywheel.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvalKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVAL_KIND_UNSPECIFIED: _ClassVar[EvalKind]
    EVAL_KIND_MODEL: _ClassVar[EvalKind]
    EVAL_KIND_SYSTEM: _ClassVar[EvalKind]
EVAL_KIND_UNSPECIFIED: EvalKind
EVAL_KIND_MODEL: EvalKind
EVAL_KIND_SYSTEM: EvalKind

class Lineage(_message.Message):
    __slots__ = ("trace_ids", "topic", "partition", "offset", "labeller_ids", "user_ids", "event_ids")
    TRACE_IDS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LABELLER_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    trace_ids: _containers.RepeatedScalarFieldContainer[str]
    topic: str
    partition: int
    offset: int
    labeller_ids: _containers.RepeatedScalarFieldContainer[str]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, trace_ids: _Optional[_Iterable[str]] = ..., topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., labeller_ids: _Optional[_Iterable[str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., event_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LossMask(_message.Message):
    __slots__ = ("message_index", "char_start", "char_end", "weight")
    MESSAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHAR_START_FIELD_NUMBER: _ClassVar[int]
    CHAR_END_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    message_index: int
    char_start: int
    char_end: int
    weight: float
    def __init__(self, message_index: _Optional[int] = ..., char_start: _Optional[int] = ..., char_end: _Optional[int] = ..., weight: _Optional[float] = ...) -> None: ...

class SftExample(_message.Message):
    __slots__ = ("envelope", "example_id", "content_hash", "messages", "tools", "masks", "source", "transforms", "intent", "lineage")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    MASKS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMS_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    example_id: str
    content_hash: str
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    tools: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolDefinition]
    masks: _containers.RepeatedCompositeFieldContainer[LossMask]
    source: str
    transforms: _containers.RepeatedScalarFieldContainer[str]
    intent: str
    lineage: Lineage
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., example_id: _Optional[str] = ..., content_hash: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., tools: _Optional[_Iterable[_Union[_common_pb2.ToolDefinition, _Mapping]]] = ..., masks: _Optional[_Iterable[_Union[LossMask, _Mapping]]] = ..., source: _Optional[str] = ..., transforms: _Optional[_Iterable[str]] = ..., intent: _Optional[str] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ...) -> None: ...

class DpoExample(_message.Message):
    __slots__ = ("envelope", "example_id", "content_hash", "prompt", "chosen", "rejected", "tools", "chosen_model", "rejected_model", "source", "transforms", "intent", "lineage")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_MODEL_FIELD_NUMBER: _ClassVar[int]
    REJECTED_MODEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMS_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    example_id: str
    content_hash: str
    prompt: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    chosen: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    rejected: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    tools: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolDefinition]
    chosen_model: _common_pb2.ModelRef
    rejected_model: _common_pb2.ModelRef
    source: str
    transforms: _containers.RepeatedScalarFieldContainer[str]
    intent: str
    lineage: Lineage
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., example_id: _Optional[str] = ..., content_hash: _Optional[str] = ..., prompt: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., chosen: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., rejected: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., tools: _Optional[_Iterable[_Union[_common_pb2.ToolDefinition, _Mapping]]] = ..., chosen_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., rejected_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., source: _Optional[str] = ..., transforms: _Optional[_Iterable[str]] = ..., intent: _Optional[str] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ...) -> None: ...

class EvalExample(_message.Message):
    __slots__ = ("envelope", "example_id", "content_hash", "prompt", "reference", "tools", "kind", "intent", "metric", "lineage")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    example_id: str
    content_hash: str
    prompt: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    reference: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    tools: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolDefinition]
    kind: EvalKind
    intent: str
    metric: str
    lineage: Lineage
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., example_id: _Optional[str] = ..., content_hash: _Optional[str] = ..., prompt: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., reference: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., tools: _Optional[_Iterable[_Union[_common_pb2.ToolDefinition, _Mapping]]] = ..., kind: _Optional[_Union[EvalKind, str]] = ..., intent: _Optional[str] = ..., metric: _Optional[str] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ...) -> None: ...
