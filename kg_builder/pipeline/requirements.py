"""Which trained models a job needs, which exist, and the command that trains each missing one.

A job with default options uses every generator trained for its domain (``llm`` only when an LLM
is configured) and says in its notes which it skipped and how to train them; it never fails because
an *optional* model is missing. A job that names its generators explicitly needs each of them.
The models every job needs (the relation classifier; the reranker and the confidence model of the
job's mode when the reranker is on; the utility retriever only for the corpus generator: without it
knowledge retrieval is off and the notes say so, which is how a domain without descriptions runs) are checked at submit time by the API
(409 naming the command) and again by the worker before any work.

Model folders live under ``KGFORGE_HOME/models/<name>`` (:mod:`kg_builder.models.saved`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kg_builder.models.saved import model_dir
from kg_builder.settings import Settings

#: generator -> (model folder pattern, training command pattern); ``llm`` needs an endpoint, not a folder.
GENERATOR_MODELS: dict[str, tuple[str, str] | None] = {
    "graph": ("structural-{d}", "kgforge train structural --dataset {d}"),
    "dense": ("dense-{d}", "kgforge train dense --dataset {d}"),
    "corpus": ("utility-{d}", "kgforge train utility --dataset {d}"),
    "llm": None,
}
RELATIONS = ("relations-{d}", "kgforge train relations --dataset {d}")
UTILITY = ("utility-{d}", "kgforge train utility --dataset {d}")
RERANKER = ("reranker-{d}", "kgforge train reranker --dataset {d}")
CONFIDENCE = {"offline": ("confidence-{d}", "kgforge train confidence --dataset {d}"),
              "llm": ("confidence-{d}-llm", "kgforge train confidence --dataset {d} --llm")}
LLM_HINT = "set KGFORGE_LLM_BASE_URL (and KGFORGE_LLM_MODEL) to an OpenAI-compatible endpoint"


@dataclass(frozen=True)
class MissingModel:
    """A model folder that does not exist yet, and the command that creates it."""

    name: str
    command: str

    def __str__(self) -> str:
        return f"{self.name} (train it with `{self.command}`)"


@dataclass
class GeneratorPlan:
    """The generators a job runs, and the ones it skips with the reason (a command or a setting)."""

    use: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    retrieval: str | None = None  # why knowledge retrieval is off, when it is

    def notes(self) -> list[str]:
        notes = [f"generator {name!r} skipped: {why}" for name, why in self.skipped.items()]
        return notes + ([f"retrieval off: {self.retrieval}"] if self.retrieval else [])


def is_trained(settings: Settings, name: str) -> bool:
    """True when ``KGFORGE_HOME/models/<name>`` holds a saved model (``config.json``, or the utility
    folder's ``reranker/config.json``)."""
    folder = model_dir(settings, name)
    return (folder / "config.json").exists() or (folder / "reranker" / "config.json").exists()


def _missing(settings: Settings, spec: tuple[str, str], domain: str) -> MissingModel | None:
    name, command = spec[0].format(d=domain), spec[1].format(d=domain)
    return None if is_trained(settings, name) else MissingModel(name, command)


def plan_generators(settings: Settings, domain: str, requested: Sequence[str] | None, *,
                    llm_configured: bool) -> GeneratorPlan:
    """The generators to run: ``requested`` as given (missing models are reported by
    :func:`missing_models`), or, when None, every generator whose model is trained for ``domain``."""
    utility = _missing(settings, UTILITY, domain)
    retrieval = (f"{utility.name} is not trained (`{utility.command}`; a domain without entity descriptions or "
                 "documents, such as FB15k-237, has no corpus): knowledge is the graph's structure only"
                 if utility is not None else None)
    if requested is not None:
        return GeneratorPlan(use=list(requested), retrieval=retrieval)
    plan = GeneratorPlan(use=[], retrieval=retrieval)
    for generator, spec in GENERATOR_MODELS.items():
        if spec is None:
            if llm_configured:
                plan.use.append(generator)
            else:
                plan.skipped[generator] = f"no LLM configured ({LLM_HINT})"
            continue
        missing = _missing(settings, spec, domain)
        if missing is None:
            plan.use.append(generator)
        else:
            plan.skipped[generator] = f"{missing.name} is not trained (`{missing.command}`)"
    return plan


def missing_models(settings: Settings, domain: str, generators: Sequence[str], *, use_reranker: bool = True,
                   mode: str = "offline") -> list[MissingModel]:
    """Every model a job with these ``generators`` needs that is not trained, with its command."""
    specs: list[tuple[str, str]] = [RELATIONS]  # the utility retriever only for the corpus generator
    specs += [spec for g in generators if (spec := GENERATOR_MODELS.get(g)) is not None]
    if use_reranker:
        specs += [RERANKER, CONFIDENCE[mode]]
    else:  # the confidence fitted without the reranker's features, saved beside the full one
        specs.append((CONFIDENCE[mode][0] + "-no-reranker", CONFIDENCE[mode][1]))
    out, seen = [], set()
    for spec in specs:
        missing = _missing(settings, spec, domain)
        if missing is not None and missing.name not in seen:
            seen.add(missing.name)
            out.append(missing)
    return out


__all__ = ["CONFIDENCE", "GENERATOR_MODELS", "GeneratorPlan", "MissingModel", "is_trained", "missing_models",
           "plan_generators"]
