"""The local development stack: a real Apache Kafka (KRaft), Redis and, on request, PostgreSQL.

``flywheel dev up | status | down`` drive it (flywheel.stack.lifecycle); tests start the
same components directly::

    from flywheel.stack import KafkaServer, RedisServer, PostgresCluster

    kafka = KafkaServer(tmp / "kafka", libs_dir=Path("var/kafka/libs")).start()
    redis = RedisServer(tmp / "redis").start()
    ...
    kafka.stop(); redis.stop()

Every process is started detached with its output in a log file, recorded by PID and start
time, and stopped by PID (SIGTERM, wait, SIGKILL).
"""

from flywheel.stack.component import HEALTH_OK, Component
from flywheel.stack.kafka import KafkaServer, ensure_kafka_jars
from flywheel.stack.postgres import PostgresCluster
from flywheel.stack.redis import RedisServer
from flywheel.stack.state import load_state, save_state, state_path

__all__ = [
    "HEALTH_OK",
    "Component",
    "KafkaServer",
    "PostgresCluster",
    "RedisServer",
    "ensure_kafka_jars",
    "load_state",
    "save_state",
    "state_path",
]
