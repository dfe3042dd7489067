import datetime

from flywheel.v1 import common_pb2 as _common_pb2
from flywheel.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PreferenceRequest(_message.Message):
    __slots__ = ("envelope", "request_id", "trace_id", "user_id", "prompt", "answer_a", "answer_b", "expires_at")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_A_FIELD_NUMBER: _ClassVar[int]
    ANSWER_B_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    request_id: str
    trace_id: str
    user_id: str
    prompt: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    answer_a: _common_pb2.Answer
    answer_b: _common_pb2.Answer
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., request_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., user_id: _Optional[str] = ..., prompt: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., answer_a: _Optional[_Union[_common_pb2.Answer, _Mapping]] = ..., answer_b: _Optional[_Union[_common_pb2.Answer, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PreferenceAnswer(_message.Message):
    __slots__ = ("envelope", "request_id", "trace_id", "user_id", "chosen", "chosen_model", "rejected_model", "position_of_chosen", "reason", "ratings_a", "ratings_b", "answered_at", "prompt", "chosen_messages", "rejected_messages")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_MODEL_FIELD_NUMBER: _ClassVar[int]
    REJECTED_MODEL_FIELD_NUMBER: _ClassVar[int]
    POSITION_OF_CHOSEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RATINGS_A_FIELD_NUMBER: _ClassVar[int]
    RATINGS_B_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    request_id: str
    trace_id: str
    user_id: str
    chosen: _common_pb2.Choice
    chosen_model: _common_pb2.ModelRef
    rejected_model: _common_pb2.ModelRef
    position_of_chosen: int
    reason: str
    ratings_a: _common_pb2.Ratings
    ratings_b: _common_pb2.Ratings
    answered_at: _timestamp_pb2.Timestamp
    prompt: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    chosen_messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    rejected_messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., request_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., user_id: _Optional[str] = ..., chosen: _Optional[_Union[_common_pb2.Choice, str]] = ..., chosen_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., rejected_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., position_of_chosen: _Optional[int] = ..., reason: _Optional[str] = ..., ratings_a: _Optional[_Union[_common_pb2.Ratings, _Mapping]] = ..., ratings_b: _Optional[_Union[_common_pb2.Ratings, _Mapping]] = ..., answered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prompt: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., chosen_messages: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., rejected_messages: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ...) -> None: ...
