"""Schema rules: within a version changes are additive only, and the proto files say so.

Every committed tests/golden/v*/schema.json snapshot is compared with today's descriptors: a
field or enum value may be added, but never renumbered, retyped, renamed or removed unless its
number and name are ``reserved``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from flywheel.events.codec import EVENT_CLASSES
from flywheel.events.protogen import PROTO_ROOT, proto_files

from .conftest import GOLDEN_ROOT

SNAPSHOTS = sorted(GOLDEN_ROOT.glob("v*/schema.json"))
POOL = descriptor_pool.Default()


def _snapshot_ids() -> list[str]:
    return [p.parent.name for p in SNAPSHOTS]


def _reserved(desc) -> tuple[set[int], set[str]]:  # noqa: ANN001
    proto = descriptor_pb2.DescriptorProto()
    desc.CopyToProto(proto)
    numbers = {n for r in proto.reserved_range for n in range(r.start, r.end)}
    return numbers, set(proto.reserved_name)


def _field_problems(name: str, fields: dict) -> list[str]:
    try:
        desc = POOL.FindMessageTypeByName(name)
    except KeyError:
        return [f"message {name} was removed"]
    problems = []
    reserved_numbers, reserved_names = _reserved(desc)
    for fname, old in fields.items():
        now = desc.fields_by_name.get(fname)
        if now is None:
            if old["number"] not in reserved_numbers or fname not in reserved_names:
                problems.append(f"{name}.{fname} (= {old['number']}) was removed without "
                                f"`reserved {old['number']};` and `reserved \"{fname}\";`")
            continue
        ref = now.message_type or now.enum_type
        shape = (now.number, now.type, ref.full_name if ref else "", now.is_repeated)
        was = (old["number"], _type_code(old["type"]), old["type_name"], old["repeated"])
        if shape != was:
            problems.append(f"{name}.{fname} changed from {was} to {shape}")
    return problems


def _type_code(type_name: str) -> int:
    return getattr(descriptor_pb2.FieldDescriptorProto, f"TYPE_{type_name.upper()}")


def _enum_problems(name: str, values: dict[str, int]) -> list[str]:
    try:
        desc = POOL.FindEnumTypeByName(name)
    except KeyError:
        return [f"enum {name} was removed"]
    proto = descriptor_pb2.EnumDescriptorProto()
    desc.CopyToProto(proto)
    reserved_numbers = {n for r in proto.reserved_range for n in range(r.start, r.end + 1)}
    problems = []
    for vname, number in values.items():
        now = desc.values_by_name.get(vname)
        if now is None:
            if number not in reserved_numbers or vname not in proto.reserved_name:
                problems.append(f"{name}.{vname} (= {number}) was removed without reserving it")
        elif now.number != number:
            problems.append(f"{name}.{vname} changed from {number} to {now.number}")
    return problems


def test_there_is_a_snapshot() -> None:
    assert SNAPSHOTS, "tests/golden/v1/schema.json is missing"


@pytest.mark.parametrize("path", SNAPSHOTS, ids=_snapshot_ids())
def test_schema_changes_are_additive(path: Path) -> None:
    snapshot = json.loads(path.read_text())
    problems = []
    for name, fields in snapshot["messages"].items():
        problems += _field_problems(name, fields)
    for name, values in snapshot["enums"].items():
        problems += _enum_problems(name, values)
    assert not problems, "breaking schema changes:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", SNAPSHOTS, ids=_snapshot_ids())
def test_snapshot_matches_what_the_golden_builder_would_write(path: Path, golden_builder) -> None:
    # Additions are fine; this only proves the snapshot format is still the builder's.
    current = golden_builder.schema_snapshot()
    old = json.loads(path.read_text())
    assert set(old["messages"]) <= set(current["messages"])
    assert set(old["enums"]) <= set(current["enums"])


def _all_enums() -> dict[str, object]:
    enums: dict[str, object] = {}
    for cls in EVENT_CLASSES.values():
        files = [cls.DESCRIPTOR.file, *cls.DESCRIPTOR.file.dependencies]
        for f in files:
            for enum in f.enum_types_by_name.values():
                if enum.full_name.startswith("flywheel."):
                    enums[enum.full_name] = enum
    return enums


@pytest.mark.parametrize("name", sorted(_all_enums()))
def test_enum_values_are_prefixed_and_zero_is_unspecified(name: str) -> None:
    enum = _all_enums()[name]
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    assert enum.values_by_number[0].name == f"{prefix}UNSPECIFIED"
    bad = [v.name for v in enum.values if not v.name.startswith(prefix)]
    assert not bad, f"{name} values must start with {prefix}: {bad}"


@pytest.mark.parametrize("rel", [str(p) for p in proto_files()])
def test_proto_files_follow_the_house_rules(rel: str) -> None:
    text = (PROTO_ROOT / rel).read_text()
    assert re.search(r'^syntax = "proto3";$', text, re.M)
    assert re.search(r"^package flywheel\.v1;$", text, re.M)
    assert "additive only" in text and "reserved" in text, (
        f"{rel} must say that fields are additive only and removed ones are reserved"
    )
    for imp in re.findall(r'^import "([^"]+)";$', text, re.M):
        assert imp.startswith(("flywheel/v1/", "google/protobuf/")), imp
