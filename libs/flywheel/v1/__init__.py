"""Protobuf bindings for the flywheel.v1 event schemas, generated from proto/flywheel/v1/.

Do not edit the ``*_pb2.py`` / ``*_pb2.pyi`` files: change the ``.proto`` and run ``make proto``
(``python -m flywheel.events.protogen``). Use :mod:`flywheel.events.codec` to encode and decode.
"""
