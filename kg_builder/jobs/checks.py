"""Submit-time checks of a job (``POST /v1/jobs``): what can be known before a worker runs it.

* the **domain** is known: a registered dataset (``kgforge data list``), a domain with trained
  models under ``KGFORGE_HOME/models``, or a dataset imported into the graph; else
  ``InvalidInputError("domain")`` (422);
* ``options.relations`` are in the domain's relation pool (the ``Relation`` nodes its import
  registered; the whole pool when none names the domain); else ``InvalidInputError("options.relations")``;
* a ``c2c`` or ``titles`` job names a product domain (else ``InvalidInputError("kind")``), and a
  ``c2c`` job's C2C model is trained (else ``ModelNotTrainedError``);
* every model the job needs is trained (:func:`kg_builder.pipeline.requirements.missing_models`, for
  the generators :meth:`PipelineOptions.resolve_generators` picks); else ``ModelNotTrainedError`` (409)
  naming each missing model and the command that trains it.

The graph is asked only when needed (relations named, or a domain with no dataset and no model), and
a graph that does not answer skips those checks (the worker makes them again before any work): a
submission never waits on, or fails because of, a graph outage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from kg_builder.errors import InvalidInputError
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.pipeline.requirements import (
    CONFIDENCE,
    GENERATOR_MODELS,
    RELATIONS,
    RERANKER,
    UTILITY,
    is_trained,
    missing_models,
)
from kg_builder.settings import Settings

from .models import JobSubmission

log = logging.getLogger(__name__)

#: (name, description, sources) of every relation in the graph's pool; raises when the graph is down.
RelationPool = Callable[[], Sequence[tuple[str, Sequence[str]]]]


def _has_models(settings: Settings, domain: str) -> bool:
    specs = [RELATIONS, UTILITY, RERANKER, *CONFIDENCE.values(), *filter(None, GENERATOR_MODELS.values())]
    return any(is_trained(settings, spec[0].format(d=domain)) for spec in specs)


def _graph_domains(pool: Sequence[tuple[str, Sequence[str]]]) -> set[str]:
    return {s.split(":", 1)[1] for _, sources in pool for s in sources or () if s.startswith("dataset:")}


def check_submission(settings: Settings, submission: JobSubmission, relation_pool: RelationPool | None = None) -> None:
    """Raise what a worker would otherwise fail the job with (module docstring); None when it may run.

    Raises:
        InvalidInputError: unknown ``domain`` or ``options.relations`` (the API's 422).
        ModelNotTrainedError: a model the job needs is not trained (the API's 409, naming the commands).
    """
    from kg_builder.datasets.registry import DATASETS

    domain, options = submission.domain, submission.options
    pool: Sequence[tuple[str, Sequence[str]]] | None = None

    def graph_pool() -> Sequence[tuple[str, Sequence[str]]] | None:
        nonlocal pool
        if pool is None and relation_pool is not None:
            try:
                pool = list(relation_pool())
            except Exception as e:  # the worker checks again; a submission does not wait on the graph
                log.warning("submit-time check skipped: the graph's relation pool is unavailable (%s: %s)",
                            type(e).__name__, e)
                return None
        return pool

    if domain not in DATASETS and not _has_models(settings, domain):
        found = graph_pool()
        if found is not None and domain not in _graph_domains(found):
            known = sorted(set(DATASETS) | _graph_domains(found))
            raise InvalidInputError(
                "domain", f"unknown domain {domain!r}: no dataset, trained model or imported graph data has that "
                          f"name; known domains: {', '.join(known)}")

    if options.relations is not None:
        found = graph_pool()
        if found is not None:
            own = {name for name, sources in found if f"dataset:{domain}" in (sources or ())}
            names = own or {name for name, _ in found}
            unknown = [r for r in options.relations if r not in names]
            if unknown:
                raise InvalidInputError(
                    "options.relations", f"not in the relation pool of {domain!r}: {unknown}; "
                                         "GET /v1/relations lists the pool")

    if submission.kind != "entities":
        _check_kind(settings, submission)
        return
    llm_configured = bool(settings.llm_base_url)
    resolved, _ = options.resolve_generators(settings, domain, llm_configured=llm_configured)
    generators = resolved.generators or []
    # The worker's mode rule (PipelineModels.load): LLM confidence only when the LLM generator runs.
    mode = "llm" if (llm_configured and resolved.use_llm and "llm" in generators) else "offline"
    missing = missing_models(settings, domain, generators, use_reranker=resolved.use_reranker, mode=mode)
    if missing:
        raise ModelNotTrainedError(
            f"this job needs models that are not trained for domain {domain!r}: "
            + "; ".join(str(m) for m in missing))


def _check_kind(settings: Settings, submission: JobSubmission) -> None:
    """A ``c2c`` or ``titles`` job runs on a product domain; ``c2c`` needs the domain's C2C model."""
    from kg_builder.products.domain import is_product_domain

    if not is_product_domain(submission.domain):
        raise InvalidInputError("kind", f"a {submission.kind} job runs on a product domain (an Amazon dataset such "
                                        f"as amazon14_office), not {submission.domain!r}")
    if submission.kind == "c2c":
        from kg_builder.products.c2c_model import default_model_name, train_command

        if not is_trained(settings, default_model_name(submission.domain)):
            raise ModelNotTrainedError(f"this c2c job needs the C2C model of {submission.domain!r}: "
                                       f"{default_model_name(submission.domain)} (train it with "
                                       f"`{train_command(submission.domain)}`)")


__all__ = ["RelationPool", "check_submission"]
