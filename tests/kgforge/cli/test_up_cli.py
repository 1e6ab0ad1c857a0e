"""``kgforge up`` as a user runs it: a real subprocess that prints its URLs, refuses a second copy
on the same home, and stops every process it started on Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from kg_builder.graphdb.embedded import free_port

pytestmark = pytest.mark.integration


def _up(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kgforge", "up", "--workers", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_up_prints_urls_refuses_a_second_copy_and_stops_on_ctrl_c(db_env, tmp_path):
    port = free_port()
    env = {**db_env, "KGFORGE_API_PORT": str(port), "KGFORGE_JOBS_DB": str(tmp_path / "jobs.sqlite3")}
    first = _up(env)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = first.stdout.readline()
            lines.append(line)
            if "Press Ctrl-C" in line or first.poll() is not None:
                break
        out = "".join(lines)
        assert "kgforge is up" in out and f"http://127.0.0.1:{port}" in out, out
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200

        second = subprocess.run([sys.executable, "-m", "kgforge", "up"], env={**env, "KGFORGE_API_PORT": str(free_port())},
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0 and "already up" in second.stdout + second.stderr

        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 0
        assert "stopped" in first.stdout.read()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
