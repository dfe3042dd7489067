"""The routing policy: schema validation, operators, and routes that change without code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flywheel.errors import ConfigError
from flywheel.services.triage.logic.policy import (
    ROUTES,
    SIGNALS,
    failing_conditions,
    load_policy,
    matches,
    parse_policy,
    policy_json_schema,
)

MINIMAL = {"version": "v1", "rules": [{"name": "default", "route": "judge"}]}


def test_default_policy_loads() -> None:
    policy = load_policy()
    assert policy.version and policy.rules[-1].when == {}
    assert set(policy.budgets) == {"annotate", "preference"}
    assert {r.route for r in policy.rules} <= set(ROUTES)


@pytest.mark.parametrize("change,where", [
    ({"rules": [{"name": "x", "route": "drop", "when": {"dupe": True}},
                {"name": "d", "route": "judge"}]}, "unknown signal"),
    ({"rules": [{"name": "x", "route": "drop", "when": {"quality": {"lt": "low"}}},
                {"name": "d", "route": "judge"}]}, "numeric"),
    ({"rules": [{"name": "x", "route": "drop", "when": {"duplicate": "yes"}},
                {"name": "d", "route": "judge"}]}, "bool signal"),
    ({"rules": [{"name": "x", "route": "drop", "when": {"quality": {"between": 1}}},
                {"name": "d", "route": "judge"}]}, "expected one of"),
    ({"rules": [{"name": "x", "route": "drop", "when": {"duplicate": True}}]}, "last rule"),
    ({"rules": [{"name": "x", "route": "teleport"}]}, "route"),
    ({"rules": [{"name": "d", "route": "judge"}, {"name": "d", "route": "drop"}]}, "last rule"),
    ({"budgets": {"annotate": {"per_hour": 5, "overflow_route": "preference"}},
      "rules": [{"name": "d", "route": "judge"}]}, "Literal"),
    ({"dedupe": {"num_perm": 64, "bands": 10}}, "multiple"),
    ({"surprise": 1}, "extra"),
])
def test_schema_rejects_bad_policies(change: dict, where: str) -> None:
    data = {**MINIMAL, **change}
    with pytest.raises(ConfigError) as err:
        parse_policy(data)
    assert err.value.setting == "FLYWHEEL_TRIAGE_POLICY_PATH"


def test_overflow_route_cannot_be_budgeted() -> None:
    data = {**MINIMAL, "budgets": {"annotate": {"per_hour": 5, "overflow_route": "judge"},
                                   "preference": {"per_hour": 5, "overflow_route": "annotate"}}}
    with pytest.raises(ConfigError):
        parse_policy(data)


def test_operators() -> None:
    s = {"quality": 0.5, "intent": "refund", "duplicate": False}
    assert matches({}, s)
    assert matches({"quality": {"lt": 0.6}, "duplicate": False}, s)
    assert not matches({"quality": {"ge": 0.6}}, s)
    assert matches({"intent": {"in": ["refund", "cancel_order"]}}, s)
    assert matches({"intent": {"not_in": ["warranty"]}}, s)
    assert matches({"intent": {"ne": "warranty"}, "quality": {"eq": 0.5}}, s)
    assert failing_conditions({"quality": {"gt": 0.9}, "duplicate": False}, s) == ["quality"]


def test_file_loading_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    assert load_policy(path).version == "v1"
    path.write_text("version: [unclosed")
    with pytest.raises(ConfigError):
        load_policy(path)
    with pytest.raises(ConfigError):
        load_policy(tmp_path / "missing.yaml")
    path.write_text("- a list")
    with pytest.raises(ConfigError):
        load_policy(path)


def test_json_schema_lists_routes() -> None:
    schema = policy_json_schema()
    assert "rules" in schema["properties"]
    assert "judge" in str(schema)


def test_every_signal_has_a_type() -> None:
    assert all(t in (bool, int, float, str) for t in SIGNALS.values())
