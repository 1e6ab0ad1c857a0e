"""Fixtures for the LLM-layer tests: a running OpenAI-compatible TEST DOUBLE and clients for it.

The double (``llm/openai_double.py``) is a real HTTP server on a loopback port that
answers from a script; it is not a model. It is loaded by file path because the suite runs with
``--import-mode=importlib`` and ``tests/`` is not a package.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kg_builder.llm import OpenAICompatibleLLM


def _load_double_module():
    name = "kgforge_tests_openai_double"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "llm" / "openai_double.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve their module through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[name]


openai_double = _load_double_module()
OpenAIDouble = openai_double.OpenAIDouble


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback traffic must reach the double, never a proxy from the environment."""
    for var in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "OPENAI_BASE_URL",
        "OPENAI_API_BASE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def double() -> Iterator[OpenAIDouble]:
    """A fresh test double per test (starting one takes milliseconds; nothing is shared)."""
    with OpenAIDouble() as d:
        yield d


@pytest.fixture
def make_llm(double: OpenAIDouble) -> Iterator[Callable[..., OpenAICompatibleLLM]]:
    """Build a client for the double with fast, seeded backoff; options override the defaults."""
    made: list[OpenAICompatibleLLM] = []

    def make(**options) -> OpenAICompatibleLLM:
        kwargs = {
            "base_url": double.base_url,
            "model": double.model,
            "timeout": 2.0,
            "max_retries": 2,
            "max_output_retries": 1,
            "max_concurrency": 4,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
            "rng": random.Random(0),
        }
        kwargs.update(options)
        llm = OpenAICompatibleLLM(**kwargs)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        llm.close()
