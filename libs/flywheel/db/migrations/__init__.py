"""Alembic migrations for the Flywheel schema (run with ``flywheel db upgrade``)."""
