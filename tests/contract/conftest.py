"""Shared helpers for the contract tests: golden sample discovery and the golden builder."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf.message import Message

from flywheel.events.codec import message_class

GOLDEN_ROOT = Path(__file__).resolve().parents[1] / "golden"


@dataclass(frozen=True)
class GoldenSample:
    """One committed sample: <version>/<Event>.json and its binary twin <Event>.bin."""

    version: str
    name: str
    json_path: Path
    bin_path: Path

    @property
    def id(self) -> str:
        return f"{self.version}/{self.name}"

    def text(self) -> str:
        return self.json_path.read_text(encoding="utf-8")

    def event_class(self) -> type[Message]:
        # The envelope names the type, so samples of older packages resolve too.
        declared = json.loads(self.text()).get("envelope", {}).get("event_type")
        return message_class(declared or self.name)


def golden_samples() -> list[GoldenSample]:
    """Every golden sample of every schema version, oldest version first."""
    samples = []
    for version_dir in sorted(p for p in GOLDEN_ROOT.glob("v*") if p.is_dir()):
        for json_path in sorted(version_dir.glob("*.json")):
            if json_path.name == "schema.json":
                continue
            samples.append(GoldenSample(version_dir.name, json_path.stem, json_path,
                                        json_path.with_suffix(".bin")))
    return samples


def load_golden_builder() -> ModuleType:
    """tests/golden/make_golden.py as a module (tests/ is not a package)."""
    path = GOLDEN_ROOT / "make_golden.py"
    spec = importlib.util.spec_from_file_location("flywheel_make_golden", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def golden_builder() -> ModuleType:
    return load_golden_builder()


def _field_for_key(desc, key: str):  # noqa: ANN001, ANN202
    field = desc.fields_by_name.get(key)
    if field is None:
        field = next((f for f in desc.fields if f.json_name == key), None)
    return field


def prune_unknown_json(data: dict, desc, path: str = "") -> tuple[dict, list[str]]:  # noqa: ANN001
    """Split a JSON-mapping dict into the part today's schema knows and the unknown keys.

    Returns:
        The dict without unknown keys, and each unknown key as "<Message>.<key>".
    """
    pruned: dict = {}
    unknown: list[str] = []
    for key, value in data.items():
        field = _field_for_key(desc, key)
        if field is None:
            unknown.append(f"{desc.full_name}.{key}")
            continue
        sub = field.message_type
        if sub is None or sub.full_name.startswith("google.protobuf."):
            pruned[key] = value
        elif sub.GetOptions().map_entry:
            value_type = sub.fields_by_name["value"].message_type
            if value_type is None or value_type.full_name.startswith("google.protobuf."):
                pruned[key] = value
            else:
                pruned[key] = {}
                for k, v in value.items():
                    pruned[key][k], more = prune_unknown_json(v, value_type)
                    unknown += more
        elif field.is_repeated:
            pruned[key] = []
            for item in value:
                kept, more = prune_unknown_json(item, sub)
                pruned[key].append(kept)
                unknown += more
        else:
            pruned[key], more = prune_unknown_json(value, sub)
            unknown += more
    return pruned, unknown


def reserved_names(full_name: str) -> set[str]:
    """Reserved field names of a message, e.g. {"session_id"} after session_id was removed."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    proto = descriptor_pb2.DescriptorProto()
    descriptor_pool.Default().FindMessageTypeByName(full_name).CopyToProto(proto)
    return set(proto.reserved_name)
