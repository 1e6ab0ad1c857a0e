"""Fixtures for the dataset-loader tests.

``write`` builds tiny dataset files with the real quirks (CRLF, no final newline); ``data_dir`` is
the real shared data folder and skips the test when it is absent; ``real`` loads a real dataset
once per session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from kg_builder.datasets import Dataset, dataset_path, load_dataset

REPO = Path(__file__).resolve().parents[3]
DATA_DIR = Path(os.environ.get("KGFORGE_DATA_DIR", REPO.parent / "shared" / "data"))

Writer = Callable[..., Path]


def write_lines(path: Path, lines: Sequence[str], *, crlf: bool = False, final_newline: bool = True) -> Path:
    """Write ``lines`` to ``path`` byte for byte (no newline translation), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    end = "\r\n" if crlf else "\n"
    text = end.join(lines) + (end if final_newline and lines else "")
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.fixture
def write() -> Writer:
    return write_lines


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"real data folder {DATA_DIR} is absent; set KGFORGE_DATA_DIR to the shared data folder")
    return DATA_DIR


_CACHE: dict[str, Dataset] = {}


@pytest.fixture(scope="session")
def real(data_dir: Path) -> Callable[[str], Dataset]:
    """Load a real dataset by name, once per test session."""

    def load(name: str) -> Dataset:
        folder = dataset_path(name, data_dir)
        if not folder.is_dir():
            pytest.skip(f"dataset folder {folder} is absent")
        if name not in _CACHE:
            _CACHE[name] = load_dataset(name, data_dir)
        return _CACHE[name]

    return load
