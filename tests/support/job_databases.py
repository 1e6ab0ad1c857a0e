"""Helpers for job-store tests that run on both backends (``jobs_target`` in tests/kg_builder/jobs/conftest.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from kg_builder.jobs import JobStore


def execute(store: JobStore, sql: str, params: tuple = ()) -> None:
    """Run one statement (``?`` placeholders) in the store's database: for tests that age rows."""
    with store._tx() as conn:
        conn.execute(sql, params)


def age_update(store: JobStore, job_id: str, seconds: float) -> None:
    """Move the job's ``updated_at`` ``seconds`` into the past (same ISO format as the store writes)."""
    with store._tx() as conn:
        row = conn.execute("SELECT updated_at FROM jobs WHERE id=?", (job_id,)).fetchone()
        older = (datetime.fromisoformat(row["updated_at"]) - timedelta(seconds=seconds)).isoformat()
        conn.execute("UPDATE jobs SET updated_at=? WHERE id=?", (older, job_id))
