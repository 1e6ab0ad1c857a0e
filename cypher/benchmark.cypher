// Baselines for benchmarks/bench_ingest.py (not used by kgforge itself).

// @name bench_merge_one_triple
// @purpose Baseline: one MERGE statement per triple, as many LLM graph builders write (auto-commit, no batching).
MERGE (h:{{label}} {id: $head}) ON CREATE SET h.name = $head_name
MERGE (t:{{label}} {id: $tail}) ON CREATE SET t.name = $tail_name
MERGE (h)-[r:{{rel_type}}]->(t)
SET r.relation = $relation, r.confidence = $confidence, r.sources = $sources, r.evidence = $evidence,
    r.created_at = $now, r.updated_at = $now;

// @name bench_create_triples
// @purpose Ceiling: bulk CREATE of both endpoints and the edge with no lookups (duplicates nodes; no constraint).
UNWIND $rows AS row
CREATE (h:{{label}} {id: row.head, name: row.head_name})
       -[:{{rel_type}} {relation: row.relation, confidence: row.confidence, sources: row.sources,
                       evidence: row.evidence, created_at: $now, updated_at: $now}]->
       (t:{{label}} {id: row.tail, name: row.tail_name});
