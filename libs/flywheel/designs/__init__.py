"""Data designs from the literature, as named and tested transforms on curated examples.

Each design is one module with its config (an ``enabled`` switch plus parameters):

- :mod:`~flywheel.designs.prompt_erasure`: Orca-2 prompt erasure.
- :mod:`~flywheel.designs.pam`: partial answer masking for self-correction.
- :mod:`~flywheel.designs.rag_cot`: chain-of-thought targets for retrieval-augmented answers.
- :mod:`~flywheel.designs.in2`: information-intensive long-context synthesis.

:mod:`~flywheel.designs.registry` runs them in order from the curation config, and
:mod:`~flywheel.designs.masks` turns character-span loss masks into per-token weights.
Examples that a design changed list its name in ``SftExample.transforms``.
"""

from flywheel.designs.base import DesignContext, DesignError
from flywheel.designs.registry import (
    DESIGN_NAMES,
    DesignsConfig,
    apply_designs,
    designs_config,
    per_example_designs,
)

__all__ = [
    "DESIGN_NAMES",
    "DesignContext",
    "DesignError",
    "DesignsConfig",
    "apply_designs",
    "designs_config",
    "per_example_designs",
]
