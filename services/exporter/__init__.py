"""The exporter: merged candidates become verified ONNX artifacts, canaries and releases.

Run the exporter with ``python -m flywheel.services.exporter.main`` and the release controller
with ``python -m flywheel.services.exporter.controller`` (settings: ``FLYWHEEL_EXPORTER_*``).
"""
