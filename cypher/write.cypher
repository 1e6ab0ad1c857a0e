// Writes: batched (UNWIND $rows), idempotent (MERGE on deterministic ids), replay-safe.
// `$now` is one ISO-8601 UTC timestamp per batch. Lists (sources, evidence, aliases) are unions:
// replaying a batch adds nothing. Confidence keeps the highest value any writer gave.

// @name upsert_nodes
// @purpose Create or update nodes of one label by id; set properties, union sources and aliases.
UNWIND $rows AS row
MERGE (n:{{label}} {id: row.id})
ON CREATE SET n.created_at = $now, n.job_id = row.job_id
SET n += row.props,
    n.updated_at = $now,
    n.sources = coalesce(n.sources, []) + [x IN row.sources WHERE NOT x IN coalesce(n.sources, [])],
    n.aliases = coalesce(n.aliases, []) + [x IN row.aliases WHERE NOT x IN coalesce(n.aliases, [])],
    n.aliases_norm = coalesce(n.aliases_norm, []) + [x IN row.aliases_norm WHERE NOT x IN coalesce(n.aliases_norm, [])]
RETURN count(n) AS written;

// Endpoints are matched with WHERE, not an inline map: ArcadeDB 26.10 resolves a *value* such as
// "$rows" as the parameter $rows in `(h {id: row.head})`; `WHERE h.id = row.head` compares it
// literally and is as fast (tests/kg_builder/store/test_graph.py::test_injection_names...).
// @name upsert_edges
// @purpose Create or update edges of one type between existing nodes; union provenance, keep max confidence.
UNWIND $rows AS row
MATCH (h:{{head_label}}) WHERE h.id = row.head
MATCH (t:{{tail_label}}) WHERE t.id = row.tail
MERGE (h)-[r:{{rel_type}}]->(t)
ON CREATE SET r.created_at = $now, r.job_id = row.job_id, r.relation = row.relation
SET r += row.props,
    r.updated_at = $now,
    r.confidence = CASE WHEN r.confidence IS NULL OR row.confidence > r.confidence
                        THEN row.confidence ELSE r.confidence END,
    r.sources = coalesce(r.sources, []) + [x IN row.sources WHERE NOT x IN coalesce(r.sources, [])],
    r.evidence = coalesce(r.evidence, []) + [x IN row.evidence WHERE NOT x IN coalesce(r.evidence, [])]
RETURN count(r) AS written;

// @name delete_some_nodes
// @purpose Delete up to $limit nodes with their edges (called in a loop to wipe a graph in bounded transactions).
MATCH (n) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted;
