"""The record of one curated training example, as it sits in the pool table and in SQL.

An :class:`ExampleRecord` carries the TRL row that goes into the batch file, the example event
(Protobuf JSON mapping) and what balancing, decontamination and lineage need. It is a plain
JSON-able dict in the Faust pool table and in ``examples.payload`` in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from flywheel.events.codec import to_dict
from flywheel.services.curator.logic.examples import Candidate
from flywheel.services.curator.logic.formats import dpo_row, sft_row
from flywheel.v1.examples_pb2 import SftExample


@dataclass(frozen=True)
class ExampleRecord:
    """One SFT or DPO example with its row, event, metadata and lineage."""

    kind: str
    example_id: str
    content_hash: str
    row: dict[str, Any]
    event: dict[str, Any]
    source: str
    intent: str
    quality: float
    prompt_text: str
    transforms: tuple[str, ...] = ()
    trace_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    labeller_ids: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    topic: str = ""
    partition: int = 0
    offset: int = 0
    received_at: float = 0.0
    origin: str = ""
    origin_trace: str = field(default="")

    @property
    def key(self) -> str:
        """The pool table key: kind and content hash (equal content is pooled once)."""
        return f"{self.kind}:{self.content_hash}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("transforms", "trace_ids", "user_ids", "labeller_ids", "event_ids"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExampleRecord":
        values = dict(data)
        for name in ("transforms", "trace_ids", "user_ids", "labeller_ids", "event_ids"):
            values[name] = tuple(values.get(name) or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    def lineage_entry(self, replay: bool = False) -> dict[str, Any]:
        """The manifest's lineage line for this example."""
        return {"example_id": self.example_id, "kind": self.kind,
                "content_hash": self.content_hash, "source": self.source, "intent": self.intent,
                "transforms": list(self.transforms), "replay": replay,
                "trace_ids": list(self.trace_ids), "topic": self.topic,
                "partition": self.partition, "offset": self.offset,
                "labeller_ids": list(self.labeller_ids), "user_ids": list(self.user_ids),
                "event_ids": list(self.event_ids)}


def record_from_candidate(candidate: Candidate, *, received_at: float, origin: str
                          ) -> ExampleRecord:
    """The pool record of a sealed candidate (its lineage copied out of the event)."""
    ex = candidate.example
    lin = ex.lineage
    row = sft_row(ex) if isinstance(ex, SftExample) else dpo_row(ex)
    return ExampleRecord(
        kind=candidate.kind, example_id=ex.example_id, content_hash=ex.content_hash, row=row,
        event=to_dict(ex), source=ex.source, intent=ex.intent, quality=candidate.quality,
        prompt_text=candidate.prompt_text, transforms=tuple(ex.transforms),
        trace_ids=tuple(lin.trace_ids), user_ids=tuple(lin.user_ids),
        labeller_ids=tuple(lin.labeller_ids), event_ids=tuple(lin.event_ids), topic=lin.topic,
        partition=lin.partition, offset=lin.offset, received_at=received_at, origin=origin,
        origin_trace=candidate.trace_id,
    )
