"""The registry: switches, order of application and config validation."""

from __future__ import annotations

import pytest

from flywheel.designs import DESIGN_NAMES, DesignContext, DesignError, apply_designs, designs_config
from flywheel.v1.common_pb2 import ChatMessage
from flywheel.v1.examples_pb2 import SftExample
from flywheel.v1.trace_pb2 import ContextDocument, Trace

LONG = "Follow these detailed instructions very carefully. " * 6


def _example() -> SftExample:
    return SftExample(messages=[ChatMessage(role="system", content=LONG),
                                ChatMessage(role="user", content="Opening hours?"),
                                ChatMessage(role="assistant", content="We open at 9 on Monday.")])


def test_defaults() -> None:
    config = designs_config(None)
    assert config.enabled() == ["prompt_erasure", "rag_cot"]
    assert DESIGN_NAMES == ("prompt_erasure", "rag_cot", "pam", "in2")


def test_designs_run_in_order_and_record_themselves() -> None:
    config = designs_config({"pam": {"enabled": True}})
    trace = Trace(context_documents=[ContextDocument(content="We open at 9 on Monday.")])
    ctx = DesignContext(trace=trace, original_answer=(ChatMessage(role="assistant",
                                                                  content="Closed."),))
    plain, pam = apply_designs(_example(), ctx, config)
    assert list(plain.transforms) == ["prompt_erasure", "rag_cot"]
    assert list(pam.transforms) == ["prompt_erasure", "rag_cot", "pam"]
    assert pam.messages[2].content.startswith("Closed.\n\n")
    assert pam.messages[2].content.endswith("Answer: We open at 9 on Monday.")


def test_switches_off() -> None:
    example = _example()
    config = designs_config({}).only([])
    assert config.enabled() == []
    assert apply_designs(example, DesignContext(), config) == [example]


def test_only_and_errors() -> None:
    assert designs_config({}).only(["pam", "in2"]).enabled() == ["pam", "in2"]
    with pytest.raises(DesignError, match="unknown designs"):
        designs_config({}).only(["orca"])
    with pytest.raises(DesignError, match="unknown designs"):
        designs_config({"orca": {}})
    with pytest.raises(DesignError, match="unknown settings"):
        designs_config({"pam": {"colour": "red"}})
    with pytest.raises(DesignError, match="min_chars"):
        designs_config({"prompt_erasure": {"min_chars": 0}})
