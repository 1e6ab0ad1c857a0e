"""Evaluation protocols: knowledge-graph completion (filtered link-prediction ranking)."""

from .kgc import (
    DIRECTIONS,
    HITS_AT,
    KGCResult,
    Query,
    RankingMetrics,
    Reranker,
    Scorer,
    answer_index,
    evaluate_ranking,
    evaluate_split,
    realistic_rank,
)

__all__ = [
    "DIRECTIONS",
    "HITS_AT",
    "KGCResult",
    "Query",
    "RankingMetrics",
    "Reranker",
    "Scorer",
    "answer_index",
    "evaluate_ranking",
    "evaluate_split",
    "realistic_rank",
]
