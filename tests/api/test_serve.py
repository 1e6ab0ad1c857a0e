"""``python -m api.serve``: the API in ``KGFORGE_API_WORKERS`` uvicorn processes (issue 13)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from kg_builder.graphdb.embedded import free_port

pytestmark = pytest.mark.integration


def test_serve_runs_the_configured_number_of_api_processes(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGFORGE_")}
    env.update({"KGFORGE_HOME": str(tmp_path), "KGFORGE_API_WORKERS": "2", "KGFORGE_API_PORT": str(port),
                "KGFORGE_JOB_REAPER_INTERVAL_S": "0"})
    server = subprocess.Popen([sys.executable, "-m", "api.serve", "--no-access-log"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        answered = 0
        while time.monotonic() < deadline and answered < 2:
            try:
                answered += httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.5)
        assert answered == 2, "the API did not answer"
        time.sleep(2)  # the second process may still be starting
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert server.returncode == 0, output
    started = set(re.findall(r"Started server process \[(\d+)\]", output))
    assert len(started) == 2, output  # two API processes, each with its own pid
