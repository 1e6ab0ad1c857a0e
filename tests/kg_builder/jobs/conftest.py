"""The job tests use the session's tiny trained zoo models (``zoo_home`` in ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def trained_home(zoo_home: Path) -> Path:
    return zoo_home
