"""The job tests use the session's tiny trained zoo models (``zoo_home`` in ``tests/conftest.py``).

``jobs_target`` runs a job-store test on both backends: a fresh SQLite file, and a fresh schema in
the local PostgreSQL server (``KGFORGE_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards. The PostgreSQL case is skipped,
with the reason, only when that server cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from kg_builder.jobs.sql import close_pool

POSTGRES_URL = os.environ.get("KGFORGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def trained_home(zoo_home: Path) -> Path:
    return zoo_home


def _admin_connection():
    import psycopg

    try:
        return psycopg.connect(POSTGRES_URL, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({str(e).strip().splitlines()[0]}); "
                    "set KGFORGE_TEST_POSTGRES_URL to run the PostgreSQL job-store tests")


@pytest.fixture
def postgres_url():
    """A ``postgresql://`` URL whose search_path is a fresh schema (dropped after the test)."""
    admin = _admin_connection()
    schema = f"kgforge_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        close_pool(url)
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def jobs_target(request, tmp_path) -> Path | str:
    """Where a store lives: a SQLite file, or a PostgreSQL URL (one fresh schema per test)."""
    if request.param == "sqlite":
        return tmp_path / "jobs.sqlite3"
    return request.getfixturevalue("postgres_url")
