"""EntityIndex: a per-domain embedding index under KGFORGE_HOME that persists, is reused without
re-embedding, takes appends (also from another process's instance), and repairs a torn append.

Real MiniLM (the session's ``encoder`` from ``conftest.py``); the integration test builds the index
from the embedded graph database through the ``domain`` index and checks it reads one domain only.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import InvalidInputError
from kg_builder.ingest import import_dataset
from kg_builder.retrieval.entity_index import EntityIndex, entity_text, index_dir
from kg_builder.settings import Settings

ENTITIES = {
    "zoo:cat": entity_text("cat", "a small domesticated carnivorous mammal kept as a pet"),
    "zoo:cow": entity_text("cow", "a large farm animal kept for milk and beef"),
    "zoo:hay": entity_text("hay", "grass that has been cut and dried as animal fodder"),
    "zoo:paris": entity_text("Paris", "the capital city of France"),
}


@pytest.fixture
def settings(tmp_path) -> Settings:
    EntityIndex.forget_open()
    yield Settings(home=tmp_path / "home")
    EntityIndex.forget_open()


def reopen(settings: Settings, encoder, domain: str = "zoo") -> EntityIndex:
    """A fresh instance over the same folder, as a new worker process would get."""
    EntityIndex.forget_open()
    return EntityIndex.open(settings, domain, encoder=encoder)


def test_an_index_persists_and_is_reused_without_re_embedding(settings, encoder):
    index = EntityIndex.open(settings, "zoo", encoder=encoder)
    assert not index.built and len(index) == 0
    assert index.build_from(ENTITIES.items()) == 4 and index.built and index.encoded_texts == 4
    assert (index_dir(settings, "zoo") / "vectors.f32").stat().st_size == 4 * encoder.dim * 4

    again = reopen(settings, encoder)
    assert again is not index and again.built and len(again) == 4
    assert again.build_from(ENTITIES.items()) == 0  # nothing embedded twice
    assert again.encoded_texts == 0
    hits = again.search(encoder.encode(["a kitten, a pet"])[0], k=2)
    assert hits[0][0] == "zoo:cat" and len(hits) == 2 and hits[0][1] >= hits[1][1]
    assert again.search("the French capital", k=1)[0][0] == "zoo:paris"
    assert again.encoded_texts == 1  # only the query text
    assert np.allclose(again.vectors(), index.vectors())


def test_added_entities_are_found_and_known_ids_are_skipped(settings, encoder):
    index = EntityIndex.open(settings, "zoo", encoder=encoder)
    index.build_from(ENTITIES.items())
    assert index.add(["zoo:llama", "zoo:cat"], [entity_text("llama", "a South American camelid"), "ignored"]) == 1
    assert index.encoded_texts == 5  # the llama only
    assert index.add(["zoo:llama"], ["llama"]) == 0 and index.encoded_texts == 5
    assert reopen(settings, encoder).search("camelid from the Andes", k=1)[0][0] == "zoo:llama"


def test_a_reader_sees_what_another_instance_appended(settings, encoder):
    reader = EntityIndex.open(settings, "zoo", encoder=encoder)
    reader.build_from(ENTITIES.items())
    writer = EntityIndex("zoo", index_dir(settings, "zoo"), encoder)  # another process's instance
    assert len(writer.search("cow", k=10)) == 4
    writer.add(["kg:volcano"], [entity_text("volcano", "a mountain that erupts molten rock")])
    assert reader.search("an erupting mountain", k=1)[0][0] == "kg:volcano" and len(reader) == 5


def test_a_torn_append_is_cut_by_the_next_writer(settings, encoder):
    index = EntityIndex.open(settings, "zoo", encoder=encoder)
    index.build_from(ENTITIES.items())
    folder = index_dir(settings, "zoo")
    with open(folder / "vectors.f32", "ab") as f:  # a writer died after its vectors, before its ids
        f.write(np.ones(encoder.dim + 7, np.float32).tobytes())
    fresh = reopen(settings, encoder)
    assert len(fresh) == 4
    fresh.add(["zoo:hen"], [entity_text("hen", "a female chicken")])
    assert (folder / "vectors.f32").stat().st_size == 5 * encoder.dim * 4
    assert reopen(settings, encoder).search("chicken", k=1)[0][0] == "zoo:hen"


def test_a_different_encoder_makes_the_index_stale(settings, encoder):
    index = EntityIndex.open(settings, "zoo", encoder=encoder)
    index.build_from(ENTITIES.items())
    meta_path = index_dir(settings, "zoo") / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "encoder": "another-model|max_length=64|dim=384"}))
    stale = reopen(settings, encoder)
    assert not stale.built and len(stale) == 0  # vectors of another model are not comparable


def test_bad_arguments_name_the_field(settings, encoder):
    with pytest.raises(InvalidInputError) as err:
        EntityIndex.open(settings, "../etc", encoder=encoder)
    assert err.value.field == "domain"
    index = EntityIndex.open(settings, "zoo", encoder=encoder)
    with pytest.raises(InvalidInputError) as err:
        index.search("cat", k=0)
    assert err.value.field == "k"
    with pytest.raises(InvalidInputError) as err:
        index.add(["a", "b"], ["only one"])
    assert err.value.field == "texts"
    assert index.search("cat", k=3) == []  # empty index: no hits, no error


def _kg(name: str, entities: dict[str, str]) -> Dataset:
    records = [EntityRecord(i, i, d) for i, d in entities.items()]
    first, *rest = entities
    return Dataset(name=name, kind="kg", entities=records, relations=[RelationRecord("near", "is near")],
                   triples={"train": [TripleRecord(first, "near", r) for r in rest]})


@pytest.mark.integration
def test_ensure_built_reads_one_domain_and_import_builds_it(store, settings, encoder):
    zoo = _kg("zoo", {"cat": "a pet", "cow": "a farm animal", "hay": "dried grass"})
    city = _kg("city", {"paris": "capital of France", "rome": "capital of Italy"})
    import_dataset(store, zoo)
    import_dataset(store, city, settings=settings, encoder=encoder)  # import builds the city index
    city_index = EntityIndex.open(settings, "city", encoder=encoder)
    assert city_index.built and sorted(city_index.ids) == ["city:paris", "city:rome"]

    index = EntityIndex.open(settings, "zoo", encoder=encoder)
    assert index.ensure_built(store) == 3 and index.built
    assert sorted(index.ids) == ["zoo:cat", "zoo:cow", "zoo:hay"]  # no city entity
    assert index.ensure_built(store) == 0 and index.encoded_texts == 3
