"""Topic administration with kafka-python: create the registry's topics, describe them.

Topic names come only from the registry (flywheel.events.topics) under a prefix::

    create_topics("127.0.0.1:29092", prefix="flywheel")
    # {"flywheel.traces.raw.v1": "created", ...}
    describe_topics("127.0.0.1:29092", prefix="flywheel")  # partitions and end offsets per topic

Broker failures surface as DependencyUnavailable with one line naming the bootstrap address.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import KafkaError, TopicAlreadyExistsError

from flywheel.errors import DependencyUnavailable
from flywheel.events.topics import TOPICS, TopicSpec

REPLICATION_FACTOR = 1
CREATED = "created"
EXISTS = "exists"


class _AdminClient(KafkaAdminClient):
    """KafkaAdminClient that stops its IO thread when bootstrapping fails.

    kafka-python 3.x starts a background IO thread before bootstrapping in ``__init__`` and
    leaves it running when bootstrap times out; readiness polls would leak one per attempt.
    """

    def __init__(self, **configs: Any) -> None:
        try:
            super().__init__(**configs)
        except BaseException:
            with contextlib.suppress(Exception):
                self._client.close()
            with contextlib.suppress(Exception):
                self._net.stop()
            raise


@contextlib.contextmanager
def admin_client(bootstrap: str, timeout_s: float = 10.0,
                 client_id: str = "flywheel-admin") -> Iterator[KafkaAdminClient]:
    """A connected admin client, closed on exit; DependencyUnavailable when unreachable."""
    timeout_ms = int(timeout_s * 1000)
    try:
        client = _AdminClient(bootstrap_servers=bootstrap, client_id=client_id,
                              bootstrap_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms,
                              reconnect_backoff_max_ms=1000)
    except (KafkaError, OSError) as exc:
        raise DependencyUnavailable(f"Kafka at {bootstrap} is unreachable: {exc}") from None
    try:
        yield client
    except KafkaError as exc:
        raise DependencyUnavailable(f"Kafka at {bootstrap}: {type(exc).__name__}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            client.close()


def probe(bootstrap: str, timeout_s: float = 3.0) -> str:
    """"ok" when an admin client can list topics within ``timeout_s``, else the reason."""
    try:
        with admin_client(bootstrap, timeout_s, client_id="flywheel-probe") as client:
            client.list_topics()
        return "ok"
    except DependencyUnavailable as exc:
        return str(exc)


def _registry(specs: Iterable[TopicSpec] | None) -> list[TopicSpec]:
    return list(specs) if specs is not None else list(TOPICS.values())


def create_topics(bootstrap: str, prefix: str = "flywheel",
                  specs: Iterable[TopicSpec] | None = None,
                  timeout_s: float = 30.0) -> dict[str, str]:
    """Create every registered topic under ``prefix`` that does not exist yet.

    Idempotent: returns ``{full_name: "created" | "exists"}`` and waits until each created
    topic has a leader for every partition, so producing right after works.
    """
    wanted = {spec.full_name(prefix): spec for spec in _registry(specs)}
    with admin_client(bootstrap, timeout_s) as client:
        existing = set(client.list_topics())
        result = {name: EXISTS for name in wanted if name in existing}
        missing = {
            name: {"num_partitions": spec.partitions, "replication_factor": REPLICATION_FACTOR,
                   "configs": spec.config()}
            for name, spec in wanted.items() if name not in existing
        }
        if missing:
            response = client.create_topics(missing, timeout_ms=int(timeout_s * 1000),
                                            raise_errors=False)
            for topic in response["topics"]:
                code = topic["error_code"]
                if code == 0:
                    result[topic["name"]] = CREATED
                elif code == TopicAlreadyExistsError.errno:
                    result[topic["name"]] = EXISTS
                else:
                    raise DependencyUnavailable(
                        f"Kafka at {bootstrap}: creating {topic['name']} failed "
                        f"(error {code}: {topic.get('error_message') or ''})")
            created = [name for name, state in result.items() if state == CREATED]
            client.wait_for_topics(created, timeout_ms=int(timeout_s * 1000))
    return {name: result[name] for name in wanted}


def _end_offsets(client: KafkaAdminClient, partitions: dict[str, int],
                 timeout_s: float) -> dict[TopicPartition, int]:
    specs = {TopicPartition(topic, p): OffsetSpec.LATEST
             for topic, count in partitions.items() for p in range(count)}
    if not specs:
        return {}
    found = client.list_partition_offsets(specs, timeout_ms=int(timeout_s * 1000))
    return {tp: found[tp].offset for tp in found}


def describe_topics(bootstrap: str, prefix: str = "flywheel",
                    specs: Iterable[TopicSpec] | None = None,
                    timeout_s: float = 15.0) -> list[dict[str, Any]]:
    """One row per registered topic: partitions and end offsets (total and per partition).

    Topics absent from the broker are reported with ``exists=False`` and zero counts.
    """
    registry = _registry(specs)
    with admin_client(bootstrap, timeout_s) as client:
        existing = set(client.list_topics())
        names = [spec.full_name(prefix) for spec in registry if spec.full_name(prefix) in existing]
        meta = client.describe_topics(names) if names else []
        partitions = {t["name"]: len(t["partitions"]) for t in meta}
        ends = _end_offsets(client, partitions, timeout_s)
    rows = []
    for spec in registry:
        name = spec.full_name(prefix)
        per_partition = {tp.partition: off for tp, off in ends.items() if tp.topic == name}
        rows.append({
            "short": spec.short,
            "topic": name,
            "exists": name in partitions,
            "partitions": partitions.get(name, 0),
            "expected_partitions": spec.partitions,
            "end_offset": sum(per_partition.values()),
            "end_offsets": dict(sorted(per_partition.items())),
        })
    return rows


def group_offsets(bootstrap: str, group_id: str,
                  timeout_s: float = 10.0) -> dict[TopicPartition, int]:
    """Committed offsets of a consumer group (``list_group_offsets`` in kafka-python 3.x)."""
    with admin_client(bootstrap, timeout_s) as client:
        found = client.list_group_offsets({group_id: None}).get(group_id, {})
    return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}
