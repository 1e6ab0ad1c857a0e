"""An :class:`~kg_builder.llm.base.LLM` for any OpenAI-compatible server (vLLM's ``vllm serve``).

Requests go through LangChain's ``ChatOpenAI`` (Chat Completions API only). Structured output is
asked for with a JSON-schema ``response_format`` (vLLM turns it into guided decoding) and the
answer is then validated against the pydantic model here, whatever the server claims.

The retry policy is ours, not the client's: ``ChatOpenAI`` and the OpenAI client run with
``max_retries=0``. Transient failures (timeouts, connection errors, HTTP 429, HTTP 5xx) are retried
with exponential backoff and jitter up to ``max_retries`` times, then raise
:class:`~kg_builder.llm.base.LLMUnavailableError`. An answer that is not valid JSON or violates the
schema is re-asked up to ``max_output_retries`` times (the invalid answer and the validation error
are shown to the model), then the :class:`~kg_builder.llm.base.OnError` policy applies.

Example:
    >>> llm = OpenAICompatibleLLM(base_url="http://localhost:8000/v1", model="Qwen/Qwen2.5-7B-Instruct")
    >>> prompt = get_prompt("relation_filter")
    >>> answer = llm.invoke(prompt.render(...), schema=RelationChoice)
    >>> answer.parsed.relations, llm.meter.usage
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import openai
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from kg_builder.errors import ConfigError
from kg_builder.llm.base import (
    LLM,
    LLMError,
    LLMOutputError,
    LLMResponse,
    LLMUnavailableError,
    Message,
    Messages,
    OnError,
    Sampling,
    TokenUsage,
    UsageMeter,
    apply_on_error,
    normalize_messages,
    parse_structured,
    truncate_raw,
)
from kg_builder.settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: vLLM accepts any key unless started with ``--api-key``; the OpenAI client insists on one.
NO_API_KEY = "EMPTY"

_REASK = (
    "Your previous answer could not be used: {error}\n"
    "Answer again with only a JSON object that matches the requested schema, and nothing else."
)


@dataclass
class _LoopState:
    """What must belong to one event loop: the semaphore and the async HTTP client."""

    semaphore: asyncio.Semaphore
    chat: ChatOpenAI
    http: httpx.AsyncClient


class _Transient(Exception):
    """Internal: one attempt failed in a way worth retrying (wraps the cause)."""

    def __init__(self, cause: BaseException, retry_after: float | None = None):
        self.cause = cause
        self.retry_after = retry_after
        super().__init__(str(cause))


class OpenAICompatibleLLM(LLM):
    """Chat model on an OpenAI-compatible HTTP endpoint, with retries, a concurrency bound and metering.

    Args:
        base_url: the API root, e.g. ``http://localhost:8000/v1``.
        model: the served model name (``GET {base_url}/models`` lists it).
        api_key: the server's key, if it has one (vLLM ``--api-key``).
        timeout: seconds one HTTP request may take, end to end (async) or per network phase (sync).
        max_retries: retries after a transient failure; ``max_retries + 1`` requests at most.
        max_output_retries: re-asks after an invalid structured answer, before the policy applies.
        max_concurrency: requests in flight at once, per event loop for ``ainvoke``/``batch`` and
            across threads for ``invoke``.
        backoff_base, backoff_max: the wait before retry ``n`` is ``min(backoff_max, backoff_base *
            2**(n-1))`` with "equal jitter" (half fixed, half random); a ``Retry-After`` header on
            a 429 is honoured up to ``backoff_max``.
        temperature, max_tokens, seed: sampling options sent with every request (a call's
            :class:`~kg_builder.llm.base.Sampling` overrides model, temperature and seed).
        sample_models, sample_temperature, sample_seed: what
            :meth:`~kg_builder.llm.base.LLM.sampling_plan` makes of "n samples" (the ``llm``
            generator): the models to vote across (default: ``model``), their temperature and
            the seed of sample 0.
        on_error: the default :class:`OnError` policy (overridable per call).
        meter: where tokens are counted; share one to account for a whole job.
        rate_limiter: an optional LangChain rate limiter (e.g. ``InMemoryRateLimiter``), acquired
            before every HTTP request (retries included); its wait does not count as timeout.
        strict_schema: send ``"strict": true`` with the JSON schema (OpenAI's strict mode). vLLM
            guides decoding either way.
        rng: the random source of the jitter (tests pass a seeded one).
    """

    supports_structured_output = True

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_output_retries: int = 1,
        max_concurrency: int = 8,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
        seed: int | None = None,
        on_error: OnError = OnError.RAISE,
        meter: UsageMeter | None = None,
        rate_limiter: BaseRateLimiter | None = None,
        strict_schema: bool = False,
        rng: random.Random | None = None,
        sample_models: Sequence[str] | None = None,
        sample_temperature: float = 0.7,
        sample_seed: int = 0,
    ):
        if not base_url:
            raise ConfigError("OpenAICompatibleLLM needs a base_url such as http://localhost:8000/v1")
        if not model:
            raise ConfigError(f"OpenAICompatibleLLM needs a model name; GET {base_url}/models lists them")
        if not 0.0 <= sample_temperature <= 2.0:
            raise ConfigError(f"sample_temperature must be within [0, 2]; got {sample_temperature}")
        if max_concurrency < 1 or max_retries < 0 or max_output_retries < 0 or timeout <= 0:
            raise ConfigError(
                "max_concurrency must be >= 1, max_retries and max_output_retries >= 0, timeout > 0; got "
                f"{max_concurrency=}, {max_retries=}, {max_output_retries=}, {timeout=}"
            )
        self.base_url = base_url.rstrip("/")
        self.model_name = model
        self._api_key = api_key or NO_API_KEY
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.max_output_retries = max_output_retries
        self.max_concurrency = max_concurrency
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.sample_models = tuple(dict.fromkeys(m for m in (sample_models or ()) if m))
        self.sample_temperature = float(sample_temperature)
        self.sample_seed = sample_seed
        self.on_error = OnError(on_error)
        self.meter = meter if meter is not None else UsageMeter()
        self.rate_limiter = rate_limiter
        self.strict_schema = strict_schema
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()

        self._sync_http = httpx.Client(timeout=self.timeout)
        self._sync_chat = self._make_chat(http_client=self._sync_http)
        self._sync_semaphore = threading.BoundedSemaphore(max_concurrency)
        # An asyncio.Semaphore and an httpx.AsyncClient belong to the loop that first used them; a
        # worker that calls asyncio.run() per job gets fresh ones for each loop.
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._loops_lock = threading.Lock()

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Settings | None = None, **options: Any) -> OpenAICompatibleLLM:
        """Build from ``KGFORGE_LLM_BASE_URL``, ``KGFORGE_LLM_MODEL`` and ``KGFORGE_LLM_API_KEY``;
        the generator's sampling from ``KGFORGE_LLM_MODELS`` (comma-separated; the first one is the
        model when ``KGFORGE_LLM_MODEL`` is unset), ``KGFORGE_LLM_TEMPERATURE`` and
        ``KGFORGE_LLM_SEED``.

        ``options`` are passed to the constructor (timeouts, retries, concurrency) and win over
        the settings.

        Raises:
            ConfigError: no base URL (offline mode: use :func:`llm_from_settings` to get ``None``
                instead) or no model name.
        """
        s = settings or get_settings()
        if not s.llm_base_url:
            raise ConfigError(
                "No LLM endpoint: set KGFORGE_LLM_BASE_URL (e.g. http://localhost:8000/v1 for vLLM) "
                "and KGFORGE_LLM_MODEL, or run the pipeline in offline mode without an LLM"
            )
        models = model_list(s.llm_models)
        model = s.llm_model or (models[0] if models else None)
        if not model:
            raise ConfigError(
                f"KGFORGE_LLM_BASE_URL is set ({s.llm_base_url}) but KGFORGE_LLM_MODEL is not; set it to "
                f"the served model name (GET {s.llm_base_url.rstrip('/')}/models lists it)"
            )
        key = s.llm_api_key.get_secret_value() if s.llm_api_key is not None else None
        sampling: dict[str, Any] = {"sample_models": models or None, "sample_temperature": s.llm_temperature,
                                    "sample_seed": s.llm_seed}
        return cls(base_url=s.llm_base_url, model=model, api_key=key, **{**sampling, **options})

    def _make_chat(
        self, *, http_client: httpx.Client | None = None, http_async_client: httpx.AsyncClient | None = None
    ) -> ChatOpenAI:
        kwargs: dict[str, Any] = {}
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        return ChatOpenAI(
            model=self.model_name,
            base_url=self.base_url,
            api_key=self._api_key,
            timeout=self.timeout,
            max_retries=0,  # the retry policy is ours (see the module docstring)
            use_responses_api=False,  # vLLM and most compatible servers speak Chat Completions
            stream_usage=False,
            http_client=http_client,
            http_async_client=http_async_client,
            **kwargs,
        )

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._loops_lock:
            state = self._loops.get(loop)
            if state is None:
                http = httpx.AsyncClient(timeout=self.timeout)
                state = _LoopState(
                    semaphore=asyncio.Semaphore(self.max_concurrency),
                    chat=self._make_chat(http_client=self._sync_http, http_async_client=http),
                    http=http,
                )
                self._loops[loop] = state
            return state

    def close(self) -> None:
        """Close the synchronous HTTP client (async clients close with :meth:`aclose`)."""
        self._sync_http.close()

    async def aclose(self) -> None:
        """Close the HTTP client of the running event loop."""
        loop = asyncio.get_running_loop()
        with self._loops_lock:
            state = self._loops.pop(loop, None)
        if state is not None:
            await state.http.aclose()

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleLLM(base_url={self.base_url!r}, model={self.model_name!r}, "
            f"max_concurrency={self.max_concurrency}, max_retries={self.max_retries})"
        )

    # --- the interface -------------------------------------------------------------------------
    def invoke(
        self,
        messages: Messages,
        *,
        schema: type[BaseModel] | None = None,
        on_error: OnError | None = None,
        sampling: Sampling | None = None,
    ) -> LLMResponse:
        conversation = normalize_messages(messages)
        call = _Call(self, schema, on_error, sampling)
        while True:
            message, attempts = self._request_with_retries(conversation, call)
            done = call.absorb(message, attempts, conversation)
            if done is not None:
                return done

    async def ainvoke(
        self,
        messages: Messages,
        *,
        schema: type[BaseModel] | None = None,
        on_error: OnError | None = None,
        sampling: Sampling | None = None,
    ) -> LLMResponse:
        conversation = normalize_messages(messages)
        call = _Call(self, schema, on_error, sampling)
        while True:
            message, attempts = await self._arequest_with_retries(conversation, call)
            done = call.absorb(message, attempts, conversation)
            if done is not None:
                return done

    # --- one request, with the transient-failure retries ---------------------------------------
    def _request_with_retries(
        self, conversation: list[Message], call: _Call
    ) -> tuple[AIMessage | _TruncatedAnswer, int]:
        lc_messages = _to_langchain(conversation)
        for attempt in range(1, self.max_retries + 2):
            try:
                with self._sync_semaphore:
                    if self.rate_limiter is not None:
                        self.rate_limiter.acquire(blocking=True)
                    try:
                        return self._sync_chat.invoke(lc_messages, **call.request_kwargs), attempt
                    except Exception as e:  # sorted by _classify; unknown ones re-raise unchanged
                        outcome = self._classify(e)
                        if isinstance(outcome, _TruncatedAnswer):
                            return outcome, attempt
                        if outcome is e:
                            raise
                        raise outcome from e
            except _Transient as t:
                if attempt > self.max_retries:
                    raise self._unavailable(t, attempt, call) from t.cause
                time.sleep(self._backoff(attempt, t))
        raise AssertionError("unreachable")

    async def _arequest_with_retries(
        self, conversation: list[Message], call: _Call
    ) -> tuple[AIMessage | _TruncatedAnswer, int]:
        lc_messages = _to_langchain(conversation)
        state = self._loop_state()
        for attempt in range(1, self.max_retries + 2):
            try:
                # The slot is held for the request only, not while backing off.
                async with state.semaphore:
                    if self.rate_limiter is not None:
                        # Waiting for the limiter does not count against the request timeout.
                        await self.rate_limiter.aacquire(blocking=True)
                    try:
                        async with asyncio.timeout(self.timeout):
                            return await state.chat.ainvoke(lc_messages, **call.request_kwargs), attempt
                    except Exception as e:  # sorted by _classify; unknown ones re-raise unchanged
                        outcome = self._classify(e)
                        if isinstance(outcome, _TruncatedAnswer):
                            return outcome, attempt
                        if outcome is e:
                            raise
                        raise outcome from e
            except _Transient as t:
                if attempt > self.max_retries:
                    raise self._unavailable(t, attempt, call) from t.cause
                await asyncio.sleep(self._backoff(attempt, t))
        raise AssertionError("unreachable")

    def _classify(self, e: Exception) -> Exception:
        """Map a client exception to ``_Transient`` (retry), ``_TruncatedAnswer`` (an output problem),
        an :class:`LLMError` (give up), or ``e`` itself (a bug: let it propagate)."""
        if isinstance(
            e,
            (
                TimeoutError,
                openai.APITimeoutError,
                openai.APIConnectionError,
                httpx.TimeoutException,
                httpx.TransportError,
            ),
        ):
            return _Transient(e)
        if isinstance(e, openai.APIStatusError):
            if e.status_code == 429 or e.status_code == 408 or e.status_code >= 500:
                return _Transient(e, _retry_after(e))
            return LLMError(
                f"LLM server {self.base_url} refused the request with HTTP {e.status_code}: {e.message}. "
                "Check KGFORGE_LLM_MODEL, KGFORGE_LLM_API_KEY and the prompt length"
            )
        if isinstance(e, (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError)):
            # The server answered but the answer was cut off or filtered: an output problem, which the
            # re-ask / OnError path handles. The completion's usage still counts.
            return _TruncatedAnswer(e)
        if isinstance(e, openai.OpenAIError):
            return LLMError(f"LLM client error talking to {self.base_url}: {type(e).__name__}: {e}")
        return e

    def _unavailable(self, t: _Transient, attempts: int, call: _Call) -> LLMUnavailableError:
        call.attempts += attempts
        return LLMUnavailableError(
            f"LLM server {self.base_url} unavailable after {attempts} attempt(s) "
            f"(last: {self._describe(t.cause)}). Check that it is up "
            f"(GET {self.base_url}/models), or raise the timeout ({self.timeout}s) / max_retries "
            f"({self.max_retries}); the job can be retried later",
            attempts=call.attempts,
        )

    def _backoff(self, attempt: int, t: _Transient) -> float:
        cap = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        with self._rng_lock:
            delay = cap / 2 + self._rng.uniform(0, cap / 2)
        if t.retry_after is not None:
            delay = max(delay, min(t.retry_after, self.backoff_max))
        logger.info(
            "LLM request failed (%s); retry %d/%d in %.2fs",
            self._describe(t.cause),
            attempt,
            self.max_retries,
            delay,
        )
        return delay

    def _describe(self, cause: BaseException) -> str:
        detail = str(cause) or (
            f"no answer within {self.timeout}s"
            if isinstance(cause, (TimeoutError, openai.APITimeoutError, httpx.TimeoutException))
            else "no detail"
        )
        return f"{type(cause).__name__}: {detail}"


class _TruncatedAnswer(Exception):
    """Internal: the server stopped the answer early (length / content filter)."""

    def __init__(self, cause: openai.OpenAIError):
        self.cause = cause
        completion = getattr(cause, "completion", None)
        self.content = ""
        self.usage = TokenUsage()
        self.model = ""
        if completion is not None:
            if completion.choices:
                self.content = completion.choices[0].message.content or ""
            if completion.usage is not None:
                self.usage = TokenUsage(
                    prompt_tokens=completion.usage.prompt_tokens or 0,
                    completion_tokens=completion.usage.completion_tokens or 0,
                    total_tokens=completion.usage.total_tokens or 0,
                )
            self.model = completion.model or ""
        super().__init__(str(cause))


class _Call:
    """The state of one ``invoke``: attempts, usage, re-asks, and the policy at the end."""

    def __init__(
        self,
        llm: OpenAICompatibleLLM,
        schema: type[BaseModel] | None,
        on_error: OnError | None,
        sampling: Sampling | None = None,
    ):
        self.llm = llm
        self.model = (sampling.model if sampling is not None else None) or llm.model_name
        self.schema = schema
        self.policy = OnError(on_error) if on_error is not None else llm.on_error
        self.attempts = 0
        self.usage = TokenUsage()
        self.output_failures = 0
        # ChatOpenAI merges call kwargs over its defaults, so these override model/temperature/seed.
        self.request_kwargs: dict[str, Any] = dict(sampling.request_options()) if sampling is not None else {}
        if schema is not None:
            self.request_kwargs["response_format"] = response_format_for(schema, strict=llm.strict_schema)

    def absorb(
        self, message: AIMessage | _TruncatedAnswer, attempts: int, conversation: list[Message]
    ) -> LLMResponse | None:
        """Account for one answer; return the final response, or ``None`` to re-ask.

        On a re-ask, the invalid answer and a correction are appended to ``conversation``.
        """
        self.attempts += attempts
        if isinstance(message, _TruncatedAnswer):
            content, usage, model = message.content, message.usage, message.model or self.model
            error: LLMOutputError | None = LLMOutputError(
                f"LLM answer was cut off ({type(message.cause).__name__}); raise max_tokens "
                f"(now {self.llm.max_tokens}) or shorten the requested output",
                raw=content,
                schema=self.schema,
            )
        else:
            content, usage = _text(message), _usage(message)
            model = str(message.response_metadata.get("model_name") or self.model)
            error = None
        self.llm.meter.record(usage)
        self.usage = self.usage + usage

        parsed = None
        if error is None and self.schema is not None:
            try:
                parsed = parse_structured(content, self.schema)
            except LLMOutputError as e:
                error = e
        if error is None:
            return LLMResponse(
                content=content, parsed=parsed, usage=self.usage, model=model, attempts=self.attempts
            )
        if self.output_failures < self.llm.max_output_retries:
            self.output_failures += 1
            logger.warning(
                "LLM answer invalid (%s); re-asking (%d/%d). Raw content: %r",
                error,
                self.output_failures,
                self.llm.max_output_retries,
                truncate_raw(content, 500),
            )
            conversation.append({"role": "assistant", "content": content})
            conversation.append({"role": "user", "content": _REASK.format(error=error)})
            return None
        return apply_on_error(
            error, self.policy, content=content, usage=self.usage, model=model, attempts=self.attempts
        )


def response_format_for(schema: type[BaseModel], *, strict: bool = False) -> dict[str, Any]:
    """The OpenAI ``response_format`` asking for JSON that matches ``schema`` (vLLM guided decoding)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": strict},
    }


def model_list(value: str | None) -> list[str]:
    """``KGFORGE_LLM_MODELS`` as a list: split on commas, blanks and repeats dropped."""
    return list(dict.fromkeys(m.strip() for m in (value or "").split(",") if m.strip()))


def llm_from_settings(settings: Settings | None = None, **options: Any) -> OpenAICompatibleLLM | None:
    """The configured LLM, or ``None`` in offline mode (no ``KGFORGE_LLM_BASE_URL``).

    Raises:
        ConfigError: a base URL is set but the model name is missing.
    """
    s = settings or get_settings()
    if not s.llm_base_url:
        logger.info("KGFORGE_LLM_BASE_URL is not set: offline mode, LLM steps use their trained counterparts")
        return None
    return OpenAICompatibleLLM.from_settings(s, **options)


def _to_langchain(conversation: list[Message]) -> list[BaseMessage]:
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m["role"]](content=m["content"]) for m in conversation]


def _text(message: AIMessage | AIMessageChunk) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content)


def _usage(message: AIMessage) -> TokenUsage:
    meta = message.usage_metadata
    if not meta:
        logger.warning("LLM response carried no token usage; counting zero tokens for it")
        return TokenUsage()
    return TokenUsage(
        prompt_tokens=meta.get("input_tokens", 0),
        completion_tokens=meta.get("output_tokens", 0),
        total_tokens=meta.get("total_tokens", 0),
    )


def _retry_after(e: openai.APIStatusError) -> float | None:
    try:
        value = e.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, ValueError):
        return None


__all__ = ["NO_API_KEY", "OpenAICompatibleLLM", "llm_from_settings", "model_list", "response_format_for"]
