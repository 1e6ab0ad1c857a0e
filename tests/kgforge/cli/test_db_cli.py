"""`kgforge db start | status | stop` on a fresh KGFORGE_HOME (its own database, its own ports)."""

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore, NodeWrite
from kg_builder.graphdb.embedded import AlreadyRunningError, EmbeddedDatabase, free_port

pytestmark = pytest.mark.integration



def run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kgforge", "db", *args], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def fresh_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGFORGE_")}
    env.update({"KGFORGE_HOME": str(tmp_path / "home"), "KGFORGE_GRAPH_BOLT_PORT": str(free_port()),
                "KGFORGE_GRAPH_HTTP_PORT": str(free_port()), "KGFORGE_GRAPH_HEAP": "1g"})
    yield env
    run("stop", env=env)


def test_start_status_refuse_second_stop(fresh_env, tmp_path):
    assert run("status", env=fresh_env).returncode == 3  # not running

    started = run("start", env=fresh_env)
    assert started.returncode == 0, started.stderr + started.stdout
    assert "started" in started.stdout

    password = tmp_path / "home" / "db" / "root_password"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600 and len(password.read_text().strip()) >= 24

    status = run("status", "--json", env=fresh_env)
    assert status.returncode == 0
    info = json.loads(status.stdout)
    assert info["running"] and info["answering"] and info["bolt_uri"].startswith("bolt://127.0.0.1:")

    second = run("start", env=fresh_env)
    assert second.returncode == 1 and "already runs" in second.stderr

    # the data survives a restart (stored under KGFORGE_HOME)
    settings = Settings(home=tmp_path / "home", graph_bolt_port=int(fresh_env["KGFORGE_GRAPH_BOLT_PORT"]),
                        graph_http_port=int(fresh_env["KGFORGE_GRAPH_HTTP_PORT"]), graph_password=None, graph_uri=None)
    with GraphStore.from_settings(settings) as store:
        store.setup_schema()
        store.upsert_nodes([NodeWrite(label="Entity", id="kept")])
    stopped = run("stop", env=fresh_env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert run("status", env=fresh_env).returncode == 3
    assert not (tmp_path / "home" / "db" / "server.pid").exists()

    assert run("start", env=fresh_env).returncode == 0
    with GraphStore.from_settings(settings) as store:
        assert store.get_node("kept") is not None
    assert run("stop", env=fresh_env).returncode == 0
    assert "not running" in run("stop", env=fresh_env).stdout


def test_second_start_in_process_raises(db_settings):
    with pytest.raises(AlreadyRunningError, match="already runs"):
        EmbeddedDatabase(db_settings).start()


def test_port_in_use_is_named(fresh_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {**fresh_env, "KGFORGE_GRAPH_BOLT_PORT": str(busy.getsockname()[1])}
        result = run("start", env=env)
    assert result.returncode == 1
    assert "already in use" in result.stderr and "KGFORGE_GRAPH_BOLT_PORT" in result.stderr


def test_embedded_commands_refuse_an_external_uri(fresh_env):
    result = run("start", env={**fresh_env, "KGFORGE_GRAPH_URI": "bolt://neo4j:7687"})
    assert result.returncode == 1 and "KGFORGE_GRAPH_URI" in result.stderr
