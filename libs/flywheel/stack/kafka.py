"""A one-node Apache Kafka broker in KRaft mode (combined broker + controller) on loopback.

The jars come from Maven Central through ``deploy/kafka/pom.xml`` and are cached under
``<data_dir>/kafka/libs`` with a marker holding the pom's hash, so Maven runs once. The broker
keeps its logs in ``<root>/data``; the storage is formatted only when ``meta.properties`` is
absent, so a restart keeps topics, messages and committed offsets.

    server = KafkaServer(Path("var/kafka"), port=29092).start()
    ...  # server.address == "127.0.0.1:29092"
    server.stop()

``auto.create.topics.enable`` is false: every topic is created from the registry
(``flywheel topics create``) or explicitly by Faust for its internal topics, so a misspelt
topic name fails loudly instead of silently creating a one-partition topic.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from flywheel.errors import StackError
from flywheel.stack.component import HEALTH_OK, Component
from flywheel.stack.process import LOOPBACK, file_lock, free_port, spawn, tcp_accepts, tail

# Default ports sit below Linux's ephemeral range (32768-60999): a client redialling a dead
# broker on an ephemeral-range port can connect to itself and hold the port.
DEFAULT_PORT = 29092
DEFAULT_CONTROLLER_PORT = 29093
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
MARKER = ".pom-sha256"
# Small heap and the serial collector: on two cores the broker is ready in seconds and leaves
# the CPU to the services. Production tuning belongs in the production deployment.
JVM_OPTS = (
    "-Xmx512m",
    "-Xms256m",
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_BIND_ERRORS = ("Address already in use", "BindException")

_LOG4J = """\
log4j.rootLogger={level}, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.kafka.server.KafkaConfig=WARN
log4j.logger.org.apache.kafka.clients=WARN
"""


def server_properties(port: int, controller_port: int, log_dir: Path, node_id: int = 1) -> str:
    """The ``server.properties`` of a one-node KRaft broker+controller on loopback."""
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        # A static voter set: the port may change between runs without re-formatting.
        "controller.quorum.voters": f"{node_id}@{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        # Fewer internal partitions than the default 50: the first group join and the first
        # transactional producer wait for these to be created, which is slow on two cores.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.retention.check.interval.ms": "60000",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def find_java() -> str:
    """The ``java`` executable (JAVA_HOME first, then PATH), or a StackError saying what to do."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError(
            "java not found: install a JDK 17+ (apt-get install openjdk-17-jre-headless) "
            "or point FLYWHEEL_KAFKA_BOOTSTRAP at an existing broker"
        )
    return found


def pom_hash(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def jars_cached(libs_dir: Path, pom: Path = DEFAULT_POM) -> bool:
    """True when ``libs_dir`` holds the Kafka jars fetched for this exact pom."""
    marker = libs_dir / MARKER
    if not marker.exists() or not any(libs_dir.glob("kafka_2.13-*.jar")):
        return False
    return marker.read_text().strip() == pom_hash(pom)


def ensure_kafka_jars(libs_dir: Path, pom: Path = DEFAULT_POM, timeout_s: float = 900.0) -> Path:
    """Fetch the broker jars into ``libs_dir`` with Maven once; later calls return at once.

    Concurrent callers (two test sessions, a test run and ``dev up``) serialise on a lock
    file, and the jars are copied to a temporary dir first, so a half-copied cache is never
    used.
    """
    libs_dir = libs_dir.resolve()
    if not pom.exists():
        raise StackError(f"Kafka pom not found at {pom} (run from the Flywheel repository)")
    if jars_cached(libs_dir, pom):
        return libs_dir
    with file_lock(libs_dir.parent / ".libs.lock"):
        if jars_cached(libs_dir, pom):
            return libs_dir
        mvn = shutil.which("mvn")
        if not mvn:
            raise StackError(
                "mvn not found: install Maven (apt-get install maven) to fetch the Kafka jars "
                "once, or point FLYWHEEL_KAFKA_BOOTSTRAP at an existing broker"
            )
        staging = libs_dir.parent / f".libs-staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={staging}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise StackError(
                f"Maven did not fetch the Kafka jars within {timeout_s:.0f}s") from None
        if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            out = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
            shutil.rmtree(staging, ignore_errors=True)
            raise StackError(f"Maven could not fetch the Kafka jars ({' '.join(cmd)}):\n{out}")
        (staging / MARKER).write_text(pom_hash(pom) + "\n")
        shutil.rmtree(libs_dir, ignore_errors=True)
        staging.rename(libs_dir)
    return libs_dir


def new_cluster_id() -> str:
    """A random cluster id in Kafka's format (22 URL-safe base64 characters)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaServer(Component):
    """One Apache Kafka broker process, configured and formatted under ``root``."""

    def __init__(self, root: Path, port: int | None = None, controller_port: int | None = None,
                 *, libs_dir: Path | None = None, log_file: Path | None = None,
                 pom: Path = DEFAULT_POM, die_with_parent: bool = False,
                 strict_ports: bool | None = None) -> None:
        """``port``/``controller_port`` default to 29092/29093 or free ones. With
        ``strict_ports`` (the default when a port is given) a port clash fails the start
        instead of moving to other ports."""
        root = Path(root).resolve()
        super().__init__(name="kafka", data_dir=root / "data",
                         log_file=Path(log_file or root / "kafka.log").resolve(),
                         die_with_parent=die_with_parent, stop_timeout_s=30.0)
        self.root = root
        self._fixed_ports = (port is not None) if strict_ports is None else strict_ports
        self.port = port or free_port(DEFAULT_PORT)
        self.controller_port = controller_port or free_port(DEFAULT_CONTROLLER_PORT,
                                                            avoid=[self.port])
        self.libs_dir = Path(libs_dir or root / "libs").resolve()
        self.pom = pom
        self.log_level = "INFO"

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def record(self) -> dict:
        return {**super().record(), "port": self.port, "controller_port": self.controller_port}

    # -- lifecycle -----------------------------------------------------------------------------

    def _java(self, java: str, main: str, *args: str, log4j: Path) -> list[str]:
        return [java, *JVM_OPTS, f"-Dlog4j.configuration=file:{log4j}",
                "-cp", f"{self.libs_dir}/*", main, *args]

    def _configure(self, java: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        props = self.root / "server.properties"
        props.write_text(server_properties(self.port, self.controller_port, self.data_dir))
        (self.root / "log4j.properties").write_text(_LOG4J.format(level=self.log_level))
        quiet = self.root / "log4j-tools.properties"
        quiet.write_text(_LOG4J.format(level="WARN"))
        if not (self.data_dir / "meta.properties").exists():
            cmd = self._java(java, "kafka.tools.StorageTool", "format", "-t", new_cluster_id(),
                             "-c", str(props), log4j=quiet)
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise StackError(f"kafka: formatting {self.data_dir} failed: "
                                 f"{(done.stdout + done.stderr).strip()[-800:]}")
        return props

    def start(self, timeout_s: float = 90.0) -> KafkaServer:
        """Fetch jars if needed, format on first use, start the broker and wait until ready."""
        if self.running():
            return self
        java = find_java()
        ensure_kafka_jars(self.libs_dir, self.pom)
        for attempt in range(3):
            props = self._configure(java)
            cmd = self._java(java, "kafka.Kafka", str(props), log4j=self.root / "log4j.properties")
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            self._adopt(spawn(cmd, log_file=self.log_file, cwd=self.root,
                              die_with_parent=self.die_with_parent))
            try:
                self.wait_ready(timeout_s)
                return self
            except StackError:
                bind_clash = any(e in self._log_since(log_offset) for e in _BIND_ERRORS)
                self.stop()
                if not bind_clash or self._fixed_ports or attempt == 2:
                    raise
                # Another process took a port between our check and the bind: pick new ones.
                self.port = free_port()
                self.controller_port = free_port(avoid=[self.port])
        return self

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until an admin client can list topics, the process dies, or the deadline."""
        deadline = time.monotonic() + timeout_s
        last = "not listening yet"
        while time.monotonic() < deadline:
            if self._died():
                raise self._fail("the broker exited during start-up")
            if tcp_accepts(LOOPBACK, self.port):
                last = self.health(timeout_s=min(5.0, max(1.0, deadline - time.monotonic())))
                if last == HEALTH_OK:
                    return
            time.sleep(0.2)
        raise self._fail(f"not ready after {timeout_s:.0f}s ({last})")

    def health(self, timeout_s: float = 3.0) -> str:
        from flywheel.kafka.admin import probe

        return probe(self.address, timeout_s)

    def restart(self, timeout_s: float = 90.0) -> KafkaServer:
        """Stop and start again on the same ports and data dir."""
        self.stop()
        self._fixed_ports = True
        return self.start(timeout_s)

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log_file, lines)
