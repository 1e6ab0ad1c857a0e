"""The relation classifier P(r | S) on a tiny hand-made graph: learns, ranks, round-trips, fails clearly.

Animals eat foods, cities are located in countries, plants grow in countries; foods and countries
head no triple. The real MiniLM reads the descriptions, so the labels are learnable from text.
"""

import numpy as np
import pytest
import torch

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import InvalidInputError
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.relation_classifier import (
    DESCRIPTION_CHARS,
    RelationClassifier,
    default_model_name,
    entity_text,
)
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.settings import Settings
from kg_builder.training.relations import head_relation_labels, ranking_metrics, train_relation_classifier

ANIMALS = {
    "lion": "a large wild cat of the African savanna that hunts and eats zebras",
    "cow": "a farm animal that grazes on grass and gives milk",
    "rabbit": "a small furry mammal that nibbles carrots and lettuce",
    "eagle": "a bird of prey that catches fish and small mammals",
    "horse": "a domesticated animal that eats hay and oats",
    "bear": "a large forest mammal that eats berries, honey and salmon",
    "sheep": "a woolly farm animal that grazes in meadows",
    "shark": "a predatory fish of the ocean that hunts seals",
}
CITIES = {
    "paris": ("Paris", "the capital city of France on the river Seine"),
    "berlin": ("Berlin", "the capital and largest city of Germany"),
    "madrid": ("Madrid", "the capital city of Spain in the centre of the country"),
    "rome": ("Rome", "the capital city of Italy, an ancient metropolis"),
    "munich": ("Munich", "a large city in southern Germany, capital of Bavaria"),
    "barcelona": ("Barcelona", "a port city on the Mediterranean coast of Spain"),
    "milan": ("Milan", "a city in northern Italy known for fashion"),
    "lyon": ("Lyon", "a city in France where the Rhone and Saone rivers meet"),
}
PLANTS = {
    "olive tree": "an evergreen tree grown for its fruit, cultivated around the Mediterranean",
    "grapevine": "a climbing plant cultivated in vineyards for grapes",
    "oak": "a deciduous tree of temperate forests that bears acorns",
    "sunflower": "a tall flowering plant with large yellow heads grown in fields",
}
FOODS = {"grass": "green plants eaten by grazing animals", "meat": "the flesh of an animal used as food",
         "fish": "a cold-blooded aquatic animal eaten as food", "berries": "small juicy fruits"}
COUNTRIES = {"france": ("France", "a country in western Europe"), "germany": ("Germany", "a country in central Europe"),
             "spain": ("Spain", "a country on the Iberian peninsula"), "italy": ("Italy", "a country in southern Europe")}
EATS = {"lion": "meat", "cow": "grass", "rabbit": "grass", "eagle": "fish", "horse": "grass", "bear": "berries",
        "sheep": "grass", "shark": "fish"}
LOCATED = {"paris": "france", "berlin": "germany", "madrid": "spain", "rome": "italy", "munich": "germany",
           "barcelona": "spain", "milan": "italy", "lyon": "france"}
GROWS = {"olive tree": "italy", "grapevine": "france", "oak": "germany", "sunflower": "spain"}
RELATIONS = ("eats", "located_in", "grows_in")


def tiny_graph() -> Dataset:
    entities = [EntityRecord(k, k, v) for k, v in ANIMALS.items()]
    entities += [EntityRecord(k, name, v) for k, (name, v) in CITIES.items()]
    entities += [EntityRecord(k, k, v) for k, v in PLANTS.items()]
    entities += [EntityRecord(k, k, v) for k, v in FOODS.items()]
    entities += [EntityRecord(k, name, v) for k, (name, v) in COUNTRIES.items()]
    train = [TripleRecord(h, "eats", t) for h, t in EATS.items()]
    train += [TripleRecord(h, "located_in", t) for h, t in LOCATED.items()]
    train += [TripleRecord(h, "grows_in", t) for h, t in GROWS.items()]
    return Dataset(name="tiny", kind="kg", entities=entities,
                   relations=[RelationRecord(r, r.replace("_", " ")) for r in RELATIONS], triples={"train": train})


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    torch.set_num_threads(1)
    return TextEncoder()


@pytest.fixture(scope="module")
def trained(encoder, tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    result = train_relation_classifier(dataset=tiny_graph(), settings=settings, encoder=encoder, epochs=80,
                                       lr=3e-3, batch_size=8, holdout_fraction=0.25, seed=5)
    return result, settings


def test_labels_are_the_head_relations_of_train_triples():
    data = tiny_graph()
    labels = head_relation_labels(data, list(RELATIONS))
    row = {e.id: i for i, e in enumerate(data.entities)}
    assert labels[row["lion"]].tolist() == [1, 0, 0]
    assert labels[row["lyon"]].tolist() == [0, 1, 0]
    assert labels[row["france"]].tolist() == [0, 0, 0]  # a tail only: no head relation
    assert labels.sum() == len(EATS) + len(LOCATED) + len(GROWS)


def test_learns_which_relations_an_entity_heads(trained, encoder):
    result, _ = trained
    model, data = result.model, tiny_graph()
    labels = head_relation_labels(data, model.relation_ids)
    probs = model.predict([entity_text(e.name, e.description) for e in data.entities], encoder)
    assert probs.shape == (len(data.entities), len(RELATIONS))
    assert probs[labels == 1].min() > 0.5 > probs[labels == 0].max()

    # Entities it never saw: the relation their kind heads comes first.
    unseen = [entity_text("wolf", "a wild canine that hunts deer in packs"),
              entity_text("Naples", "a city in southern Italy on the bay of Naples"),
              entity_text("apple tree", "a fruit tree cultivated in orchards")]
    top = [model.top_k(row, k=1)[0][0] for row in model.predict(unseen, encoder)]
    assert top == ["eats", "located_in", "grows_in"]

    held = result.metrics["holdout"]
    assert held["entities"] == 7
    assert held["classifier"]["map"] > held["prior"]["map"]
    assert held["classifier"]["micro_f1"] > held["prior"]["micro_f1"]
    assert len(result.epoch_losses) == 80 and result.epoch_losses[-1] < result.epoch_losses[0] / 2


def test_save_load_round_trip_gives_identical_predictions(trained, encoder):
    result, settings = trained
    assert result.directory == settings.home / "models" / default_model_name("tiny")
    assert (result.directory / "training.json").exists()
    loaded = RelationClassifier.load("relations-tiny", settings=settings)
    assert loaded.relation_ids == list(RELATIONS)
    assert loaded.meta["dataset"] == "tiny" and "holdout" in loaded.meta["metrics"]
    texts = [entity_text("tiger", "a striped big cat that hunts deer"), entity_text("Porto", None)]
    assert np.array_equal(loaded.predict(texts, encoder), result.model.predict(texts, encoder))
    by_path = RelationClassifier.load(result.directory)
    emb = encoder.encode(texts)
    assert np.array_equal(by_path.predict_embeddings(emb), result.model.predict_embeddings(emb))


def test_missing_model_names_the_training_command(tmp_path):
    with pytest.raises(ModelNotTrainedError, match="kgforge train relations --dataset umls"):
        RelationClassifier.load("relations-umls", settings=Settings(home=tmp_path))


@pytest.mark.parametrize(("options", "field"), [
    ({"holdout_fraction": 1.0}, "holdout_fraction"),
    ({"holdout_fraction": -0.1}, "holdout_fraction"),
    ({"epochs": 0}, "epochs"),
    ({"lr": 0.0}, "lr"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_training_arguments_name_the_field(tmp_path, encoder, options, field):
    with pytest.raises(InvalidInputError) as caught:
        train_relation_classifier(dataset=tiny_graph(), settings=Settings(home=tmp_path), encoder=encoder,
                                  save=False, **options)
    assert caught.value.field == field
    assert not (tmp_path / "models").exists()


def test_a_dataset_without_train_triples_is_refused(tmp_path, encoder):
    data = tiny_graph()
    data.triples = {}
    with pytest.raises(InvalidInputError, match="no train triples") as caught:
        train_relation_classifier(dataset=data, settings=Settings(home=tmp_path), encoder=encoder)
    assert caught.value.field == "dataset"


def test_bad_model_inputs_name_the_field():
    model = RelationClassifier(["a", "b"], hidden=4)
    with pytest.raises(InvalidInputError) as caught:
        model.predict_embeddings(np.zeros((2, 10)))
    assert caught.value.field == "embeddings"
    with pytest.raises(InvalidInputError) as caught:
        model.predict(["fine", "  "])
    assert caught.value.field == "texts"
    with pytest.raises(InvalidInputError) as caught:
        RelationClassifier([])
    assert caught.value.field == "relation_ids"
    with pytest.raises(InvalidInputError) as caught:
        entity_text("  ", "a description")
    assert caught.value.field == "name"


def test_entity_text_joins_name_and_a_cut_description():
    assert entity_text("virus", None) == "virus"
    assert entity_text("virus", "  an   organism ") == "virus: an organism"
    long = entity_text("x", "word " * 200)
    assert long.startswith("x: word word") and len(long) <= len("x: ") + DESCRIPTION_CHARS
    assert not long.endswith(" ")


def test_ranking_metrics_on_a_hand_computed_case():
    labels = np.array([[1, 0, 1], [0, 0, 0]], dtype=float)
    scores = np.array([[0.1, 0.9, 0.5], [0.9, 0.2, 0.1]])
    m = ranking_metrics(scores, scores >= 0.5, labels, k=2)
    # Entity 0 ranks relation 1 (wrong), 2, 0: positives at ranks 2 and 3.
    assert m["map"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["recall@2"] == pytest.approx(0.5) and m["precision@2"] == pytest.approx(0.5)
    # Decisions: tp 1 (entity 0, r2); fp 2 (entity 0 r1, entity 1 r0); fn 1 (entity 0, r0).
    assert m["micro_f1"] == pytest.approx(2 / (2 + 2 + 1))
    # Relations with a positive: r0 (F1 0) and r2 (F1 1).
    assert m["macro_f1"] == pytest.approx(0.5)
    assert (m["entities_ranked"], m["relations_scored"]) == (1, 2)
