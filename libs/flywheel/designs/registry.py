"""The registry of data designs and their switches.

Per-example designs run in a fixed order on every curated SFT example::

    prompt_erasure -> rag_cot -> pam

IN2 is a synthesiser rather than a per-example transform: the curator calls
:func:`flywheel.designs.in2.synthesize` once per batch when it is enabled.

The configuration is a mapping (the ``designs`` section of the curation YAML)::

    designs:
      prompt_erasure: {enabled: true, min_chars: 200}
      rag_cot: {enabled: true}
      pam: {enabled: false}
      in2: {enabled: false, examples_per_batch: 8}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from flywheel.designs.base import Design, DesignContext, DesignError
from flywheel.designs.in2 import NAME as IN2
from flywheel.designs.in2 import In2Config
from flywheel.designs.pam import NAME as PAM
from flywheel.designs.pam import PamConfig, PartialAnswerMasking
from flywheel.designs.prompt_erasure import NAME as PROMPT_ERASURE
from flywheel.designs.prompt_erasure import PromptErasure, PromptErasureConfig
from flywheel.designs.rag_cot import NAME as RAG_COT
from flywheel.designs.rag_cot import RagCot, RagCotConfig
from flywheel.v1.examples_pb2 import SftExample

DESIGN_NAMES: tuple[str, ...] = (PROMPT_ERASURE, RAG_COT, PAM, IN2)
"""Every design, per-example ones in the order they run, then IN2."""


@dataclass(frozen=True)
class DesignsConfig:
    """The configuration of every design; each has an ``enabled`` switch."""

    prompt_erasure: PromptErasureConfig = field(default_factory=PromptErasureConfig)
    rag_cot: RagCotConfig = field(default_factory=RagCotConfig)
    pam: PamConfig = field(default_factory=PamConfig)
    in2: In2Config = field(default_factory=In2Config)

    def enabled(self) -> list[str]:
        """Names of the enabled designs, in registry order."""
        return [name for name in DESIGN_NAMES if getattr(self, name).enabled]

    def only(self, names: Iterable[str]) -> "DesignsConfig":
        """A copy with exactly ``names`` enabled.

        Raises:
            DesignError: a name is not a registered design.
        """
        wanted = set(names)
        unknown = wanted - set(DESIGN_NAMES)
        if unknown:
            raise DesignError(f"unknown designs {sorted(unknown)}; known: {list(DESIGN_NAMES)}")
        return replace(self, **{n: replace(getattr(self, n), enabled=n in wanted)
                                for n in DESIGN_NAMES})


_CONFIG_TYPES = {PROMPT_ERASURE: PromptErasureConfig, RAG_COT: RagCotConfig, PAM: PamConfig,
                 IN2: In2Config}


def designs_config(section: Mapping[str, Any] | None) -> DesignsConfig:
    """Build the config from a mapping of design name to its settings.

    Raises:
        DesignError: an unknown design or setting, or a value its config rejects.
    """
    section = dict(section or {})
    unknown = set(section) - set(DESIGN_NAMES)
    if unknown:
        raise DesignError(f"unknown designs {sorted(unknown)}; known: {list(DESIGN_NAMES)}")
    built: dict[str, Any] = {}
    for name, cls in _CONFIG_TYPES.items():
        values = dict(section.get(name) or {})
        allowed = {f.name for f in fields(cls)}
        extra = set(values) - allowed
        if extra:
            raise DesignError(f"designs.{name}: unknown settings {sorted(extra)}")
        try:
            built[name] = cls(**values)
        except (TypeError, ValueError) as exc:
            raise DesignError(f"designs.{name}: {exc}") from None
    return DesignsConfig(**built)


def per_example_designs(config: DesignsConfig) -> list[Design]:
    """The enabled per-example designs, in the order they run."""
    designs: list[Design] = []
    if config.prompt_erasure.enabled:
        designs.append(PromptErasure(config.prompt_erasure))
    if config.rag_cot.enabled:
        designs.append(RagCot(config.rag_cot))
    if config.pam.enabled:
        designs.append(PartialAnswerMasking(config.pam))
    return designs


def apply_designs(example: SftExample, ctx: DesignContext,
                  config: DesignsConfig) -> list[SftExample]:
    """Run the enabled per-example designs on ``example``; each output feeds the next design."""
    current = [example]
    for design in per_example_designs(config):
        current = [out for item in current for out in design.apply(item, ctx)]
    return current
