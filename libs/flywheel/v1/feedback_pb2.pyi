import datetime

from flywheel.v1 import common_pb2 as _common_pb2
from flywheel.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeedbackKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_KIND_UNSPECIFIED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_THUMBS: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_RATING: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_COMMENT: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_CORRECTION: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_REGENERATE: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_REPHRASE: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_PREFERENCE: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_ABANDON: _ClassVar[FeedbackKind]

class Thumbs(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THUMBS_UNSPECIFIED: _ClassVar[Thumbs]
    THUMBS_UP: _ClassVar[Thumbs]
    THUMBS_DOWN: _ClassVar[Thumbs]
FEEDBACK_KIND_UNSPECIFIED: FeedbackKind
FEEDBACK_KIND_THUMBS: FeedbackKind
FEEDBACK_KIND_RATING: FeedbackKind
FEEDBACK_KIND_COMMENT: FeedbackKind
FEEDBACK_KIND_CORRECTION: FeedbackKind
FEEDBACK_KIND_REGENERATE: FeedbackKind
FEEDBACK_KIND_REPHRASE: FeedbackKind
FEEDBACK_KIND_PREFERENCE: FeedbackKind
FEEDBACK_KIND_ABANDON: FeedbackKind
THUMBS_UNSPECIFIED: Thumbs
THUMBS_UP: Thumbs
THUMBS_DOWN: Thumbs

class PreferenceChoice(_message.Message):
    __slots__ = ("request_id", "chosen")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    chosen: _common_pb2.Choice
    def __init__(self, request_id: _Optional[str] = ..., chosen: _Optional[_Union[_common_pb2.Choice, str]] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("kind", "thumbs", "ratings", "comment", "corrected_answer", "preference", "given_at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    THUMBS_FIELD_NUMBER: _ClassVar[int]
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_ANSWER_FIELD_NUMBER: _ClassVar[int]
    PREFERENCE_FIELD_NUMBER: _ClassVar[int]
    GIVEN_AT_FIELD_NUMBER: _ClassVar[int]
    kind: FeedbackKind
    thumbs: Thumbs
    ratings: _common_pb2.Ratings
    comment: str
    corrected_answer: str
    preference: PreferenceChoice
    given_at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[FeedbackKind, str]] = ..., thumbs: _Optional[_Union[Thumbs, str]] = ..., ratings: _Optional[_Union[_common_pb2.Ratings, _Mapping]] = ..., comment: _Optional[str] = ..., corrected_answer: _Optional[str] = ..., preference: _Optional[_Union[PreferenceChoice, _Mapping]] = ..., given_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FeedbackEvent(_message.Message):
    __slots__ = ("envelope", "feedback_id", "trace_id", "user_id", "request_id", "feedback")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    feedback_id: str
    trace_id: str
    user_id: str
    request_id: str
    feedback: Feedback
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., feedback_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., user_id: _Optional[str] = ..., request_id: _Optional[str] = ..., feedback: _Optional[_Union[Feedback, _Mapping]] = ...) -> None: ...
