"""The trained C2C model a ``c2c`` job reads: ``kgforge train c2c --dataset <domain>``.

Training fits the methods of :mod:`kg_builder.products.c2c` on **every** complement link of the
dataset (the evaluation holds 30 % of the items out; the product uses all of them): co-purchase
over the ``train`` interactions (its normalisation chosen on the links, as the evaluation chooses
it on its training links), MiniLM text similarity, the product corpus where it covers the site,
and the learned combination over them (the method that beat co-purchase on P@5 in
``kgforge eval c2c``: 0.805 against 0.787, mean of 3 seeds on Office). It saves, per category, the
top :data:`TOP_K` complements with their confidence (the learned combination's probability,
calibrated on the links), sources and evidence, and the category catalogue (labels and titles)
for mapping LLM names at job time.

A job keeps a proposal when its confidence reaches ``floor`` (default :data:`DEFAULT_FLOOR`: more
likely a complement pair than not; a job's ``options.min_confidence`` overrides it), at most
``options.max_per_entity`` per category.

Saved as ``KGFORGE_HOME/models/c2c-<domain>/``: ``config.json`` (written last), ``catalogue.json``,
``proposals.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kg_builder import __version__
from kg_builder.datasets import Dataset, DocumentRecord
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.models.saved import CONFIG, ModelNotTrainedError, resolve_folder
from kg_builder.settings import Settings

from .c2c import C2CResult, CategoryCatalogue, CategoryLabel, category_catalogue

if TYPE_CHECKING:  # pragma: no cover
    from kg_builder.models.encoder import TextEncoder

KIND = "c2c"
TOP_K = 15
DEFAULT_FLOOR = 0.5
COMPLEMENT = "complement"


def default_model_name(domain: str) -> str:
    return f"c2c-{domain}"


def train_command(domain: str | None) -> str:
    return f"kgforge train c2c --dataset {domain or 'DATASET'}"


def complement_pairs(dataset: Dataset, catalogue: CategoryCatalogue) -> dict[str, set[str]]:
    """Category pairs (c(i), c(j)), c(i) != c(j), of every complement link i -> j."""
    pairs: dict[str, set[str]] = {}
    for link in dataset.item_links:
        if link.relation != COMPLEMENT:
            continue
        a, b = catalogue.item_category.get(link.head), catalogue.item_category.get(link.tail)
        if a and b and a != b:
            pairs.setdefault(a, set()).add(b)
    return pairs


@dataclass
class C2CModel:
    """A domain's ranked complements per category and its catalogue (module docstring)."""

    domain: str
    catalogue: CategoryCatalogue
    proposals: dict[str, list[C2CResult]]
    floor: float = DEFAULT_FLOOR
    meta: dict[str, Any] = field(default_factory=dict)

    def propose(self, source: str, *, floor: float | None = None, k: int = 10) -> list[C2CResult]:
        """The complements of category ``source`` at or above ``floor`` (default: the model's), best first."""
        if source not in self.proposals:
            raise InvalidInputError("id", f"{source!r} is not a category the C2C model of {self.domain} knows")
        bar = self.floor if floor is None else floor
        return [r for r in self.proposals[source] if r.confidence >= bar][:k]

    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG).unlink(missing_ok=True)
        c = self.catalogue
        (directory / "catalogue.json").write_text(json.dumps({
            "domain": c.domain, "keys": c.keys, "items": c.items, "titles": c.titles,
            "item_category": c.item_category,
            "labels": {k: {"label": v.label, "label_source": v.label_source, "method": v.method,
                           "terms": list(v.terms), "items": v.items} for k, v in c.labels.items()}}))
        (directory / "proposals.json").write_text(json.dumps(
            {k: [r.model_dump(mode="json") for r in v] for k, v in self.proposals.items()}))
        config = {"kind": KIND, "version": __version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                  "domain": self.domain, "floor": self.floor, **self.meta}
        (directory / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
        return directory

    @classmethod
    def load(cls, name_or_dir: str | Path, *, settings: Settings | None = None) -> C2CModel:
        settings = settings or Settings()
        directory, domain = resolve_folder(name_or_dir, settings, "c2c-")
        if not (directory / CONFIG).exists():
            raise ModelNotTrainedError(f"no trained C2C model in {directory}; train it with `{train_command(domain)}`")
        config = json.loads((directory / CONFIG).read_text())
        if config.get("kind") != KIND:
            raise KGForgeError(f"{directory} holds a {config.get('kind')!r} model, not a {KIND!r} model")
        raw = json.loads((directory / "catalogue.json").read_text())
        catalogue = CategoryCatalogue(domain=raw["domain"], keys=raw["keys"], items=raw["items"], titles=raw["titles"],
                                      item_category=raw["item_category"],
                                      labels={k: CategoryLabel(key=k, label=v["label"], label_source=v["label_source"],
                                                               method=v["method"], terms=tuple(v["terms"]),
                                                               items=v["items"]) for k, v in raw["labels"].items()})
        proposals = {k: [C2CResult.model_validate(r) for r in v]
                     for k, v in json.loads((directory / "proposals.json").read_text()).items()}
        meta = {k: v for k, v in config.items() if k not in {"kind", "version", "created", "domain", "floor"}}
        return cls(config["domain"], catalogue, proposals, float(config["floor"]), meta)


def train_c2c(dataset: Dataset, *, encoder: TextEncoder | None = None, corpus: Sequence[DocumentRecord] = (),
              progress: Callable[[str], None] | None = None) -> C2CModel:
    """Fit the C2C methods on every complement link of ``dataset`` (module docstring).

    Raises:
        InvalidInputError: no complement links or no ``train`` interactions.
    """
    from kg_builder.evaluation.c2c import fit_methods

    catalogue = category_catalogue(dataset)
    labels = complement_pairs(dataset, catalogue)
    if not labels:
        raise InvalidInputError("dataset", f"{dataset.name} has no complement links between categories to learn from")
    train = [(i.user, i.item) for i in dataset.interactions if i.split == "train"]
    if not train:
        raise InvalidInputError("dataset", f"{dataset.name} has no train interactions")
    fitted = fit_methods(catalogue, train, labels, encoder=encoder, corpus=corpus, progress=progress)
    learned = fitted.learned
    proposals = {key: learned.run(key, k=TOP_K).results for key in catalogue.keys}
    meta = {"methods": [m.name for m in fitted.methods], "co-purchase norm": fitted.choices["co-purchase norm"],
            "co-purchase P@5 by norm": fitted.choices["co-purchase P@5 on training labels by norm"],
            "features": learned.feature_names(), "trained_pairs": learned.trained_pairs,
            "positive_pairs": learned.trained_positives, "categories": len(catalogue.keys),
            "corpus_documents": len(corpus), "method": "learned"}
    return C2CModel(dataset.name, catalogue, proposals, DEFAULT_FLOOR, meta)


__all__ = ["C2CModel", "DEFAULT_FLOOR", "complement_pairs", "default_model_name", "train_c2c", "train_command"]
