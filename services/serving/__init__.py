"""The model server: an OpenAI-compatible chat API on onnxruntime with hot model switching.

Run with ``python -m flywheel.services.serving.main`` (settings: ``FLYWHEEL_SERVING_*``).
"""
