"""The LLM interface's building blocks: messages, usage metering, the OnError policy."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from kg_builder.llm import (
    LLM,
    BatchItem,
    LLMError,
    LLMOutputError,
    LLMResponse,
    OnError,
    TokenUsage,
    UsageMeter,
)
from kg_builder.llm.base import apply_on_error, normalize_messages


def test_messages_in_every_accepted_form():
    assert normalize_messages("hi") == [{"role": "user", "content": "hi"}]
    assert normalize_messages([("system", "s"), {"role": "user", "content": "u"}]) == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
    ]


@pytest.mark.parametrize("bad", [[], [("tool", "x")], [{"role": "user"}], [42]])
def test_bad_messages_are_refused(bad):
    with pytest.raises(LLMError):
        normalize_messages(bad)


def test_usage_meter_is_exact_under_threads_and_tasks():
    meter = UsageMeter()
    one = TokenUsage(prompt_tokens=3, completion_tokens=2, total_tokens=5)

    def hammer(_):
        for _ in range(500):
            meter.record(one)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hammer, range(8)))

    async def tasks():
        async def record():
            for _ in range(100):
                meter.record(one)
                await asyncio.sleep(0)

        await asyncio.gather(*(record() for _ in range(10)))

    asyncio.run(tasks())
    assert meter.requests == 8 * 500 + 1000
    assert meter.usage == TokenUsage(
        prompt_tokens=3 * 5000, completion_tokens=2 * 5000, total_tokens=5 * 5000
    )
    assert meter.reset().total_tokens == 25000 and meter.usage == TokenUsage() and meter.requests == 0


def test_on_error_ignore_logs_the_raw_answer_and_raise_raises(caplog):
    error = LLMOutputError("LLM answer is not valid JSON", raw="oops {")
    with caplog.at_level(logging.WARNING, logger="kg_builder.llm"):
        response = apply_on_error(
            error, OnError.IGNORE, content="oops {", usage=TokenUsage(), model="m", attempts=1
        )
    assert response.parsed is None and response.error == "LLM answer is not valid JSON"
    assert "oops {" in caplog.records[-1].getMessage()
    with pytest.raises(LLMOutputError):
        apply_on_error(error, OnError.RAISE, content="oops {", usage=TokenUsage(), model="m", attempts=1)


class _Echo(LLM):
    """A minimal LLM used to check the interface's shared batch() logic (no server involved)."""

    def __init__(self):
        self.model_name, self.meter, self.on_error = "echo", UsageMeter(), OnError.RAISE

    def invoke(self, messages, *, schema=None, on_error=None):
        raise NotImplementedError

    async def ainvoke(self, messages, *, schema=None, on_error=None):
        text = normalize_messages(messages)[-1]["content"]
        if text == "boom":
            raise LLMOutputError("bad answer", raw=text)
        if text == "bug":
            raise ZeroDivisionError("a bug must not be swallowed")
        await asyncio.sleep(0.01 if text == "slow" else 0)
        return LLMResponse(content=text)


def test_batch_captures_llm_errors_but_not_bugs():
    items = asyncio.run(_Echo().batch(["slow", "boom", "fast"]))
    assert [i.response.content if i.ok else type(i.error) for i in items] == ["slow", LLMOutputError, "fast"]
    assert all(isinstance(i, BatchItem) for i in items)
    with pytest.raises(ZeroDivisionError):
        asyncio.run(_Echo().batch(["fast", "bug"]))
