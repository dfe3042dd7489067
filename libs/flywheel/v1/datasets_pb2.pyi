import datetime

from flywheel.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatasetBatch(_message.Message):
    __slots__ = ("envelope", "batch_id", "model_line", "version", "sft_path", "dpo_path", "manifest_path", "content_hash", "eval_set_path", "eval_set_hash", "counts", "replay_share", "created_at")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_LINE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SFT_PATH_FIELD_NUMBER: _ClassVar[int]
    DPO_PATH_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    EVAL_SET_PATH_FIELD_NUMBER: _ClassVar[int]
    EVAL_SET_HASH_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    REPLAY_SHARE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    batch_id: str
    model_line: str
    version: int
    sft_path: str
    dpo_path: str
    manifest_path: str
    content_hash: str
    eval_set_path: str
    eval_set_hash: str
    counts: _containers.ScalarMap[str, int]
    replay_share: float
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., batch_id: _Optional[str] = ..., model_line: _Optional[str] = ..., version: _Optional[int] = ..., sft_path: _Optional[str] = ..., dpo_path: _Optional[str] = ..., manifest_path: _Optional[str] = ..., content_hash: _Optional[str] = ..., eval_set_path: _Optional[str] = ..., eval_set_hash: _Optional[str] = ..., counts: _Optional[_Mapping[str, int]] = ..., replay_share: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
