"""Golden samples: every committed sample of every version keeps parsing and round-tripping.

A failure here means a schema change broke readers of data already on the topics (or a golden
sample is missing). Fix the schema, not the sample: samples are written once per version by
tests/golden/make_golden.py and never rewritten.
"""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from flywheel.events.codec import (
    EVENT_CLASSES,
    decode,
    encode,
    from_dict,
    from_json,
    to_dict,
    to_json,
)

from .conftest import GOLDEN_ROOT, GoldenSample, golden_samples, prune_unknown_json, reserved_names

SAMPLES = golden_samples()
LATEST = max((s.version for s in SAMPLES), key=lambda v: int(v[1:]), default="v1")

# Fields added to the schema after the latest golden samples were written. A new field goes
# here (with the date it was added) until a newer sample version covers it.
UNCOVERED_FIELDS: set[str] = set()


def _ids(samples: list[GoldenSample]) -> list[str]:
    return [s.id for s in samples]


def test_every_event_has_a_golden_sample() -> None:
    latest = {s.name for s in SAMPLES if s.version == LATEST}
    expected = {cls.DESCRIPTOR.name for cls in EVENT_CLASSES.values()}
    assert len(EVENT_CLASSES) == 15
    assert latest == expected, f"missing samples: {sorted(expected - latest)}"


def _known_json(sample: GoldenSample) -> dict:
    """The sample's JSON without fields removed (and reserved) since it was written."""
    cls = sample.event_class()
    known, unknown = prune_unknown_json(json.loads(sample.text()), cls.DESCRIPTOR)
    for path in unknown:
        message, _, key = path.rpartition(".")
        assert key in reserved_names(message), (
            f"{sample.id}: {path} is neither a field nor a reserved name; a field was renamed "
            "or removed without `reserved`"
        )
    return known


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_golden_json_parses_strictly(sample: GoldenSample) -> None:
    cls = sample.event_class()
    msg = from_dict(_known_json(sample), cls, ignore_unknown=False, require_envelope=True)
    assert msg.envelope.event_type == cls.DESCRIPTOR.full_name
    assert msg.envelope.schema_version >= 1
    assert msg.envelope.event_id and msg.envelope.producer
    assert msg.envelope.occurred_at.seconds > 0


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_committed_binary_still_decodes_to_the_json_sample(sample: GoldenSample) -> None:
    assert sample.bin_path.exists(), f"{sample.bin_path} is missing"
    cls = sample.event_class()
    from_bin = decode(sample.bin_path.read_bytes(), cls)
    # Fields removed since the sample was written stay in the binary as unknown fields.
    from_bin.DiscardUnknownFields()
    from_text = from_json(sample.text(), cls)
    assert from_bin == from_text, (
        f"{sample.id}: the committed binary no longer decodes to the committed JSON; "
        "a field was renumbered or retyped"
    )


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_binary_round_trip(sample: GoldenSample) -> None:
    cls = sample.event_class()
    msg = from_json(sample.text(), cls)
    data = encode(msg)
    again = decode(data, cls)
    assert again == msg
    assert encode(again) == data, "encoding is not deterministic"


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_json_round_trip(sample: GoldenSample) -> None:
    cls = sample.event_class()
    msg = from_json(sample.text(), cls)
    assert from_json(to_json(msg), cls) == msg
    # The JSON mapping's camelCase spelling parses to the same event.
    camel = json_format.MessageToJson(msg)
    assert from_json(camel, cls) == msg


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.version == LATEST],
                         ids=_ids([s for s in SAMPLES if s.version == LATEST]))
def test_latest_samples_are_canonical_json(sample: GoldenSample) -> None:
    msg = from_json(sample.text(), sample.event_class())
    assert to_dict(msg) == _known_json(sample)


def _is_set(msg: Message, field) -> bool:  # noqa: ANN001
    if field.is_repeated:
        return len(getattr(msg, field.name)) > 0
    if field.has_presence:
        return msg.HasField(field.name)
    return getattr(msg, field.name) != field.default_value


def _covered_fields(msg: Message, seen: set[str]) -> None:
    """Add "<Message>.<field>" for every field set in msg or in any message below it."""
    desc = msg.DESCRIPTOR
    for field in desc.fields:
        if not _is_set(msg, field):
            continue
        seen.add(f"{desc.full_name}.{field.name}")
        sub = field.message_type
        if sub is None or sub.full_name.startswith("google.protobuf.") \
                or sub.GetOptions().map_entry:
            continue
        values = getattr(msg, field.name)
        for value in (values if field.is_repeated else [values]):
            _covered_fields(value, seen)


def _reachable_fields(desc, out: set[str], visited: set[str]) -> None:  # noqa: ANN001
    if desc.full_name in visited:
        return
    visited.add(desc.full_name)
    for field in desc.fields:
        out.add(f"{desc.full_name}.{field.name}")
        sub = field.message_type
        if sub is not None and not sub.full_name.startswith("google.protobuf.") \
                and not sub.GetOptions().map_entry:
            _reachable_fields(sub, out, visited)


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.version == LATEST],
                         ids=_ids([s for s in SAMPLES if s.version == LATEST]))
def test_latest_sample_sets_every_top_level_field(sample: GoldenSample) -> None:
    cls = sample.event_class()
    msg = from_json(sample.text(), cls)
    unset = [f.name for f in cls.DESCRIPTOR.fields if not _is_set(msg, f)
             and f"{cls.DESCRIPTOR.full_name}.{f.name}" not in UNCOVERED_FIELDS]
    assert not unset, f"{sample.id} leaves fields unset: {unset}"


def test_latest_samples_cover_every_field_of_every_message() -> None:
    covered: set[str] = set()
    reachable: set[str] = set()
    visited: set[str] = set()
    for sample in (s for s in SAMPLES if s.version == LATEST):
        cls = sample.event_class()
        _covered_fields(from_json(sample.text(), cls), covered)
        _reachable_fields(cls.DESCRIPTOR, reachable, visited)
    missing = sorted(reachable - covered - UNCOVERED_FIELDS)
    assert not missing, f"fields no golden sample sets: {missing}"


def test_golden_root_holds_samples() -> None:
    # Guards the parametrized tests above against silently collecting nothing.
    assert GOLDEN_ROOT.is_dir()
    assert len(SAMPLES) >= 15
