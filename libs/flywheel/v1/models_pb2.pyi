from flywheel.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReleaseAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELEASE_ACTION_UNSPECIFIED: _ClassVar[ReleaseAction]
    RELEASE_ACTION_CANARY: _ClassVar[ReleaseAction]
    RELEASE_ACTION_PROMOTE: _ClassVar[ReleaseAction]
    RELEASE_ACTION_ROLLBACK: _ClassVar[ReleaseAction]
RELEASE_ACTION_UNSPECIFIED: ReleaseAction
RELEASE_ACTION_CANARY: ReleaseAction
RELEASE_ACTION_PROMOTE: ReleaseAction
RELEASE_ACTION_ROLLBACK: ReleaseAction

class Gate(_message.Message):
    __slots__ = ("passed", "reasons")
    PASSED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    passed: bool
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, passed: _Optional[bool] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelCandidate(_message.Message):
    __slots__ = ("envelope", "model_line", "version", "parent_version", "base_model", "adapter_path", "merged_path", "batch_ids", "metrics", "gate", "status")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_LINE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_PATH_FIELD_NUMBER: _ClassVar[int]
    MERGED_PATH_FIELD_NUMBER: _ClassVar[int]
    BATCH_IDS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    GATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    model_line: str
    version: int
    parent_version: int
    base_model: str
    adapter_path: str
    merged_path: str
    batch_ids: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.ScalarMap[str, float]
    gate: Gate
    status: str
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., model_line: _Optional[str] = ..., version: _Optional[int] = ..., parent_version: _Optional[int] = ..., base_model: _Optional[str] = ..., adapter_path: _Optional[str] = ..., merged_path: _Optional[str] = ..., batch_ids: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., gate: _Optional[_Union[Gate, _Mapping]] = ..., status: _Optional[str] = ...) -> None: ...

class ModelRelease(_message.Message):
    __slots__ = ("envelope", "release_id", "model_line", "version", "action", "artifact_path", "artifact_hash", "canary_share", "actor", "reason", "previous_version")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_LINE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_PATH_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_HASH_FIELD_NUMBER: _ClassVar[int]
    CANARY_SHARE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    release_id: str
    model_line: str
    version: int
    action: ReleaseAction
    artifact_path: str
    artifact_hash: str
    canary_share: float
    actor: str
    reason: str
    previous_version: int
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., release_id: _Optional[str] = ..., model_line: _Optional[str] = ..., version: _Optional[int] = ..., action: _Optional[_Union[ReleaseAction, str]] = ..., artifact_path: _Optional[str] = ..., artifact_hash: _Optional[str] = ..., canary_share: _Optional[float] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., previous_version: _Optional[int] = ...) -> None: ...
