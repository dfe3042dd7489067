"""Throwaway PostgreSQL clusters: initdb, pg_ctl start on a loopback port, a database, a URL.

    with PostgresCluster(Path("/tmp/pg-x")) as pg:
        url = pg.url   # postgresql+psycopg://postgres@127.0.0.1:PORT/flywheel

initdb and postgres refuse to run as root. As root the cluster is run as the ``postgres``
user (``runuser -u postgres --``, else ``setpriv``) with its directory chowned to it, so the
cluster's directory must be reachable by that user (anything under /tmp is; a directory below
a 0700 parent is not, and is rejected with a message saying so). The cluster trusts local
connections, listens only on 127.0.0.1 and has no Unix socket (long test paths exceed the
socket path limit). fsync is off: these clusters hold test and demo data only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from flywheel.errors import StackError
from flywheel.stack.component import HEALTH_OK, Component
from flywheel.stack.process import LOOPBACK, free_port, pid_alive, process_start_time

DEFAULT_PORT = 25432
SUPERUSER = "postgres"
RUN_AS = "postgres"
_SERVER_OPTS = ("-c unix_socket_directories= -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c shared_buffers=32MB -c max_connections=100")


def find_pg_bin(name: str) -> str:
    """A PostgreSQL server binary from PATH or /usr/lib/postgresql/<newest>/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if versions:
        return versions[-1]
    raise StackError(
        f"{name} not found: install the PostgreSQL server (apt-get install postgresql) "
        "or set FLYWHEEL_DATABASE_URL"
    )


def _as_user_prefix() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that drops root for initdb/pg_ctl (empty when not root)."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam(RUN_AS)
    except KeyError:
        raise StackError(
            f"PostgreSQL cannot run as root and there is no {RUN_AS!r} user: create one "
            f"(useradd --system {RUN_AS}) or run as a non-root user"
        ) from None
    if shutil.which("runuser"):
        return ["runuser", "-u", RUN_AS, "--"], user
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                "--init-groups", "--"], user
    raise StackError("running PostgreSQL as root needs runuser or setpriv (util-linux)")


class PostgresCluster(Component):
    """A PostgreSQL cluster under ``root`` (``root/data``), started with pg_ctl."""

    def __init__(self, root: Path, port: int | None = None, *, database: str = "flywheel",
                 log_file: Path | None = None, strict_port: bool | None = None) -> None:
        root = Path(root).resolve()
        super().__init__(name="postgres", data_dir=root / "data",
                         log_file=Path(log_file or root / "postgres.log").resolve(),
                         stop_timeout_s=30.0)
        self.root = root
        self._fixed_port = (port is not None) if strict_port is None else strict_port
        self.port = port or free_port(DEFAULT_PORT)
        self.database = database
        self._prefix, self._user = _as_user_prefix()

    @property
    def address(self) -> str:
        return self.url

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{LOOPBACK}:{self.port}/{self.database}"

    def record(self) -> dict:
        rec = super().record()
        rec["url"] = rec.pop("address")
        return {**rec, "port": self.port, "database": self.database}

    def _run(self, *cmd: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([*self._prefix, *cmd], capture_output=True, text=True,
                                  timeout=timeout_s, cwd=self.root)
        except subprocess.TimeoutExpired:
            raise StackError(f"postgres: {Path(cmd[0]).name} took over {timeout_s:.0f}s") from None

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        if self._user is None:
            return
        for path in (self.root, self.log_file):
            os.chown(path, self._user.pw_uid, self._user.pw_gid)
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), self._user.pw_uid, self._user.pw_gid,
                         follow_symlinks=False)
        check = self._run("test", "-w", str(self.root), "-a", "-w", str(self.log_file))
        if check.returncode != 0:
            raise StackError(
                f"postgres: user {RUN_AS!r} cannot reach {self.root} (a parent directory is not "
                "searchable by others); put the cluster under /tmp or chmod o+x its parents"
            )

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        done = self._run(find_pg_bin("initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                         "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-800:]
            raise StackError(f"postgres: initdb failed: {output}")

    def start(self, timeout_s: float = 60.0) -> PostgresCluster:
        """initdb on first use, start the server, create the database; returns self."""
        if self.running():
            return self
        self._prepare_dirs()
        self._initdb()
        for attempt in range(3):
            opts = f"-p {self.port} -c listen_addresses={LOOPBACK} {_SERVER_OPTS}"
            done = self._run(find_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-l",
                             str(self.log_file), "-o", opts, "-w", "-t", str(int(timeout_s)),
                             "start", timeout_s=timeout_s + 10)
            if done.returncode == 0:
                break
            if self._fixed_port or attempt == 2:
                raise self._fail(f"pg_ctl start failed: {(done.stdout + done.stderr).strip()}")
            self.port = free_port()
        self.pid = self._postmaster_pid()
        self.started = process_start_time(self.pid) if self.pid else None
        self.create_database(self.database)
        return self

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _connect(self, dbname: str = "postgres", timeout_s: float = 3.0):  # noqa: ANN202
        import psycopg

        return psycopg.connect(host=LOOPBACK, port=self.port, user=SUPERUSER, dbname=dbname,
                               autocommit=True, connect_timeout=max(1, int(timeout_s)))

    def create_database(self, name: str) -> str:
        """Create database ``name`` if it does not exist; returns its URL."""
        with self._connect() as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            exists = found.fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{SUPERUSER}@{LOOPBACK}:{self.port}/{name}"

    def health(self, timeout_s: float = 2.0) -> str:
        try:
            with self._connect(timeout_s=timeout_s) as conn:
                conn.execute("SELECT 1")
            return HEALTH_OK
        except Exception as exc:  # noqa: BLE001 (any driver error means "not healthy")
            return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"

    def stop(self) -> str:
        """pg_ctl stop -m fast; falls back to signalling the postmaster."""
        if not (self.data_dir / "postmaster.pid").exists() and not self.running():
            self.pid = self.started = None
            return "gone"
        done = self._run(find_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                         "-t", str(int(self.stop_timeout_s)), "stop",
                         timeout_s=self.stop_timeout_s + 10)
        if done.returncode == 0 and not pid_alive(self.pid, self.started):
            self.pid = self.started = None
            return "stopped"
        return super().stop()

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.health() != HEALTH_OK:
            if time.monotonic() > deadline:
                raise self._fail(f"not ready after {timeout_s:.0f}s")
            time.sleep(0.2)
