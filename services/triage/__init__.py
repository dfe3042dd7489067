"""Triage: route each production trace to drop, SFT, preference, annotation, eval or system eval.

Reads ``traces.raw`` and ``feedback.events``; writes ``traces.triaged``,
``preference.requests``, ``annotation.tasks``, the dead-letter topic and ``pipeline.health``.
Decision logic is pure (``logic/``); ``engine`` holds the state and I/O; ``agents`` are thin.
Run with ``python -m flywheel.services.triage.main``.
"""
