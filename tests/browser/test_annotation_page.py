"""The annotation page in Debian's Chromium (Playwright): sign in, claim, label with the
keyboard, submit, and find the label on annotation.labels.

The service runs as its own process (``python -m flywheel.services.annotation.main``) on a
free loopback port, against the session's real Kafka and Redis and a SQLite file. Skipped
locally when /usr/bin/chromium is missing; fails under CI=true.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from flywheel.db.engine import make_engine, migrate
from flywheel.events.codec import decode, encode
from flywheel.events.envelope import stamp
from flywheel.services.annotation import auth
from flywheel.v1 import annotation_pb2
from flywheel.v1.annotation_pb2 import AnnotationLabel, AnnotationTask

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
DEADLINE_S = 60.0


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (apt-get install chromium)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def annotation_server(make_settings, tmp_path):  # noqa: ANN001, ANN201
    """The annotation service as a subprocess; yields (base_url, settings)."""
    _require_chromium()
    settings = make_settings()
    migrate(settings.database())
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.update({
        "FLYWHEEL_ENV": "test", "FLYWHEEL_DATA_DIR": str(tmp_path),
        "FLYWHEEL_KAFKA_BOOTSTRAP": settings.kafka(), "FLYWHEEL_REDIS_URL": settings.redis(),
        "FLYWHEEL_DATABASE_URL": settings.database(), "FLYWHEEL_TOPIC_PREFIX": settings.topic_prefix,
        "FLYWHEEL_LOG_FORMAT": "console", "FLYWHEEL_ANNOTATION_PORT": str(port),
    })
    log = open(tmp_path / "annotation.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "flywheel.services.annotation.main"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            if process.poll() is not None:
                raise AssertionError("annotation service exited:\n"
                                     + (tmp_path / "annotation.log").read_text()[-3000:])
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("annotation service not ready in time")
            time.sleep(0.2)
        yield base, settings
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _task() -> AnnotationTask:
    trace_id = f"tr_{uuid.uuid4().hex[:12]}"
    event = AnnotationTask(task_id=f"at_{uuid.uuid4().hex[:12]}", trace_id=trace_id,
                           kind=annotation_pb2.ANNOTATION_KIND_RATE, priority=0.8,
                           required_annotators=1, intent="order_status")
    event.trace.trace_id = trace_id
    event.trace.messages.add(role="user", content="Where is my order 4411?")
    event.trace.messages.add(role="assistant",
                             content="Order 4411 has shipped and arrives within 3 business days.")
    return stamp(event, "triage", app_id="shop")


def _produce(settings, event: AnnotationTask) -> None:  # noqa: ANN001
    from flywheel.kafka.producer import make_producer, produce_sync

    producer = make_producer(settings)
    try:
        produce_sync(producer, settings.topic("annotation.tasks"), event.task_id.encode(),
                     encode(event))
    finally:
        producer.close()


def _first_label(settings) -> AnnotationLabel:  # noqa: ANN001
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.topic("annotation.labels"),
                             bootstrap_servers=settings.kafka(), auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    return decode(record.value, AnnotationLabel)
        raise AssertionError("no label on annotation.labels in time")
    finally:
        consumer.close()


def test_sign_in_claim_label_with_the_keyboard_and_submit(annotation_server) -> None:  # noqa: ANN001
    from playwright.sync_api import expect, sync_playwright

    base, settings = annotation_server
    engine = make_engine(settings.database())
    person = auth.create_annotator(engine, "ana", "correct horse battery", "annotator")
    engine.dispose()
    event = _task()
    _produce(settings, event)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base}/")
            expect(page).to_have_url(f"{base}/login")
            page.fill("input[name=username]", "ana")
            page.fill("input[name=password]", "wrong password")
            page.click("button[type=submit]")
            expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
            page.fill("input[name=password]", "correct horse battery")
            page.click("button[type=submit]")
            expect(page.get_by_test_id("who")).to_contain_text("ana")

            deadline = time.monotonic() + DEADLINE_S
            while page.get_by_test_id("queue-depth").inner_text() == "0":
                assert time.monotonic() < deadline, "the task never reached the queue"
                page.wait_for_timeout(200)
                page.reload()
            page.keyboard.press("n")  # claim next
            expect(page).to_have_url(f"{base}/tasks/{event.task_id}")
            expect(page.locator(".msg.assistant")).to_contain_text("Order 4411 has shipped")
            expect(page.locator(".guideline")).to_contain_text("very bad")

            page.keyboard.press("4")  # "good" (3 on the 0-4 scale)
            expect(page.locator("input[name=rating][value='3']")).to_be_checked()
            page.fill("textarea[name=reason]", "correct and complete")
            page.locator("textarea[name=reason]").press("Escape")
            page.keyboard.press("Enter")  # submit
            expect(page.get_by_test_id("flash")).to_contain_text("Label saved")
        finally:
            browser.close()

    label = _first_label(settings)
    assert label.task_id == event.task_id and label.trace_id == event.trace_id
    assert label.HasField("rating") and label.rating == 3
    assert label.reason == "correct and complete" and label.is_final
    assert label.labeller.id == person.annotator_id
    assert label.labeller.type == annotation_pb2.LABELLER_TYPE_HUMAN
    assert label.guideline_version == "g-1"

