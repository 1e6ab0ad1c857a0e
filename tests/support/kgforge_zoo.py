"""A hand-made zoo graph and its tiny trained models, shared by the pipeline, job, API and
end-to-end tests (``tests/conftest.py`` trains them once per session: fixture ``zoo_home``).

Trained once per session (ComplEx, the cross-encoder, the relation classifier, the utility reranker
and both confidence models) and saved under the names ``PipelineModels.load`` looks for, so the
runner loads them exactly as a worker would.
"""

from __future__ import annotations

from pathlib import Path

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.evaluation.generation import fit_confidence
from kg_builder.ingest import import_dataset
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.saved import model_dir
from kg_builder.pipeline import PipelineModels, PipelineOptions
from kg_builder.retrieval.corpus import corpus_from_dataset
from kg_builder.retrieval.hybrid import HybridRetriever
from kg_builder.retrieval.saved_utility import save_utility
from kg_builder.retrieval.utility import train_utility_reranker
from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore
from kg_builder.training.relations import train_relation_classifier
from kg_builder.training.reranker import train_reranker
from kg_builder.training.structural import train_structural

DOMAIN = "zoo"
ANIMALS = {  # name: (food, home)
    "cat": ("fish", "house"),
    "dog": ("meat", "house"),
    "cow": ("grass", "farm"),
    "horse": ("hay", "farm"),
    "sheep": ("grass", "farm"),
    "lion": ("meat", "savanna"),
    "zebra": ("grass", "savanna"),
    "goat": ("hay", "farm"),
    "mouse": ("cheese", "house"),
}
THINGS = {
    "fish": "a food",
    "meat": "a food",
    "grass": "a plant food",
    "hay": "a dried plant food",
    "cheese": "a food made from milk",
    "house": "a place where people live",
    "farm": "a place with fields",
    "savanna": "a wild grassland",
}
DEV = {("sheep", "lives_in", "farm"), ("goat", "eats", "hay")}
TEST = {("zebra", "lives_in", "savanna")}
# Options every runner test uses: offline generators over the tiny graph, a generous keep policy.
OPTIONS = PipelineOptions(
    generators=["graph", "corpus"], keep_fraction=0.5, relation_threshold=0.3, use_llm=False
)


def zoo() -> Dataset:
    entities = [
        EntityRecord(a, a, f"The {a} is an animal that eats {food} and lives in the {home}.")
        for a, (food, home) in ANIMALS.items()
    ]
    entities += [EntityRecord(t, t, f"The {t} is {d}.") for t, d in THINGS.items()]
    triples = [(a, "eats", food) for a, (food, _) in ANIMALS.items()] + [
        (a, "lives_in", home) for a, (_, home) in ANIMALS.items()
    ]
    train = [TripleRecord(*t) for t in triples if t not in DEV | TEST]
    return Dataset(
        name=DOMAIN,
        kind="kg",
        entities=entities,
        relations=[RelationRecord("eats", "eats (food)"), RelationRecord("lives_in", "lives in (place)")],
        triples={
            "train": train,
            "dev": [TripleRecord(*t) for t in DEV],
            "test": [TripleRecord(*t) for t in TEST],
        },
    )


def import_zoo(store: GraphStore) -> None:
    """The zoo's train triples in the graph (what the jobs extend)."""
    dataset = zoo()
    import_dataset(
        store,
        Dataset(
            name=DOMAIN,
            kind="kg",
            entities=dataset.entities,
            relations=dataset.relations,
            triples={"train": dataset.triples["train"]},
        ),
    )


def train_models(home: Path) -> Path:
    """Train every model the zoo's jobs need and save them under ``home`` with their standard names."""
    settings = Settings(home=home)
    dataset = zoo()
    encoder = TextEncoder()
    structural = train_structural(
        dataset=dataset,
        settings=settings,
        rank=16,
        epochs=150,
        lr=0.3,
        regularization=0.0,
        max_minutes=2,
        save=False,
    ).model
    reranker = train_reranker(
        dataset=dataset,
        settings=settings,
        epochs=4,
        batch_size=8,
        lr=1e-4,
        negatives=1,
        max_minutes=3,
        seed=1,
        save=False,
    ).model
    classifier = train_relation_classifier(
        dataset=dataset, settings=settings, encoder=encoder, epochs=40, holdout_fraction=0.0, save=False
    ).model
    retriever = HybridRetriever.build(corpus_from_dataset(dataset), encoder)
    utility = train_utility_reranker(dataset=dataset, retriever=retriever, test_fraction=0.3, seed=0).reranker
    models = PipelineModels(
        domain=DOMAIN,
        encoder=encoder,
        utility=utility,
        classifier=classifier,
        structural=structural,
        reranker=reranker,
    )
    full, no_reranker, _ = fit_confidence(
        dataset=dataset, models=models, options=PipelineOptions(generators=["graph", "corpus"])
    )
    structural.save(model_dir(settings, f"structural-{DOMAIN}"))
    reranker.save(model_dir(settings, f"reranker-{DOMAIN}"))
    classifier.save(model_dir(settings, f"relations-{DOMAIN}"))
    save_utility(settings, DOMAIN, utility)
    full.save(model_dir(settings, f"confidence-{DOMAIN}"))
    no_reranker.save(model_dir(settings, f"confidence-{DOMAIN}-no-reranker"))
    return home


def fit_llm_confidence(home: Path, llm) -> Path:
    """Fit the zoo's LLM-mode confidence models (``confidence-zoo-llm`` and its no-reranker twin) into
    ``home`` as ``kgforge train confidence --llm`` does: the pipeline runs on the dev heads with ``llm``
    (in the tests, a client of the TEST DOUBLE answering as the test scripted it). A job configured
    with an LLM applies only a model fitted in LLM mode."""
    settings = Settings(home=home)
    options = OPTIONS.model_copy(update={"generators": ["graph", "corpus", "llm"], "use_llm": True})
    models = PipelineModels.load(settings, DOMAIN, options.model_copy(update={"use_llm": False}), calibrated=False)
    full, no_reranker, _ = fit_confidence(dataset=zoo(), models=models, options=options, llm=llm)
    full.save(model_dir(settings, f"confidence-{DOMAIN}-llm"))
    no_reranker.save(model_dir(settings, f"confidence-{DOMAIN}-llm-no-reranker"))
    return home
