"""The one LLM interface every kgforge component talks to.

A component (``RelationFilter``, ``EntityGenerator``, the RAG summariser) receives an :class:`LLM` in
its ``__init__`` and calls :meth:`LLM.invoke` / :meth:`LLM.ainvoke` with chat messages and, when it
wants a structured answer, a pydantic model. It never sees the transport (LangChain, OpenAI client,
vLLM), so a test or another backend can stand in without touching the component.

What a caller can rely on, whatever the implementation:

* a structured answer is validated against the pydantic model by kgforge itself (the server's
  JSON-schema guidance is a help, not a guarantee);
* invalid output (not JSON, or JSON that violates the model) is handled by an explicit
  :class:`OnError` policy: ``RAISE`` raises :class:`LLMOutputError`, ``IGNORE`` returns a response
  with ``parsed=None`` and logs a warning with the raw content. Output is never dropped silently;
* transient failures that survive the retries raise :class:`LLMUnavailableError`, a
  :class:`~kg_builder.errors.RetryableError`, so a worker can retry the whole job later;
* every token is counted in a :class:`UsageMeter`;
* a call may carry a :class:`Sampling` (model, temperature, seed) that overrides the instance's
  defaults for that request only. :meth:`LLM.sampling_plan` turns "``n`` samples" into distinct
  requests: every model in ``sample_models`` (default: ``model_name``), each with ``n`` seeds
  ``sample_seed + i`` at ``sample_temperature``; at temperature 0 one request per model, since
  further samples would only repeat it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import ClassVar, Literal, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kg_builder.errors import KGForgeError, RetryableError

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

#: How much of an invalid answer goes into a log line or an error message.
RAW_LOG_CHARS = 2000


# --- errors ----------------------------------------------------------------------------------------
class LLMError(KGForgeError):
    """The LLM call failed in a way that retrying the same request will not fix."""


class LLMUnavailableError(RetryableError, LLMError):
    """The LLM server timed out, refused (HTTP 429) or failed (HTTP 5xx, connection) on every retry.

    A :class:`~kg_builder.errors.RetryableError`: the job can be retried later. ``attempts`` is the
    number of HTTP requests made.
    """

    def __init__(self, message: str, *, attempts: int = 0):
        self.attempts = attempts
        super().__init__(message)


class LLMOutputError(LLMError):
    """The answer is not valid JSON or violates the requested schema (after any re-asks).

    ``raw`` is the answer as received; ``schema`` the pydantic model it was checked against.
    """

    def __init__(self, message: str, *, raw: str = "", schema: type[BaseModel] | None = None):
        self.raw = raw
        self.schema = schema
        super().__init__(message)


# --- policy, messages, usage -----------------------------------------------------------------------
class OnError(str, Enum):
    """What to do with an answer that cannot be parsed or validated.

    ``RAISE``: raise :class:`LLMOutputError`. ``IGNORE``: return the response with ``parsed=None``
    and log a warning carrying the raw content (the caller decides what a missing answer means).
    """

    RAISE = "raise"
    IGNORE = "ignore"


Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    """One chat message, in the OpenAI shape."""

    role: Role
    content: str


#: What ``invoke`` accepts: a plain string (one user message) or a sequence of messages given as
#: ``{"role": ..., "content": ...}`` dicts or ``(role, content)`` pairs.
Messages = str | Sequence[Message | Mapping[str, str] | tuple[str, str]]

_ROLES = {"system", "user", "assistant"}


def normalize_messages(messages: Messages) -> list[Message]:
    """Turn any accepted message form into a list of ``{"role", "content"}`` dicts.

    Raises:
        LLMError: a message has an unknown role or no string content, or the list is empty.
    """
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    out: list[Message] = []
    for i, m in enumerate(messages):
        if isinstance(m, tuple):
            role, content = m
        elif isinstance(m, Mapping):
            role, content = m.get("role"), m.get("content")
        else:
            raise LLMError(f"message {i} is a {type(m).__name__}; pass a dict with role and content")
        if role not in _ROLES or not isinstance(content, str):
            raise LLMError(
                f"message {i} needs a role in {sorted(_ROLES)} and string content; got role={role!r}"
            )
        out.append({"role": role, "content": content})  # type: ignore[typeddict-item]
    if not out:
        raise LLMError("no messages to send; pass at least one user message")
    return out


class TokenUsage(BaseModel):
    """Tokens spent by one call (re-asks and retries included) or accumulated by a meter."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class UsageMeter:
    """Accumulates token usage across calls, threads and event loops.

    One meter can be shared by several LLM instances (pass ``meter=`` to each) to account for a
    whole job. Updates take a lock and never await, so they are safe from threads and tasks alike.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage = TokenUsage()
        self._requests = 0

    def record(self, usage: TokenUsage, *, requests: int = 1) -> None:
        """Add the usage of ``requests`` answered HTTP requests."""
        with self._lock:
            self._usage = self._usage + usage
            self._requests += requests

    @property
    def usage(self) -> TokenUsage:
        """The total so far (an immutable snapshot)."""
        with self._lock:
            return self._usage

    @property
    def requests(self) -> int:
        """How many answered requests were recorded."""
        with self._lock:
            return self._requests

    def reset(self) -> TokenUsage:
        """Return the total so far and start again from zero."""
        with self._lock:
            usage, self._usage, self._requests = self._usage, TokenUsage(), 0
            return usage

    def __repr__(self) -> str:
        u = self.usage
        return (
            f"UsageMeter(requests={self.requests}, prompt={u.prompt_tokens}, "
            f"completion={u.completion_tokens})"
        )


class Sampling(BaseModel):
    """Per-request sampling options; ``None`` leaves the instance's default in place.

    ``sample`` numbers the request among those of its model (the voter id in
    :func:`kg_builder.pipeline.generators.vote`); it is not sent.
    """

    model_config = ConfigDict(frozen=True)

    model: str | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    seed: int | None = None
    sample: int = 0

    def request_options(self) -> dict[str, object]:
        """What goes into the request body (``model``, ``temperature``, ``seed``), ``None`` left out."""
        return {k: v for k, v in (("model", self.model), ("temperature", self.temperature), ("seed", self.seed))
                if v is not None}


class LLMResponse(BaseModel):
    """One answer.

    Attributes:
        content: the raw text of the (last) answer.
        parsed: the validated pydantic object when a schema was requested and the answer was valid;
            ``None`` without a schema, or under ``OnError.IGNORE`` when the answer was invalid.
        usage: tokens spent on this call, every retry and re-ask included.
        model: the model name the server reported.
        attempts: HTTP requests made for this call (1 when the first one succeeded).
        error: under ``OnError.IGNORE``, why ``parsed`` is ``None``; otherwise ``None``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    content: str
    parsed: BaseModel | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    model: str = ""
    attempts: int = 1
    error: str | None = None


class BatchItem(BaseModel):
    """The outcome of one request in :meth:`LLM.batch`: a response or the error that ended it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: int
    response: LLMResponse | None = None
    error: LLMError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> LLMResponse:
        """The response, or raise the captured error."""
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


# --- parsing ---------------------------------------------------------------------------------------
_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def parse_structured(content: str, schema: type[M]) -> M:
    """Validate an answer against ``schema``; a surrounding Markdown code fence is tolerated.

    Raises:
        LLMOutputError: the text is not JSON, or the JSON violates the schema. The message says which.
    """
    text = content
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return schema.model_validate_json(text)
    except ValidationError as e:
        kinds = {err["type"] for err in e.errors()}
        what = "is not valid JSON" if "json_invalid" in kinds else f"does not match {schema.__name__}"
        raise LLMOutputError(f"LLM answer {what}: {_short_errors(e)}", raw=content, schema=schema) from e


def _short_errors(e: ValidationError, limit: int = 5) -> str:
    parts = []
    for err in e.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    more = len(e.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def truncate_raw(raw: str, limit: int = RAW_LOG_CHARS) -> str:
    """``raw`` cut to ``limit`` characters, saying how much was cut."""
    return raw if len(raw) <= limit else f"{raw[:limit]}... [{len(raw) - limit} more chars]"


def apply_on_error(
    error: LLMOutputError,
    policy: OnError,
    *,
    content: str,
    usage: TokenUsage,
    model: str,
    attempts: int,
) -> LLMResponse:
    """Apply the :class:`OnError` policy to an answer that failed validation.

    ``RAISE`` raises ``error``; ``IGNORE`` logs a warning with the raw content and returns a
    response with ``parsed=None`` and ``error`` set.
    """
    if policy is OnError.RAISE:
        raise error
    logger.warning(
        "LLM output ignored (OnError.IGNORE) for schema %s after %d attempt(s): %s. Raw content: %r",
        error.schema.__name__ if error.schema else "?",
        attempts,
        error,
        truncate_raw(content),
    )
    return LLMResponse(
        content=content, parsed=None, usage=usage, model=model, attempts=attempts, error=str(error)
    )


# --- the interface ---------------------------------------------------------------------------------
class LLM(ABC):
    """A chat model behind one interface.

    Implementations set ``supports_structured_output`` (whether the server is asked to follow a JSON
    schema; validation happens in any case), hold a :class:`UsageMeter` in ``meter`` and a default
    :class:`OnError` policy in ``on_error`` (overridable per call).
    """

    supports_structured_output: ClassVar[bool] = False

    model_name: str
    meter: UsageMeter
    on_error: OnError
    #: Models the ``llm`` generator samples and votes across (empty: ``model_name`` alone).
    sample_models: tuple[str, ...] = ()
    #: Temperature of the generator's samples (above 0 so that samples can differ).
    sample_temperature: float = 0.7
    #: Seed of sample 0; sample ``i`` is sent with ``sample_seed + i``.
    sample_seed: int = 0
    #: Requests this LLM runs at once (callers that fan out size their thread pools by it).
    max_concurrency: int = 8

    def sampling_plan(self, samples: int) -> list[Sampling]:
        """The distinct requests that stand for ``samples`` samples (see the module docstring).

        Every model in ``sample_models`` gets ``samples`` requests with seeds ``sample_seed + i``
        at ``sample_temperature``; at temperature 0 each model gets one request, since more would
        send the same deterministic request again.

        Example:
            >>> llm.sample_models, llm.sample_temperature = ("a", "b"), 0.7
            >>> [(s.model, s.seed) for s in llm.sampling_plan(2)]
            [('a', 0), ('a', 1), ('b', 0), ('b', 1)]
        """
        if samples < 1:
            raise LLMError(f"samples must be >= 1; got {samples}")
        models = list(dict.fromkeys(self.sample_models)) or [self.model_name]
        per_model = samples if self.sample_temperature > 0 else 1
        return [Sampling(model=m, temperature=self.sample_temperature, seed=self.sample_seed + i, sample=i)
                for m in models for i in range(per_model)]

    @abstractmethod
    def invoke(
        self,
        messages: Messages,
        *,
        schema: type[BaseModel] | None = None,
        on_error: OnError | None = None,
        sampling: Sampling | None = None,
    ) -> LLMResponse:
        """Send ``messages``; with ``schema``, return the answer validated as that model.

        ``sampling`` overrides the model, temperature and seed for this request only.

        Raises:
            LLMUnavailableError: transient failures outlasted the retries.
            LLMOutputError: the answer is invalid and the policy is ``OnError.RAISE``.
            LLMError: the server refused the request (bad request, authentication, unknown model).
        """

    @abstractmethod
    async def ainvoke(
        self,
        messages: Messages,
        *,
        schema: type[BaseModel] | None = None,
        on_error: OnError | None = None,
        sampling: Sampling | None = None,
    ) -> LLMResponse:
        """The asynchronous :meth:`invoke`; concurrent calls are bounded by the implementation."""

    async def batch(
        self,
        message_lists: Sequence[Messages],
        *,
        schema: type[BaseModel] | None = None,
        on_error: OnError | None = None,
    ) -> list[BatchItem]:
        """Send many requests concurrently (bounded by ``ainvoke``) and return them in input order.

        One failing request does not end the batch: its :class:`LLMError` is captured in its
        :class:`BatchItem` (and logged). Errors that are not ``LLMError`` are bugs and propagate.

        Example:
            >>> items = await llm.batch([prompt.render(entity=e) for e in entities], schema=RelationChoice)
            >>> [item.response.parsed for item in items if item.ok]
        """

        async def one(i: int, messages: Messages) -> BatchItem:
            try:
                return BatchItem(
                    index=i, response=await self.ainvoke(messages, schema=schema, on_error=on_error)
                )
            except LLMError as e:
                logger.warning("LLM batch item %d failed: %s", i, e)
                return BatchItem(index=i, error=e)

        return list(await asyncio.gather(*(one(i, m) for i, m in enumerate(message_lists))))


__all__ = [
    "LLM",
    "BatchItem",
    "LLMError",
    "LLMOutputError",
    "LLMResponse",
    "LLMUnavailableError",
    "Message",
    "Messages",
    "OnError",
    "Sampling",
    "TokenUsage",
    "UsageMeter",
    "apply_on_error",
    "normalize_messages",
    "parse_structured",
]
