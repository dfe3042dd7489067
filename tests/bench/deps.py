"""What the benchmarks share: the broker and Redis they run against.

From ``FLYWHEEL_TEST_KAFKA_BOOTSTRAP`` / ``FLYWHEEL_TEST_REDIS_URL`` when set (a running
stack), else a real Apache Kafka and Redis started under ``root`` and stopped with ``stack``.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAFKA_LIBS = REPO / "var" / "kafka" / "libs"


def dependencies(stack: ExitStack, root: Path) -> tuple[str, str]:
    """Kafka bootstrap and Redis URL: from the environment, else started here."""
    kafka = os.environ.get("FLYWHEEL_TEST_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("FLYWHEEL_TEST_REDIS_URL")
    if not kafka:
        from flywheel.stack.kafka import KafkaServer

        server = KafkaServer(root / "kafka", libs_dir=KAFKA_LIBS, die_with_parent=True,
                             strict_ports=False)
        server.start(timeout_s=180)
        stack.callback(server.stop)
        kafka = server.address
    if not redis_url:
        from flywheel.stack.redis import RedisServer

        server = RedisServer(root / "redis", die_with_parent=True, strict_port=False)
        server.start()
        stack.callback(server.stop)
        redis_url = server.url
    return kafka, redis_url
