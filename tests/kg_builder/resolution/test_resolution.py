"""Entity resolution against the real embedded database: duplicates are never created."""

import threading

import pytest

from kg_builder.models.encoder import TextEncoder
from kg_builder.resolution import Candidate, EntityResolver, NameIndex
from kg_builder.store import GraphStore, NodeWrite

pytestmark = pytest.mark.integration

VARIANTS = ["Air Jordan", "air jordan", "AIR JORDAN", "Air-Jordan", "  Air   Jordan ", "Air Jordan!", "air_jordan",
            "Aír Jordan".replace("í", "i")]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def entity_count(store: GraphStore) -> int:
    return store.counts().nodes.get("Entity", 0)


def test_case_punctuation_and_whitespace_variants_make_one_node(store):
    resolver = EntityResolver(store)
    result = resolver.run([Candidate(name=v) for v in VARIANTS], source="test", job_id="job-1")
    assert {r.node_id for r in result.resolutions} == {"kg:air-jordan"}
    assert result.created == 1 and [r.method for r in result.resolutions][1:] == ["job"] * (len(VARIANTS) - 1)
    assert entity_count(store) == 1
    node = store.get_node("kg:air-jordan")
    assert node.properties["name"] == "Air Jordan" and node.properties["job_id"] == "job-1"


def test_later_jobs_reuse_the_node(store):
    EntityResolver(store).run([Candidate(name="Air Jordan")], source="test", job_id="job-1")
    for job, variant in enumerate(VARIANTS):
        result = EntityResolver(store).run([Candidate(name=variant)], source="test", job_id=f"job-{job + 2}")
        (resolution,) = result.resolutions
        assert resolution.node_id == "kg:air-jordan" and resolution.method == "exact" and result.created == 0
    assert entity_count(store) == 1


def test_known_alias_resolves_to_its_node(store):
    store.upsert_nodes([NodeWrite(label="Entity", id="umls:virus", name="virus", aliases=("Viral agent",))])
    result = EntityResolver(store).run([Candidate(name="viral-agent"), Candidate(name="VIRUS")], source="test")
    assert [(r.node_id, r.method) for r in result.resolutions] == [("umls:virus", "alias"), ("umls:virus", "exact")]
    assert entity_count(store) == 1


def test_incompatible_types_keep_senses_apart(store):
    store.upsert_nodes([NodeWrite(label="Entity", id="kg:air", name="Air", props={"type": "brand"})])
    result = EntityResolver(store).run([Candidate(name="air", type="gas"), Candidate(name="AIR", type="Brand")],
                                       source="test")
    gas, brand = result.resolutions
    assert brand.node_id == "kg:air" and brand.method == "exact"
    assert gas.node_id == "kg:air:gas" and gas.created
    again = EntityResolver(store).run([Candidate(name="Air", type="gas")], source="test")
    assert again.resolutions[0].node_id == "kg:air:gas" and again.created == 0
    assert entity_count(store) == 2


def test_embedding_similarity_merges_near_names_and_records_the_alias(store, encoder):
    store.upsert_nodes([NodeWrite(label="Entity", id="kg:air-jordan", name="Air Jordan"),
                        NodeWrite(label="Entity", id="kg:cell", name="cell")])
    index = NameIndex.from_store(store, encoder)
    result = EntityResolver(store, name_index=index).run(
        [Candidate(name="Air Jordans"), Candidate(name="cell membrane")], source="test")
    merged, separate = result.resolutions
    assert merged.node_id == "kg:air-jordan" and merged.method == "embedding" and merged.score > 0.9
    assert separate.method == "new" and separate.node_id == "kg:cell-membrane"
    assert result.aliases_added == 1
    # the surface form is now an alias: the next job resolves it without embeddings
    assert EntityResolver(store).run([Candidate(name="air jordans")], source="t").resolutions[0].method == "alias"
    assert entity_count(store) == 3


def test_without_an_index_near_names_are_new_nodes(store):
    store.upsert_nodes([NodeWrite(label="Entity", id="kg:air-jordan", name="Air Jordan")])
    result = EntityResolver(store).run([Candidate(name="Air Jordans")], source="test")
    assert result.resolutions[0].method == "new"


def test_concurrent_jobs_creating_one_entity_make_one_node(store, db_settings):
    errors = []

    def job(n: int) -> None:
        try:
            with GraphStore.from_settings(db_settings) as own:
                EntityResolver(own).run([Candidate(name=VARIANTS[n % len(VARIANTS)])], source="t", job_id=f"j{n}")
        except Exception as e:  # collected and asserted below  # noqa: BLE001
            errors.append(e)

    for round_ in range(3):  # a race is not lost every time: repeat it
        store.wipe()
        threads = [threading.Thread(target=job, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"round {round_}"
        assert entity_count(store) == 1


def test_names_without_letters_are_rejected(store):
    from kg_builder.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as err:
        EntityResolver(store).run([Candidate(name="!!!")], source="test")
    assert err.value.field == "name"
