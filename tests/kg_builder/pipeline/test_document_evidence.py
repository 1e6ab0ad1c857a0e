"""Document evidence (``doc_rr``): where, in S's retrieved documents as the knowledge ordered them,
a candidate's target is first named; the confidence feature that lets the document ranking (utility
or similarity) reach every candidate, not only the corpus generator's."""

from __future__ import annotations

from types import SimpleNamespace

from kg_builder.pipeline.confidence import FEATURES
from kg_builder.pipeline.knowledge import Knowledge, KnowledgeBuilder
from kg_builder.pipeline.pipeline import features_of
from kg_builder.pipeline.snapshot import EntityInfo, GraphSnapshot
from kg_builder.pipeline.generators.base import Proposal, vote
from kg_builder.retrieval.hybrid import Hit
from kg_builder.retrieval.utility import EntityMentions


def graph() -> GraphSnapshot:
    entities = {f"med:{n}": EntityInfo(f"med:{n}", n.replace("_", " "), None, None)
                for n in ("virus", "measles", "pneumonia", "host_cell")}
    return GraphSnapshot("med", entities, {"causes": "causes"}, [])


def builder(snapshot: GraphSnapshot) -> KnowledgeBuilder:
    mentions = EntityMentions({snapshot.native(i): e.name for i, e in snapshot.entities.items()})
    return KnowledgeBuilder(snapshot, None, utility=SimpleNamespace(mentions=mentions))  # type: ignore[arg-type]


def test_each_entity_gets_the_position_of_the_first_document_naming_it():
    snapshot = graph()
    hits = [Hit(doc_id="a", score=0.9, text="The virus enters the host cell."),
            Hit(doc_id="b", score=0.8, text="Measles and pneumonia follow; the host cell dies."),
            Hit(doc_id="c", score=0.7, text="Pneumonia again.")]
    ranks = builder(snapshot)._mention_ranks(hits)
    assert ranks == {"med:virus": 1, "med:host_cell": 1, "med:measles": 2, "med:pneumonia": 2}
    # another order of the same documents (the similarity ablation) gives other positions
    assert builder(snapshot)._mention_ranks(hits[::-1])["med:pneumonia"] == 1


def test_no_mention_detector_means_no_evidence():
    snapshot = graph()
    plain = KnowledgeBuilder(snapshot, None)  # type: ignore[arg-type]
    assert plain._mention_ranks([Hit(doc_id="a", score=1.0, text="measles")]) == {}
    assert Knowledge(entity=snapshot.entities["med:virus"], in_graph=True).mention_ranks == {}


def test_the_feature_is_one_over_the_position_and_zero_when_never_named():
    voted = vote([Proposal(relation="causes", target_id="med:measles", target_name="measles", generator="graph",
                           model="m", score=0.5, rank=1)])[0]
    column = FEATURES.index("doc_rr")
    assert features_of(voted, 0.5, 0.5, 0.0, document_rank=4)[column] == 0.25
    assert features_of(voted, 0.5, 0.5, 0.0)[column] == 0.0
