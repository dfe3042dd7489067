"""Kafka helpers shared by services and tools.

- ``flywheel.kafka.admin``: create the registry's topics, describe partitions and end offsets.
- ``flywheel.kafka.producer``: synchronous kafka-python producers (acks="all") for CLIs and tests.
- ``flywheel.kafka.faust_app``: the Faust app factory for stream processors.
- ``flywheel.kafka.lag``: consumer lag per group and partition.
- ``flywheel.kafka.deadletter``: dead-letter handling for stream processors.

Submodules are imported explicitly (``from flywheel.kafka.admin import create_topics``), so
importing this package stays cheap and never pulls in Faust.
"""
