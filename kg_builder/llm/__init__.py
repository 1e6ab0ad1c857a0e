"""The LLM layer: one interface, an OpenAI-compatible implementation, prompts and answer schemas.

* :mod:`~kg_builder.llm.base`: the :class:`LLM` interface, :class:`LLMResponse`, token accounting
  (:class:`TokenUsage`, :class:`UsageMeter`), the :class:`OnError` policy, the LLM errors, and
  per-request :class:`Sampling` (model, temperature, seed; :meth:`LLM.sampling_plan`).
* :mod:`~kg_builder.llm.openai_compat`: :class:`OpenAICompatibleLLM` for vLLM or any
  OpenAI-compatible server (LangChain ``ChatOpenAI``, JSON-schema output, retries, bounded
  concurrency); :func:`llm_from_settings` returns ``None`` in offline mode.
* :mod:`~kg_builder.llm.prompts`: versioned prompt templates (``relation_filter@v1``, ...) and
  :func:`get_prompt`.
* :mod:`~kg_builder.llm.schemas`: the structured answers (:class:`RelationChoice`,
  :class:`GeneratedTargets`, :class:`Summary`) and :func:`check_relations_in_pool`.

Example:
    >>> llm = llm_from_settings()            # None without KGFORGE_LLM_BASE_URL (offline mode)
    >>> prompt = get_prompt("relation_filter")
    >>> answer = llm.invoke(prompt.render(entity="Air", entity_type="Brand",
    ...                                   background="Nike Air is a line of basketball shoes.",
    ...                                   candidates=format_relations(pool)), schema=prompt.schema)
    >>> check_relations_in_pool(answer.parsed, pool).relations
"""

from kg_builder.llm.base import (
    LLM,
    BatchItem,
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
    parse_structured,
)
from kg_builder.llm.openai_compat import (
    OpenAICompatibleLLM,
    llm_from_settings,
    model_list,
    response_format_for,
)
from kg_builder.llm.prompts import (
    PromptError,
    PromptTemplate,
    available_prompts,
    format_documents,
    format_list,
    format_relations,
    format_triples,
    get_prompt,
)
from kg_builder.llm.schemas import (
    ChosenRelation,
    GeneratedTarget,
    GeneratedTargets,
    PoolCheck,
    RelationChoice,
    Summary,
    check_relations_in_pool,
)

__all__ = [
    "LLM",
    "BatchItem",
    "ChosenRelation",
    "GeneratedTarget",
    "GeneratedTargets",
    "LLMError",
    "LLMOutputError",
    "LLMResponse",
    "LLMUnavailableError",
    "Message",
    "Messages",
    "OnError",
    "OpenAICompatibleLLM",
    "PoolCheck",
    "PromptError",
    "PromptTemplate",
    "RelationChoice",
    "Sampling",
    "Summary",
    "TokenUsage",
    "UsageMeter",
    "available_prompts",
    "check_relations_in_pool",
    "format_documents",
    "format_list",
    "format_relations",
    "format_triples",
    "get_prompt",
    "llm_from_settings",
    "model_list",
    "parse_structured",
    "response_format_for",
]
