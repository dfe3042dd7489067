"""The console page in Debian's Chromium (Playwright) against a running stack: the numbers on
the page equal what ``flywheel topics list --json`` and ``flywheel status --json`` print.

The session's real Kafka and Redis (a database number of its own), a SQLite file, the gateway
and the console each as their own process, the gateway recorded in the stack state file as
``flywheel dev up`` would. Known figures are produced first (traces through the gateway and
straight onto traces.raw, dead letters, pipeline.health, a lagging consumer group, batches,
model versions, releases, annotation queue, calibration, preference budgets). A full-page
screenshot is saved under the test's tmp dir and ``var/screenshots/console.png``. Skipped
locally when /usr/bin/chromium is missing; fails under CI=true.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flywheel.db.engine import make_engine
from flywheel.keys import create_key
from flywheel.services.console.settings import ConsoleSettings
from flywheel.stack.process import free_port, process_start_time
from flywheel.stack.state import save_state

pytestmark = [pytest.mark.browser, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
DEADLINE_S = 90.0
GATEWAY_TRACES = 7
SCREENSHOT_DIR = REPO / "var" / "screenshots"


def _load_seed():  # noqa: ANN202
    if "console_seed" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "console_seed", REPO / "tests" / "integration" / "console" / "seed.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["console_seed"] = module
        spec.loader.exec_module(module)
    return sys.modules["console_seed"]


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (apt-get install chromium)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _env(settings: ConsoleSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.update({
        "FLYWHEEL_ENV": "test", "FLYWHEEL_DATA_DIR": str(settings.data_dir),
        "FLYWHEEL_KAFKA_BOOTSTRAP": settings.kafka(), "FLYWHEEL_REDIS_URL": settings.redis(),
        "FLYWHEEL_DATABASE_URL": settings.database(),
        "FLYWHEEL_TOPIC_PREFIX": settings.topic_prefix, "FLYWHEEL_LOG_FORMAT": "console",
        "COLUMNS": "200",
        # The seeded pipeline.health events must still count as recent when the page loads.
        "FLYWHEEL_CONSOLE_HEALTH_STALE_S": "900",
    })
    return env


class _Service:
    """A service's main module as a subprocess, stopped by its PID."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        env = {**env, f"FLYWHEEL_{name.upper()}_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"flywheel.services.{name}.main"], env=env, cwd=log_dir,
            stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n"
                                     + self.log_path.read_text()[-3000:])
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{self.name} not ready in time"
            time.sleep(0.25)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def stack(make_settings, redis_url, tmp_path) -> Iterator[tuple[ConsoleSettings, dict]]:  # noqa: ANN001
    """Seeded sources, the gateway (with an API key) and the console, all running."""
    _require_chromium()
    seed = _load_seed()
    base = redis_url.rpartition("/")[0] if redis_url.count("/") > 2 else redis_url
    settings = make_settings(ConsoleSettings, redis_url=f"{base}/7")
    expected = seed.seed(settings)
    engine = make_engine(settings.database())
    key = create_key(engine, "shop").plain
    engine.dispose()
    env = _env(settings)
    gateway = _Service("gateway", env, tmp_path)
    console = None
    try:
        gateway.wait_ready()
        pid = gateway.process.pid
        save_state(settings.data_dir, {"services": {"gateway": {
            "pid": pid, "started": process_start_time(pid), "url": gateway.url,
            "port": gateway.port, "managed": True}}})
        console = _Service("console", {**env, "FLYWHEEL_CONSOLE_SNAPSHOT_TTL_S": "0",
                                       "FLYWHEEL_CONSOLE_SAMPLE_INTERVAL_S": "1"}, tmp_path)
        console.wait_ready()
        yield settings, {"expected": expected, "key": key, "gateway": gateway.url,
                         "console": console.url, "env": env}
    finally:
        if console is not None:
            console.stop()
        gateway.stop()


def _post_traces(gateway: str, key: str) -> None:
    traces = [{"trace_id": f"gw-{i}", "session_id": "s-9",
               "messages": [{"role": "user", "content": f"refund for order {2000 + i}?"},
                            {"role": "assistant", "content": "Refund issued."}]}
              for i in range(GATEWAY_TRACES)]
    r = httpx.post(f"{gateway}/v1/traces", json={"traces": traces},
                   headers={"x-api-key": key}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == GATEWAY_TRACES


def _cli(env: dict[str, str], *args: str) -> object:
    out = subprocess.run([sys.executable, "-m", "flywheel.cli.main", *args], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _settled_topics(env: dict[str, str]) -> list[dict]:
    """``topics list --json`` once two reads a second apart agree (nothing in flight)."""
    previous = None
    deadline = time.monotonic() + DEADLINE_S
    while True:
        rows = _cli(env, "topics", "list", "--json")
        if rows == previous:
            return rows
        assert time.monotonic() < deadline, "end offsets never settled"
        previous = rows
        time.sleep(1.0)


def _text(page, testid: str) -> str:  # noqa: ANN001
    return page.get_by_test_id(testid).first.inner_text().strip()


def test_the_console_page_matches_the_cli(stack, tmp_path) -> None:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    settings, info = stack
    expected, env = info["expected"], info["env"]
    _post_traces(info["gateway"], info["key"])
    listed = _settled_topics(env)
    status = _cli(env, "status", "--json", "--rate-window", "0")
    ends = {row["short"]: row["end_offset"] for row in listed}
    # What was produced is what the broker holds: 12 traces straight onto traces.raw plus the
    # gateway's 7 (and its transaction markers), 5 dead letters, 2 pipeline.health events.
    assert ends["deadletter"] == sum(expected.dead_letters.values())
    assert ends["pipeline.health"] == 2
    assert ends["traces.raw"] >= expected.traces + GATEWAY_TRACES
    gateway_metrics = next(s for s in status["services"] if s["name"] == "gateway")["metrics"]
    assert gateway_metrics["totals"]["flywheel_gateway_events_produced_total"] == GATEWAY_TRACES

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            response = page.goto(f"{info['console']}/?refresh=0")
            assert response is not None and response.status == 200
            for row in listed:
                assert _text(page, f"topic-end-{row['short']}") == str(row["end_offset"]), \
                    row["short"]
            summary = status["summary"]
            assert _text(page, "summary-events-total") == str(summary["events_total"]) \
                == str(sum(ends.values()))
            # The triage group committed 5 offsets of traces.raw: the rest is lag.
            assert _text(page, "lag-total") == str(status["lag"]["total"]) \
                == str(ends["traces.raw"] - _load_seed().COMMITTED)
            assert _text(page, "deadletters-total") == str(status["deadletters"]["total"]) == "5"
            for reason, n in expected.dead_letters.items():
                assert _text(page, f"dl-reason-{reason}") == str(n)
            assert _text(page, "queue-label") == str(status["annotation"]["queue"]["label"]) \
                == str(expected.label_queue)
            assert _text(page, "budget-questions") == str(status["preferences"]["questions"]) \
                == str(expected.questions)
            assert _text(page, "release-shop-assistant") == f"v{summary['release']}" == "v2"
            assert _text(page, "canary-shop-assistant") == f"v{summary['canary']}" == "v3"
            assert _text(page, "batch-fill") == f"{round(summary['batch_fill'] * 100)}%"
            assert _text(page, "service-state-gateway") == "up"
            assert _text(page, "service-state-console") == "up"
            assert _text(page, "service-state-triage") == "up"  # its pipeline.health is recent
            assert _text(page, "service-state-trainer") == "down"  # never started
            for chart in ("chart-throughput", "chart-lag", "chart-deadletters",
                          "chart-calibration", "chart-batches", "chart-task-metric"):
                assert page.get_by_test_id(chart).is_visible()
            shot = tmp_path / "console.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_DIR / "console.png")
    print(f"screenshot: {shot} and {SCREENSHOT_DIR / 'console.png'}")
