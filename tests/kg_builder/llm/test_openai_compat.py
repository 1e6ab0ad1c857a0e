"""OpenAICompatibleLLM against the OpenAI-compatible TEST DOUBLE (a scripted HTTP server, not a model)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from kg_builder.errors import ConfigError, RetryableError
from kg_builder.llm import (
    LLMError,
    LLMOutputError,
    LLMUnavailableError,
    OnError,
    OpenAICompatibleLLM,
    RelationChoice,
    Sampling,
    TokenUsage,
    UsageMeter,
    llm_from_settings,
    model_list,
)
from kg_builder.settings import Settings

pytestmark = pytest.mark.timeout(60)

AIR = {"relations": [{"relation": "PRODUCES", "reason": "Air is a basketball-shoe line, a product."}]}


def test_structured_answer_is_parsed_validated_and_sent_with_json_schema(double, make_llm):
    double.reply(AIR, usage=(120, 30))
    llm = make_llm()

    answer = llm.invoke([("system", "You choose relations."), ("user", "Entity: Air")], schema=RelationChoice)

    assert isinstance(answer.parsed, RelationChoice)
    assert answer.parsed.relations[0].relation == "PRODUCES"
    assert answer.attempts == 1 and answer.model == double.model
    (request,) = double.requests
    assert request.body["model"] == double.model
    assert [m["role"] for m in request.messages] == ["system", "user"]
    fmt = request.response_format
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "RelationChoice"
    assert fmt["json_schema"]["schema"] == RelationChoice.model_json_schema()


def test_plain_text_answer_without_schema(double, make_llm):
    double.reply("Air is a basketball-shoe line.")
    answer = make_llm().invoke("Who is Air?")
    assert answer.content == "Air is a basketball-shoe line." and answer.parsed is None
    assert "response_format" not in double.requests[0].body


def test_schema_is_enforced_by_kgforge_even_when_the_server_ignores_it(double, make_llm):
    # Valid JSON, wrong shape: a server without guided decoding can answer this.
    double.reply({"relations": [{"name": "PRODUCES"}]}, times=2)
    with pytest.raises(LLMOutputError, match="does not match RelationChoice") as info:
        make_llm().invoke("Entity: Air", schema=RelationChoice)
    assert '"name": "PRODUCES"' in info.value.raw


def test_usage_is_accounted_per_call_and_in_a_shared_meter(double, make_llm):
    meter = UsageMeter()
    double.reply(AIR, usage=(100, 20)).reply(AIR, usage=(50, 5))
    llm = make_llm(meter=meter)

    first = llm.invoke("a", schema=RelationChoice)
    second = asyncio.run(llm.ainvoke("b", schema=RelationChoice))

    assert first.usage == TokenUsage(prompt_tokens=100, completion_tokens=20, total_tokens=120)
    assert second.usage == TokenUsage(prompt_tokens=50, completion_tokens=5, total_tokens=55)
    assert meter.usage == TokenUsage(prompt_tokens=150, completion_tokens=25, total_tokens=175)
    assert meter.requests == 2


def test_malformed_json_is_re_asked_with_the_error_then_succeeds(double, make_llm):
    double.malformed(usage=(10, 4)).reply(AIR, usage=(30, 6))
    answer = make_llm(max_output_retries=1).invoke("Entity: Air", schema=RelationChoice)

    assert answer.parsed is not None and answer.attempts == 2
    assert answer.usage.total_tokens == 50  # both answers are paid for
    reask = double.requests[1].messages
    assert reask[:-2] == double.requests[0].messages
    assert reask[-2] == {"role": "assistant", "content": '{"relations": [{"relation": "BRAND_OF", '}
    assert reask[-1]["role"] == "user" and "not valid JSON" in reask[-1]["content"]


def test_malformed_json_after_re_asks_raises_under_on_error_raise(double, make_llm):
    double.malformed(times=3)
    with pytest.raises(LLMOutputError, match="not valid JSON") as info:
        make_llm(max_output_retries=2, on_error=OnError.RAISE).invoke("x", schema=RelationChoice)
    assert len(double.requests) == 3
    assert info.value.raw.startswith('{"relations"')
    assert not isinstance(info.value, RetryableError)


def test_malformed_json_under_on_error_ignore_returns_none_and_logs_raw(double, make_llm, caplog):
    double.malformed("I think Air makes shoes.", times=2)
    with caplog.at_level(logging.WARNING, logger="kg_builder.llm"):
        answer = make_llm().invoke("x", schema=RelationChoice, on_error=OnError.IGNORE)

    assert answer.parsed is None and answer.error and answer.attempts == 2
    assert answer.content == "I think Air makes shoes."
    ignored = [r for r in caplog.records if "OnError.IGNORE" in r.getMessage()]
    assert len(ignored) == 1 and ignored[0].levelno == logging.WARNING
    assert "I think Air makes shoes." in ignored[0].getMessage()


def test_truncated_answer_is_an_output_error(double, make_llm):
    double.reply('{"relations": [', finish_reason="length", usage=(10, 8))
    llm = make_llm(max_output_retries=0)
    with pytest.raises(LLMOutputError, match="cut off"):
        llm.invoke("x", schema=RelationChoice)
    assert llm.meter.usage.total_tokens == 18


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_timeouts_are_retried_then_raise_unavailable_within_a_bound(double, make_llm, mode):
    double.delay(5.0, AIR, times=3)
    llm = make_llm(timeout=0.3, max_retries=2)
    started = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="after 3 attempt") as info:
        if mode == "sync":
            llm.invoke("x", schema=RelationChoice)
        else:
            asyncio.run(llm.ainvoke("x", schema=RelationChoice))
    elapsed = time.monotonic() - started

    assert isinstance(info.value, RetryableError) and info.value.attempts == 3
    assert len(double.requests) == 3
    assert elapsed < 3 * 0.3 + 2 * 0.05 + 1.5  # three timeouts, two short backoffs, some slack


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_http_429_then_success_counts_two_attempts(double, make_llm, mode):
    double.status(429).reply(AIR, usage=(7, 3))
    llm = make_llm()
    answer = (
        llm.invoke("x", schema=RelationChoice)
        if mode == "sync"
        else asyncio.run(llm.ainvoke("x", schema=RelationChoice))
    )
    assert answer.parsed is not None and answer.attempts == 2
    assert len(double.requests) == 2  # the client's own retries are off: every request is ours
    assert llm.meter.requests == 1 and llm.meter.usage.total_tokens == 10


def test_retry_after_header_of_429_is_honoured(double, make_llm):
    double.status(429, retry_after=0.4).reply(AIR)
    started = time.monotonic()
    make_llm(backoff_max=1.0).invoke("x", schema=RelationChoice)
    gap = double.requests[1].started - double.requests[0].started
    assert gap >= 0.4 and time.monotonic() - started < 3


def test_http_500_on_every_attempt_raises_unavailable(double, make_llm):
    double.status(500, times=4)
    llm = make_llm(max_retries=3)
    with pytest.raises(LLMUnavailableError, match="after 4 attempt.*500") as info:
        llm.invoke("x", schema=RelationChoice)
    assert len(double.requests) == 4 and info.value.attempts == 4
    assert double.pending == 0


def test_client_errors_are_not_retried(double, make_llm):
    # The double answers 400 once its script is empty.
    with pytest.raises(LLMError, match="HTTP 400") as info:
        make_llm(max_retries=3).invoke("x")
    assert not isinstance(info.value, RetryableError)
    assert len(double.requests) == 1


def test_concurrency_bound_is_respected(double, make_llm):
    double.reply(AIR, delay=0.15, times=12)
    llm = make_llm(max_concurrency=3)

    async def main():
        return await asyncio.gather(*(llm.ainvoke(f"item {i}", schema=RelationChoice) for i in range(12)))

    answers = asyncio.run(main())
    assert all(a.parsed is not None for a in answers)
    assert double.max_in_flight == 3  # bounded, and the bound is actually used


def test_sync_invoke_from_threads_is_bounded_too(double, make_llm):
    from concurrent.futures import ThreadPoolExecutor

    double.reply(AIR, delay=0.1, times=8)
    llm = make_llm(max_concurrency=2)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: llm.invoke(f"item {i}", schema=RelationChoice), range(8)))
    assert len(answers) == 8 and double.max_in_flight == 2


def test_batch_keeps_order_and_captures_per_item_errors(double, make_llm):
    def responder(body):
        item = body["messages"][-1]["content"]
        if item == "item 2":
            return double.Behaviour(content="not json at all")
        if item == "item 4":
            return double.Behaviour(status=500)
        number = int(item.split()[1])
        # Later items answer sooner, so completion order differs from input order.
        return double.Behaviour(
            content=f'{{"relations": [{{"relation": "R{number}", "reason": "r"}}]}}',
            delay=0.05 * (6 - number),
        )

    double.responder = responder
    llm = make_llm(max_concurrency=3, max_retries=1, max_output_retries=0)
    items = asyncio.run(llm.batch([f"item {i}" for i in range(6)], schema=RelationChoice))

    assert [i.index for i in items] == list(range(6))
    assert [i.ok for i in items] == [True, True, False, True, False, True]
    assert [items[i].unwrap().parsed.relations[0].relation for i in (0, 1, 3, 5)] == ["R0", "R1", "R3", "R5"]
    assert isinstance(items[2].error, LLMOutputError)
    assert isinstance(items[4].error, LLMUnavailableError)
    with pytest.raises(LLMUnavailableError):
        items[4].unwrap()
    assert double.max_in_flight <= 3


def test_injected_rate_limiter_spaces_requests(double, make_llm):
    from langchain_core.rate_limiters import InMemoryRateLimiter

    double.reply(AIR, times=4)
    limiter = InMemoryRateLimiter(requests_per_second=10, check_every_n_seconds=0.005, max_bucket_size=1)
    llm = make_llm(rate_limiter=limiter, max_concurrency=4)

    async def main():
        await asyncio.gather(*(llm.ainvoke("x", schema=RelationChoice) for _ in range(4)))

    asyncio.run(main())
    starts = sorted(r.started for r in double.requests)
    assert starts[-1] - starts[0] >= 0.25  # 4 requests at 10/s: about 0.3 s apart end to end


def test_same_client_works_across_event_loops(double, make_llm):
    # A worker may call asyncio.run() once per job with one long-lived client.
    double.reply(AIR, times=3)
    llm = make_llm(max_concurrency=1)
    for _ in range(3):
        assert asyncio.run(llm.ainvoke("x", schema=RelationChoice)).parsed is not None


def test_from_settings_reads_kgforge_llm_variables(double, monkeypatch):
    monkeypatch.setenv("KGFORGE_LLM_BASE_URL", double.base_url)
    monkeypatch.setenv("KGFORGE_LLM_MODEL", double.model)
    monkeypatch.setenv("KGFORGE_LLM_API_KEY", "sk-test-key")
    double.reply(AIR)

    llm = OpenAICompatibleLLM.from_settings(Settings(), max_retries=0)
    assert llm.invoke("x", schema=RelationChoice).parsed is not None
    assert double.requests[0].headers.get("authorization") == "Bearer sk-test-key"
    llm.close()


def test_offline_mode_without_base_url(monkeypatch):
    monkeypatch.delenv("KGFORGE_LLM_BASE_URL", raising=False)
    settings = Settings()
    assert llm_from_settings(settings) is None
    with pytest.raises(ConfigError, match="KGFORGE_LLM_BASE_URL"):
        OpenAICompatibleLLM.from_settings(settings)


def test_base_url_without_model_is_a_config_error():
    with pytest.raises(ConfigError, match="KGFORGE_LLM_MODEL"):
        llm_from_settings(Settings(llm_base_url="http://127.0.0.1:9/v1", llm_model=None))


# --- sampling: distinct requests for the llm generator's samples ------------------------------------------
def test_sampling_plan_gives_each_model_distinct_seeds_and_one_request_at_temperature_zero(make_llm):
    llm = make_llm(sample_models=["m-a", "m-b", "m-a"], sample_temperature=0.8, sample_seed=5)
    plan = llm.sampling_plan(2)
    assert [(s.model, s.seed, s.sample, s.temperature) for s in plan] == [
        ("m-a", 5, 0, 0.8), ("m-a", 6, 1, 0.8), ("m-b", 5, 0, 0.8), ("m-b", 6, 1, 0.8)]
    assert [(s.model, s.seed) for s in make_llm(sample_temperature=0.0).sampling_plan(3)] == [
        ("double/scripted-model", 0)]
    with pytest.raises(ConfigError, match="sample_temperature"):
        make_llm(sample_temperature=-0.1)


def test_per_request_sampling_overrides_the_defaults_for_that_request_only(double, make_llm):
    double.reply(AIR, times=2)
    llm = make_llm(temperature=0.0, seed=None)
    answer = llm.invoke("a", schema=RelationChoice, sampling=Sampling(model="other", temperature=1.1, seed=9))
    asyncio.run(llm.ainvoke("b", schema=RelationChoice))
    first, second = double.requests
    assert (first.model, first.temperature, first.seed) == ("other", 1.1, 9) and answer.model == "other"
    assert (second.model, second.temperature, second.seed) == (double.model, 0.0, None)


def test_sampling_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("KGFORGE_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("KGFORGE_LLM_MODELS", " qwen-7b, llama-8b ,qwen-7b,")
    monkeypatch.setenv("KGFORGE_LLM_TEMPERATURE", "0.9")
    monkeypatch.setenv("KGFORGE_LLM_SEED", "100")
    monkeypatch.delenv("KGFORGE_LLM_MODEL", raising=False)
    llm = llm_from_settings(Settings())
    assert llm.model_name == "qwen-7b"  # the first listed model when KGFORGE_LLM_MODEL is unset
    assert llm.sample_models == ("qwen-7b", "llama-8b") and llm.sample_temperature == 0.9
    assert [s.seed for s in llm.sampling_plan(2)] == [100, 101, 100, 101]
    llm.close()
    monkeypatch.delenv("KGFORGE_LLM_MODELS")
    single = OpenAICompatibleLLM.from_settings(Settings(llm_model="m"), sample_temperature=0.0)  # options win
    assert single.sample_models == () and [(s.model, s.seed) for s in single.sampling_plan(3)] == [("m", 100)]
    single.close()
    assert model_list(None) == [] and model_list(" , ") == []
    monkeypatch.setenv("KGFORGE_LLM_TEMPERATURE", "3")
    with pytest.raises(ValueError, match="llm_temperature"):
        Settings()
