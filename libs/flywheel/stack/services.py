"""Service discovery and launching for ``flywheel run`` and ``flywheel dev up --services``.

A service is a package under ``flywheel.services`` (the repo's services/ directory) with a
``main`` module defining ``main()``. Discovery reads the module's source instead of importing
it, so listing services never loads torch or Faust.

HTTP services listen on ``FLYWHEEL_<SERVICE>_PORT`` when set, else on the port in
``DEFAULT_PORTS`` (or a free one when that is taken); the chosen port is passed to the service
in that same variable.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flywheel.errors import StackError
from flywheel.stack.component import HEALTH_OK, Component
from flywheel.stack.process import (
    LOOPBACK,
    free_port,
    pid_alive,
    spawn,
    tcp_accepts,
    wait_until,
)

PACKAGE = "flywheel.services"
DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "serving": 8001,
    "preferences": 8002,
    "annotation": 8003,
    "console": 8004,
}
# Services that are a second process of a package, with their entry module: the release
# controller lives with the exporter (shared registry code) but runs on its own.
EXTRA_SERVICES: dict[str, str] = {"release-controller": f"{PACKAGE}.exporter.controller"}
# How long a service without an HTTP port must stay up to count as started.
GRACE_S = 5.0


@dataclass(frozen=True)
class ServiceInfo:
    """A discovered service: its name, entry module, and default HTTP port (None: no HTTP)."""

    name: str
    module: str
    default_port: int | None

    @property
    def http(self) -> bool:
        return self.default_port is not None

    @property
    def port_env(self) -> str:
        return f"FLYWHEEL_{self.name.upper().replace('-', '_')}_PORT"


def _defines_main(origin: str | None) -> bool:
    if not origin or not origin.endswith(".py"):
        return False
    try:
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "main"
               for node in tree.body)


def discover_services() -> dict[str, ServiceInfo]:
    """Every package under flywheel.services that has ``main.main()``, plus ``EXTRA_SERVICES``."""
    package = importlib.import_module(PACKAGE)
    found = {}
    for mod in pkgutil.iter_modules(package.__path__):
        if not mod.ispkg or mod.name.startswith("_"):
            continue
        module = f"{PACKAGE}.{mod.name}.main"
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is not None and _defines_main(spec.origin):
            found[mod.name] = ServiceInfo(mod.name, module, DEFAULT_PORTS.get(mod.name))
    for name, module in EXTRA_SERVICES.items():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is not None and _defines_main(spec.origin):
            found[name] = ServiceInfo(name, module, DEFAULT_PORTS.get(name))
    return dict(sorted(found.items()))


def _unknown(name: str, known: Mapping[str, ServiceInfo]) -> StackError:
    listing = ", ".join(known) or "none (no services/<name>/main.py defines main())"
    return StackError(f"unknown service {name!r}; known services: {listing}")


def resolve_services(selection: str) -> list[ServiceInfo]:
    """Services named by ``selection``: "all", "" (none) or a comma-separated list."""
    known = discover_services()
    selection = selection.strip()
    if not selection:
        return []
    if selection == "all":
        return list(known.values())
    chosen = []
    for name in (part.strip() for part in selection.split(",")):
        if not name:
            continue
        if name not in known:
            raise _unknown(name, known)
        chosen.append(known[name])
    return chosen


def run_service(name: str) -> None:
    """Import the service's main module and call ``main()`` in the foreground."""
    known = discover_services()
    if name not in known:
        raise _unknown(name, known)
    importlib.import_module(known[name].module).main()


def service_port(info: ServiceInfo, environ: Mapping[str, str] | None = None,
                 avoid: tuple[int, ...] = ()) -> int | None:
    """The HTTP port for a service: its env variable, else its default if free, else any."""
    environ = os.environ if environ is None else environ
    if environ.get(info.port_env):
        try:
            return int(environ[info.port_env])
        except ValueError:
            raise StackError(f"{info.port_env}: expected a port number, "
                             f"got {environ[info.port_env]!r}") from None
    if not info.http:
        return None
    return free_port(info.default_port, avoid=avoid)


class ServiceProcess(Component):
    """One service running in the background, logging to ``<data_dir>/logs/<name>.log``."""

    def __init__(self, info: ServiceInfo, data_dir: Path, port: int | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        data_dir = Path(data_dir).resolve()
        super().__init__(name=info.name, data_dir=data_dir,
                         log_file=data_dir / "logs" / f"{info.name}.log", stop_timeout_s=15.0)
        self.info = info
        self.port = port
        self.env = dict(env or {})

    @property
    def address(self) -> str:
        return self.url or ""

    @property
    def url(self) -> str | None:
        return f"http://{LOOPBACK}:{self.port}" if self.port else None

    def record(self) -> dict:
        return {"pid": self.pid, "started": self.started, "url": self.url, "port": self.port,
                "log": str(self.log_file), "managed": True}

    def launch(self) -> ServiceProcess:
        """Start the service's ``main()`` in a detached interpreter (no waiting)."""
        env = {**os.environ, **self.env, "FLYWHEEL_DATA_DIR": str(self.data_dir),
               "PYTHONUNBUFFERED": "1"}
        if self.port:
            env[self.info.port_env] = str(self.port)
        # Under a supervisor that restarts the service when it dies (see stack/supervise.py).
        cmd = [sys.executable, "-m", "flywheel.stack.supervise", self.info.module]
        self._adopt(spawn(cmd, log_file=self.log_file, env=env, cwd=Path.cwd()))
        return self

    def start(self, timeout_s: float = 30.0) -> ServiceProcess:
        """Launch, then wait until it is ready (see ``wait_ready``)."""
        self.launch()
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 30.0, grace_s: float = GRACE_S) -> None:
        """HTTP services: until the port accepts. Others have no readiness signal, so they
        only have to survive ``grace_s`` (most start-up failures happen in that window)."""
        if self.port:
            ok = wait_until(lambda: self._died() or tcp_accepts(LOOPBACK, self.port),
                            timeout_s, 0.2)
            if self._died():
                raise self._fail("exited during start-up")
            if not ok:
                raise self._fail(f"port {self.port} not accepting after {timeout_s:.0f}s")
            return
        wait_until(self._died, grace_s, 0.1)
        if self._died():
            raise self._fail("exited during start-up")

    def health(self) -> str:
        return service_health(self.pid, self.started, self.port)


def service_health(pid: int | None, started: int | None, port: int | None) -> str:
    """"ok" when the process runs and (for HTTP services) its port accepts connections."""
    if not pid_alive(pid, started):
        return "not running"
    if port and not tcp_accepts(LOOPBACK, port):
        return f"port {port} not accepting"
    return HEALTH_OK
