"""The corpus generator on a tiny hand-made graph with the real MiniLM encoder: the mention path
(known entities of the relation's range) and new entities read from S's documents."""

from __future__ import annotations

import pytest

from kg_builder.models.encoder import TextEncoder
from kg_builder.pipeline.generators.corpus import CorpusGenerator, bm25_document_frequency
from kg_builder.pipeline.knowledge import Knowledge
from kg_builder.pipeline.relations import RelationCandidate
from kg_builder.pipeline.snapshot import Edge, EntityInfo, GraphSnapshot
from kg_builder.retrieval.bm25 import BM25Index
from kg_builder.retrieval.hybrid import Hit
from kg_builder.retrieval.utility import EntityMentions

DOC = ("A virus is a small infectious agent. Viruses cause diseases such as influenza, measles and "
       "pneumonia. The virus can infect the host cell.")


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def snapshot(typed: bool = True) -> GraphSnapshot:
    disease = "disease" if typed else None
    entities = {f"med:{i}": EntityInfo(f"med:{i}", name, None, kind) for i, name, kind in [
        ("virus", "virus", "organism"), ("bacterium", "bacterium", "organism"),
        ("pneumonia", "pneumonia", disease), ("hepatitis", "hepatitis", disease), ("measles", "measles", disease),
        ("tuberculosis", "tuberculosis", disease), ("host_cell", "host cell", None),
        ("protein", "amino acid, peptide, or protein", None)]}
    edges = [Edge("med:bacterium", "causes", "med:pneumonia"), Edge("med:bacterium", "causes", "med:tuberculosis"),
             Edge("med:virus", "causes", "med:hepatitis"), Edge("med:bacterium", "causes", "med:measles"),
             Edge("med:bacterium", "infects", "med:host_cell"), Edge("med:virus", "interacts_with", "med:protein"),
             Edge("med:host_cell", "interacts_with", "med:bacterium")]
    return GraphSnapshot("med", entities, {"causes": "causes", "infects": "infects", "interacts_with": "interacts with",
                                           "treats": "treats"}, edges)


def knowledge(graph: GraphSnapshot, text: str = DOC) -> Knowledge:
    return Knowledge(entity=graph.entities["med:virus"], in_graph=True,
                     documents=[Hit(doc_id="doc:virus", score=1.0, text=text)],
                     document_utility={"doc:virus": 0.8})


def relation(name: str) -> RelationCandidate:
    return RelationCandidate(relation=name, description=name, similarity=0.5, prior=0.5, retrieval_score=0.5)


def generator(graph: GraphSnapshot, encoder: TextEncoder, **options) -> CorpusGenerator:
    mentions = EntityMentions({graph.native(i): e.name for i, e in graph.entities.items()})
    return CorpusGenerator(snapshot=graph, mentions=mentions, encoder=encoder, **options)


def test_a_disease_named_in_the_document_becomes_a_new_typed_target_after_the_known_ones(encoder):
    graph = snapshot()
    proposals = generator(graph, encoder).propose(knowledge(graph), relation("causes"), k=5)
    known = [p for p in proposals if p.target_id is not None]
    new = [p for p in proposals if p.target_id is None]
    # mention path unchanged: measles and pneumonia are in the range; hepatitis is already known
    assert {p.target_id for p in known} == {"med:measles", "med:pneumonia"}
    assert [p.rank for p in known] == [1, 2]
    # new entities rank after the mention path's budget (k = 5), best first
    assert new and new[0].target_name == "influenza" and new[0].rank == 6
    assert new[0].target_type == "disease" and new[0].evidence == ["doc:virus"]
    assert [p.rank for p in new] == list(range(6, 6 + len(new))) and len(new) <= 2
    assert all(p.generator == "corpus" for p in proposals)


def test_source_and_known_names_are_never_new_entities(encoder):
    graph = snapshot()
    gen = generator(graph, encoder, min_fit=0.0)  # keep every phrase that survives the filters
    names = {p.name for p in gen.source_phrases(knowledge(graph, DOC + " Its protein coat holds a protein."))[0]}
    assert {"influenza", "protein coat", "diseases"} <= names
    # S ("virus", "Viruses"), graph entities ("measles", "host cell") and an alias of
    # "amino acid, peptide, or protein" are the mention path's, generic heads ("diseases" is kept,
    # "type" would not be) are left out
    assert not names & {"virus", "Viruses", "viruses", "measles", "pneumonia", "host cell", "protein"}
    assert "type" not in {p.name for p in gen.source_phrases(knowledge(graph, "A virus is a type of agent."))[0]}


def test_typing_follows_the_relation_range(encoder):
    untyped = snapshot(typed=False)
    gen = generator(untyped, encoder)
    new = [p for p in gen.propose(knowledge(untyped), relation("causes"), k=5) if p.target_id is None]
    assert new and all(p.target_type is None for p in new)  # no typed tail: no type is invented
    graph = snapshot()
    assert generator(graph, encoder).range_type("causes") == "disease"
    assert generator(graph, encoder).range_type("infects") is None


def test_no_range_no_documents_or_switched_off_means_no_new_entity(encoder):
    graph = snapshot()
    gen = generator(graph, encoder)
    assert gen.propose(knowledge(graph), relation("treats"), k=5) == []  # the relation points nowhere yet
    empty = Knowledge(entity=graph.entities["med:virus"], in_graph=True)
    assert gen.propose(empty, relation("causes"), k=5) == []
    off = generator(graph, encoder, new_per_relation=0).propose(knowledge(graph), relation("causes"), k=5)
    assert all(p.target_id is not None for p in off) and len(off) == 2


def test_a_name_nearly_identical_to_a_range_entity_is_not_new(encoder):
    graph = snapshot()
    gen = generator(graph, encoder, resolve_similarity=0.9)
    text = "Viruses attack bacteria and fungi."
    assert "bacteria" in {p.name for p in gen.source_phrases(knowledge(graph, text))[0]}
    names = {p.target_name for p in gen.propose(knowledge(graph, text), relation("interacts_with"), k=5)
             if p.target_id is None}
    assert "bacteria" not in names and "fungi" in names  # "bacteria" names the range entity "bacterium"


def test_document_frequency_from_bm25_makes_corpus_wide_words_generic(encoder):
    corpus = [f"The patient has disease number {i}." for i in range(9)] + ["Influenza is a disease."]
    index = BM25Index().build(corpus)
    frequency = bm25_document_frequency(index)
    assert frequency is not None
    assert frequency("disease") == [1.0] and frequency("influenza") == [0.1] and frequency("unseen") == [0.0]
    graph = snapshot()
    gen = generator(graph, encoder, document_frequency=frequency, corpus_size=len(corpus), min_fit=0.0)
    names = {p.name for p in gen.source_phrases(knowledge(graph, "Influenza is a disease of the patient."))[0]}
    assert "influenza" in names.union({n.lower() for n in names}) and "disease" not in names
    assert bm25_document_frequency(BM25Index().build([])) is None
