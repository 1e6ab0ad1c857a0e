"""Entity resolution against the real embedded database: duplicates are never created."""

import threading

import pytest

from kg_builder.errors import InvalidInputError
from kg_builder.models.encoder import TextEncoder
from kg_builder.resolution import Candidate, EntityResolver, NameIndex
from kg_builder.graphdb import GraphStore, NodeWrite

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
    store.upsert_nodes([NodeWrite(label="Entity", id="umls:virus", name="virus")])
    EntityResolver(store).add_aliases("umls:virus", ["Viral agent"], source="test")
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
    # "Nike Air Jordan" is no lexical variant of "Air Jordan": only the index finds it (cosine 0.89)
    result = EntityResolver(store, name_index=index, encoder=encoder, threshold=0.85).run(
        [Candidate(name="Nike Air Jordan"), Candidate(name="cell membrane")], source="test")
    merged, separate = result.resolutions
    assert merged.node_id == "kg:air-jordan" and merged.method == "embedding" and merged.score > 0.85
    assert separate.method == "new" and separate.node_id == "kg:cell-membrane"
    assert result.aliases_added == 1
    # the surface form is now an alias: the next job resolves it without embeddings
    assert EntityResolver(store).run([Candidate(name="nike air-jordan")], source="t").resolutions[0].method == "alias"
    assert store.get_node("kg:air-jordan").properties["aliases"] == ["Nike Air Jordan"]
    assert entity_count(store) == 3


def test_without_an_index_near_names_that_are_no_variants_are_new_nodes(store, encoder):
    store.upsert_nodes([NodeWrite(label="Entity", id="kg:air-jordan", name="Air Jordan")])
    result = EntityResolver(store, encoder=encoder).run([Candidate(name="Nike Air Jordan")], source="test")
    assert result.resolutions[0].method == "new"


def test_lexical_variants_merge_only_when_embeddings_agree(store, encoder):
    store.upsert_nodes([NodeWrite(label="Entity", id="umls:virus", name="virus", props={"domain": "umls"}),
                        NodeWrite(label="Entity", id="umls:sign_or_symptom", name="sign or symptom",
                                  props={"domain": "umls"}),
                        NodeWrite(label="Entity", id="umls:good", name="good", props={"domain": "umls"})])
    resolver = EntityResolver(store, domain="umls", encoder=encoder)
    result = resolver.run([Candidate(name="Viruses"), Candidate(name="Symptoms, or Signs"),
                           Candidate(name="goods")], source="test")
    viruses, symptoms, goods = result.resolutions
    assert (viruses.node_id, viruses.method) == ("umls:virus", "variant") and viruses.score > 0.9
    assert (symptoms.node_id, symptoms.method) == ("umls:sign_or_symptom", "variant")
    assert goods.method == "new" and goods.node_id == "umls:goods"  # "goods" are not "good" (0.34)
    assert store.get_node("umls:goods").properties["domain"] == "umls"
    again = EntityResolver(store, domain="umls", encoder=encoder).run([Candidate(name="VIRUSES")], source="t")
    assert (again.resolutions[0].node_id, again.resolutions[0].method) == ("umls:virus", "alias")


def test_variants_created_in_one_run_make_one_node(store, encoder):
    result = EntityResolver(store, domain="umls", encoder=encoder).run(
        [Candidate(name="Air Jordans"), Candidate(name="air jordan"), Candidate(name="AIR JORDANS")], source="t")
    assert len({r.node_id for r in result.resolutions}) == 1 and result.created == 1
    assert entity_count(store) == 1


def test_resolution_is_scoped_to_the_jobs_domain(store, encoder):
    store.upsert_nodes([NodeWrite(label="Entity", id="umls:virus", name="virus", props={"domain": "umls"}),
                        NodeWrite(label="Entity", id="wn18rr:01328932", name="virus", props={"domain": "wn18rr"})])
    for domain, expected in (("umls", "umls:virus"), ("wn18rr", "wn18rr:01328932")):
        for name in ("Virus", "viruses"):
            (resolution,) = EntityResolver(store, domain=domain, encoder=encoder).run(
                [Candidate(name=name)], source="t").resolutions
            assert resolution.node_id == expected and not resolution.created, (domain, name)
    # a domain that has no "virus" creates its own node and never merges into another domain's
    (fresh,) = EntityResolver(store, domain="fb15k237", encoder=encoder).run(
        [Candidate(name="VIRUS")], source="t").resolutions
    assert fresh.created and fresh.node_id == "fb15k237:virus"
    assert store.get_node("fb15k237:virus").properties["domain"] == "fb15k237"
    assert entity_count(store) == 3
    with pytest.raises(InvalidInputError) as err:
        EntityResolver(store, domain="umls) RETURN 1 //")
    assert err.value.field == "domain"


def test_homonyms_of_different_types_stay_two_nodes_and_types_pick_among_them(store, encoder):
    result = EntityResolver(store, domain="fb15k237", encoder=encoder).run(
        [Candidate(name="Mercury", type="planet"), Candidate(name="mercury", type="chemical element"),
         Candidate(name="MERCURY")], source="t")
    planet, element, untyped = result.resolutions
    assert planet.node_id != element.node_id and result.created == 2
    assert untyped.node_id in {planet.node_id, element.node_id}  # an untyped mention joins a sense
    assert result.node_id("mercury", type="Chemical Element") == element.node_id
    assert result.node_id("Mercury", type="planet") == planet.node_id
    later = EntityResolver(store, domain="fb15k237", encoder=encoder).run(
        [Candidate(name="mercury", type="chemical-element"), Candidate(name="Mercury", type="planet"),
         Candidate(name="Mercury", type="Roman god")], source="t")
    assert [r.node_id for r in later.resolutions[:2]] == [element.node_id, planet.node_id]
    assert later.resolutions[2].created and later.created == 1
    assert entity_count(store) == 3


def test_concurrent_jobs_recording_one_alias_make_one_lookup_node(store, db_settings, encoder):
    store.upsert_nodes([NodeWrite(label="Entity", id="umls:virus", name="virus", props={"domain": "umls"})])
    errors, seen = [], []

    def job(n: int) -> None:
        try:
            with GraphStore.from_settings(db_settings) as own:
                result = EntityResolver(own, domain="umls", encoder=encoder).run(
                    [Candidate(name="Viruses")], source="t", job_id=f"j{n}")
                seen.append(result.resolutions[0].node_id)
        except Exception as e:  # collected and asserted below  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=job, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and seen == ["umls:virus"] * 6
    assert entity_count(store) == 1
    assert store.counts().nodes.get("Alias") == 1


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
    with pytest.raises(InvalidInputError) as err:
        EntityResolver(store).run([Candidate(name="!!!")], source="test")
    assert err.value.field == "name"


def test_aliases_spelled_out_by_names_are_indexed_once_per_domain(store, encoder):
    store.upsert_nodes([
        NodeWrite(label="Entity", id="fb15k237:/m/cia", name="Central Intelligence Agency (CIA)",
                  props={"domain": "fb15k237"}),
        NodeWrite(label="Entity", id="fb15k237:/m/walk", name="Hollywood Walk of Fame", props={"domain": "fb15k237"}),
        NodeWrite(label="Item", id="amazon:B1", name="Madden NFL 2005 - PlayStation 2", props={"domain": "games"}),
        NodeWrite(label="Item", id="amazon:B2", name="Halo 2 - Xbox", props={"domain": "games"}),
        NodeWrite(label="Item", id="amazon:B3", name="Halo 2 (Limited Edition) - Xbox", props={"domain": "games"}),
    ])
    assert EntityResolver(store, domain="fb15k237").index_name_aliases() == 3
    # "Madden NFL 2005"; not "Halo 2", which two products share, nor "Halo 2 - Xbox", a name already
    assert EntityResolver(store, domain="games", label="Item").index_name_aliases() == 1
    entities = EntityResolver(store, domain="fb15k237", encoder=encoder).run(
        [Candidate(name="CIA"), Candidate(name="central intelligence agency"), Candidate(name="Hollywood Walk Fame")],
        source="t")
    assert [(r.node_id, r.method) for r in entities.resolutions] == [
        ("fb15k237:/m/cia", "alias"), ("fb15k237:/m/cia", "alias"), ("fb15k237:/m/walk", "alias")]
    items = EntityResolver(store, domain="games", label="Item", encoder=encoder).run(
        [Candidate(name="madden nfl 2005"), Candidate(name="Halo 2"), Candidate(name="Madden NFL 2005 - Xbox")],
        source="t")
    madden, halo, xbox = items.resolutions
    assert (madden.node_id, madden.method) == ("amazon:B1", "alias")
    assert halo.created and xbox.created  # "Halo 2" is two products; the Xbox Madden is another product
    # another domain never sees these aliases
    (other,) = EntityResolver(store, domain="wn18rr", encoder=encoder).run([Candidate(name="CIA")], source="t").resolutions
    assert other.created and other.node_id == "wn18rr:cia"


def test_a_domains_entity_index_serves_as_the_name_index(store, encoder):
    from kg_builder.resolution import EntityIndexNeighbours
    from kg_builder.retrieval.entity_index import EntityIndex

    store.upsert_nodes([NodeWrite(label="Entity", id="umls:virus", name="virus", props={"domain": "umls"}),
                        NodeWrite(label="Entity", id="wn18rr:virus", name="virus", props={"domain": "wn18rr"})])
    index = EntityIndex.in_memory("umls", encoder)
    index.build_from([("umls:virus", "virus"), ("wn18rr:virus", "virus")])  # wider than the domain, on purpose
    resolver = EntityResolver(store, domain="umls", encoder=encoder, name_index=EntityIndexNeighbours(index),
                              threshold=0.65)  # "Virus particle" to "virus": 0.70
    (hit,) = resolver.run([Candidate(name="Virus particle")], source="t").resolutions
    assert (hit.node_id, hit.method) == ("umls:virus", "embedding")  # the wn18rr row is never merged into
