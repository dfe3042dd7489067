"""Model code shared by the trainer, exporter and serving: loading, chat rendering, training.

Importing this package is cheap (no torch); the submodules import the ML stack:

- ``flywheel.ml.loading``: open any local Hugging Face causal-LM directory, offline.
- ``flywheel.ml.chat``: render OpenAI-shaped conversations into ids, labels and loss masks.
- ``flywheel.ml.train``: LoRA continual training (masked SFT, DPO with an SFT term).
- ``flywheel.ml.evaluate``: batched greedy generation, exact match, preference accuracy.
- ``flywheel.ml.tiny``: the tiny demo base model built and pre-trained locally.
"""

from __future__ import annotations

from flywheel.errors import FlywheelError


class MLError(FlywheelError):
    """Base of the errors raised by ``flywheel.ml``."""


class ModelLoadError(MLError):
    """A model, tokenizer or adapter directory could not be opened."""


class ChatFormatError(MLError):
    """A conversation cannot be rendered (bad roles, spans, or a template we cannot align)."""


class TrainingError(MLError):
    """Training cannot go on: invalid configuration, no usable data, or a non-finite loss."""


class TrainConfigError(TrainingError, ValueError):
    """A training hyperparameter, or a combination of them, is invalid."""
