"""The embedded graph database: ArcadeDB (``arcadedb-embedded``) with its Bolt plugin, run as a
background process owned by ``KGFORGE_HOME``.

``kgforge db start`` spawns ``python -m kg_builder.graphdb.embedded serve`` in its own session, which
starts the JVM server with the Bolt plugin (bound to 127.0.0.1 unless configured), creates the
database on first start, and stops cleanly on SIGTERM/SIGINT. The parent waits until Bolt answers a
query. Files under ``KGFORGE_HOME/db``:

* ``server/``: ArcadeDB's root (databases, config, the users file holding the root password);
* ``root_password``: generated on first start when ``KGFORGE_GRAPH_PASSWORD`` is not set (0600).
  ArcadeDB stores the root user on its first start; a password changed later must be changed in
  ArcadeDB too, so the first one stays authoritative;
* ``server.pid`` (a second start refuses while that process lives), ``server.log``.

The rest of kgforge talks to the database only through the official ``neo4j`` driver.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kg_builder.errors import ConfigError, DatabaseError, KGForgeError
from kg_builder.settings import Settings

BOLT_PLUGIN = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"


class AlreadyRunningError(KGForgeError):
    """An embedded database already runs for this KGFORGE_HOME."""


@dataclass(frozen=True)
class DatabaseStatus:
    running: bool
    pid: int | None
    bolt_uri: str
    http_port: int
    database: str
    home: Path
    answering: bool = False

    def as_dict(self) -> dict:
        return {**self.__dict__, "home": str(self.home)}


def process_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this machine and is not a zombie (a child that was
    killed but not yet reaped still answers ``kill(0)``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (for tests, benchmarks and side-by-side databases)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class EmbeddedDatabase:
    """Start, stop and inspect the embedded ArcadeDB server for one ``Settings.home``."""

    def __init__(self, settings: Settings):
        if not settings.embedded:
            raise ConfigError(
                f"KGFORGE_GRAPH_URI is set ({settings.graph_uri}): kgforge does not manage that database; "
                "unset it to use the embedded one"
            )
        self.settings = settings
        self.home = settings.db_home
        self.pid_file = self.home / "server.pid"
        self.log_file = self.home / "server.log"
        self.password_file = self.home / "root_password"

    # --- state ---------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The server's pid when it is alive (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if process_alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def status(self) -> DatabaseStatus:
        pid = self.pid()
        return DatabaseStatus(
            running=pid is not None, pid=pid, bolt_uri=self.settings.bolt_uri,
            http_port=self.settings.graph_http_port, database=self.settings.graph_database,
            home=self.home, answering=pid is not None and self._answers(),
        )

    def _answers(self) -> bool:
        from neo4j import GraphDatabase  # the driver is the only client
        from neo4j.exceptions import AuthError

        import cypher

        try:
            with GraphDatabase.driver(self.settings.bolt_uri, auth=(self.settings.graph_user, self.password()),
                                      connection_timeout=2) as driver:
                with driver.session(database=self.settings.graph_database) as session:
                    return session.run(cypher.render("ping")).single()["ok"] == 1
        except AuthError as e:
            raise DatabaseError(
                f"the embedded database rejected the password ({e}). ArcadeDB keeps the root password of its "
                f"first start: use the one in {self.password_file} (unset KGFORGE_GRAPH_PASSWORD) or start "
                "with a fresh KGFORGE_HOME"
            ) from e
        except Exception:  # any other failure means "not answering yet"; callers poll  # noqa: BLE001
            return False

    def password(self) -> str:
        """The configured password, else the generated one (created here on first use)."""
        if self.settings.graph_password is not None:
            return self.settings.graph_password.get_secret_value()
        if not self.password_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(24))
        return self.password_file.read_text().strip()

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self, *, timeout: float = 120.0) -> DatabaseStatus:
        """Start the server in the background and wait until Bolt answers a query.

        Raises:
            AlreadyRunningError: a server for this home is already running.
            DatabaseError: a port is taken, or the server did not come up (the log tail is shown).
        """
        pid = self.pid()
        if pid is not None:
            raise AlreadyRunningError(
                f"the embedded database already runs for {self.home} (pid {pid}); `kgforge db stop` stops it"
            )
        host = self.settings.graph_host
        for name, port in (("Bolt", self.settings.graph_bolt_port), ("HTTP", self.settings.graph_http_port)):
            if _port_in_use(host, port):
                raise DatabaseError(
                    f"{name} port {host}:{port} is already in use by another program; "
                    f"set KGFORGE_GRAPH_{name.upper()}_PORT to a free port"
                )
        self.home.mkdir(parents=True, exist_ok=True)
        self.password()
        config = {
            "root": str(self.home / "server"),
            "database": self.settings.graph_database,
            "host": host,
            "bolt_port": self.settings.graph_bolt_port,
            "http_port": self.settings.graph_http_port,
            "heap": self.settings.graph_heap,
            "password_file": str(self.password_file) if self.settings.graph_password is None else None,
        }
        env = dict(os.environ)
        if self.settings.graph_password is not None:
            env["KGFORGE_GRAPH_PASSWORD"] = self.settings.graph_password.get_secret_value()
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kg_builder.graphdb.embedded", "serve", json.dumps(config)],
                cwd=self.home, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env,
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise DatabaseError(f"the embedded database exited during start (code {proc.returncode}):\n"
                                    f"{self.log_tail()}")
            try:
                answering = self._answers()
            except DatabaseError:
                self.stop()
                raise
            if answering:
                return self.status()
            time.sleep(0.3)
        self.stop()
        raise DatabaseError(f"the embedded database did not answer on {self.settings.bolt_uri} within "
                            f"{timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, *, timeout: float = 60.0) -> bool:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``). False when none was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.2)
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while process_alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


# ------------------------------------------------------------------------------------------------
# The server process
# ------------------------------------------------------------------------------------------------
def serve(config: dict) -> int:
    """Run the ArcadeDB server until SIGTERM or SIGINT (the body of the background process)."""
    import arcadedb_embedded as arcadedb

    password = os.environ.get("KGFORGE_GRAPH_PASSWORD")
    if config.get("password_file"):
        password = Path(config["password_file"]).read_text().strip()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = arcadedb.ArcadeDBServer(
        root_path=config["root"],
        root_password=password,
        config={
            "host": config["host"],
            "http_port": config["http_port"],
            "server_plugins": BOLT_PLUGIN,
            "bolt_port": config["bolt_port"],
        },
        jvm_kwargs={"heap_size": config["heap"]},
    )
    server.start()
    try:
        if not (Path(config["root"]) / "databases" / config["database"]).exists():
            server.create_database(config["database"])
        print(f"kgforge: database {config['database']!r} ready on bolt://{config['host']}:{config['bolt_port']}",
              flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        print("kgforge: database stopped", flush=True)
    return 0


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m kg_builder.graphdb.embedded")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("config", help="JSON configuration written by EmbeddedDatabase.start")
    args = parser.parse_args(argv)
    return serve(json.loads(args.config))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
