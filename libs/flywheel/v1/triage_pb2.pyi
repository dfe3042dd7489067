from flywheel.v1 import common_pb2 as _common_pb2
from flywheel.v1 import envelope_pb2 as _envelope_pb2
from flywheel.v1 import trace_pb2 as _trace_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Route(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTE_UNSPECIFIED: _ClassVar[Route]
    ROUTE_DROP: _ClassVar[Route]
    ROUTE_SFT_CANDIDATE: _ClassVar[Route]
    ROUTE_PREFERENCE: _ClassVar[Route]
    ROUTE_ANNOTATE: _ClassVar[Route]
    ROUTE_EVAL_CANDIDATE: _ClassVar[Route]
    ROUTE_SYSTEM_EVAL: _ClassVar[Route]
    ROUTE_JUDGE: _ClassVar[Route]
ROUTE_UNSPECIFIED: Route
ROUTE_DROP: Route
ROUTE_SFT_CANDIDATE: Route
ROUTE_PREFERENCE: Route
ROUTE_ANNOTATE: Route
ROUTE_EVAL_CANDIDATE: Route
ROUTE_SYSTEM_EVAL: Route
ROUTE_JUDGE: Route

class Uncertainty(_message.Message):
    __slots__ = ("k", "disagreement", "entropy", "model_unavailable")
    K_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_FIELD_NUMBER: _ClassVar[int]
    MODEL_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    k: int
    disagreement: float
    entropy: float
    model_unavailable: bool
    def __init__(self, k: _Optional[int] = ..., disagreement: _Optional[float] = ..., entropy: _Optional[float] = ..., model_unavailable: _Optional[bool] = ...) -> None: ...

class TriageDecision(_message.Message):
    __slots__ = ("envelope", "decision_id", "trace_id", "revision", "supersedes_decision_id", "route", "scores", "reasons", "policy_version", "priority", "intent", "trace", "duplicate_of", "pii_counts", "uncertainty", "failure_source", "failure_kind")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class PiiCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDES_DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    PII_COUNTS_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_KIND_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    decision_id: str
    trace_id: str
    revision: int
    supersedes_decision_id: str
    route: Route
    scores: _containers.ScalarMap[str, float]
    reasons: _containers.RepeatedScalarFieldContainer[str]
    policy_version: str
    priority: float
    intent: str
    trace: _trace_pb2.Trace
    duplicate_of: str
    pii_counts: _containers.ScalarMap[str, int]
    uncertainty: Uncertainty
    failure_source: _common_pb2.FailureSource
    failure_kind: str
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., decision_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., revision: _Optional[int] = ..., supersedes_decision_id: _Optional[str] = ..., route: _Optional[_Union[Route, str]] = ..., scores: _Optional[_Mapping[str, float]] = ..., reasons: _Optional[_Iterable[str]] = ..., policy_version: _Optional[str] = ..., priority: _Optional[float] = ..., intent: _Optional[str] = ..., trace: _Optional[_Union[_trace_pb2.Trace, _Mapping]] = ..., duplicate_of: _Optional[str] = ..., pii_counts: _Optional[_Mapping[str, int]] = ..., uncertainty: _Optional[_Union[Uncertainty, _Mapping]] = ..., failure_source: _Optional[_Union[_common_pb2.FailureSource, str]] = ..., failure_kind: _Optional[str] = ...) -> None: ...
