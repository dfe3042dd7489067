"""Flywheel: continuously improve LLMs from their own production traffic."""

__version__ = "0.1.0"
