// Writes: batched (UNWIND $rows), idempotent (deterministic ids), replay-safe.
// `$now` is one ISO-8601 UTC timestamp per batch. Lists (sources, evidence, aliases) are unions:
// replaying a batch adds nothing. Confidence keeps the highest value any writer gave.
// GraphStore runs each batch as one transaction of two statements: `create_missing_*` creates the
// rows whose node or edge does not exist yet and returns their row numbers (`row.i`); the
// `upsert_*` statement then updates the others (provenance unions). On ArcadeDB 26.10 this is
// 1.4-1.8x faster than one MERGE statement for a new import (benchmarks/bench_ingest.py); rows
// are deduplicated per batch in Python first, so one statement never sees a key twice. Against
// Neo4j the upsert_* statements run alone: their MERGE locks the endpoints, which an OPTIONAL MATCH
// + CREATE does not, and only that lock keeps concurrent writers from creating one edge twice there.

// Null values in a CREATE map are not stored (Neo4j and ArcadeDB alike): an absent name stays absent.
// @name create_missing_nodes
// @purpose Create the nodes of one label (rows without extra properties) whose id does not exist yet; return the created rows' numbers.
UNWIND $rows AS row
OPTIONAL MATCH (n:{{label}}) WHERE n.id = row.id
WITH row, n WHERE n IS NULL
CREATE (m:{{label}} {id: row.id, name: row.name, name_norm: row.name_norm, description: row.description,
                     sources: row.sources, aliases: row.aliases, aliases_norm: row.aliases_norm,
                     job_id: row.job_id, created_at: $now, updated_at: $now})
RETURN collect(row.i) AS created;

// @name create_missing_nodes_with_props
// @purpose Create the nodes of one label (rows with extra properties) whose id does not exist yet; return the created rows' numbers.
UNWIND $rows AS row
OPTIONAL MATCH (n:{{label}}) WHERE n.id = row.id
WITH row, n WHERE n IS NULL
CREATE (m:{{label}})
SET m += row.props,
    m.id = row.id, m.name = coalesce(row.name, m.name), m.name_norm = coalesce(row.name_norm, m.name_norm),
    m.description = coalesce(row.description, m.description), m.sources = row.sources, m.aliases = row.aliases, m.aliases_norm = row.aliases_norm,
    m.job_id = row.job_id, m.created_at = $now, m.updated_at = $now
RETURN collect(row.i) AS created;

// @name upsert_nodes
// @purpose Create or update nodes of one label by id; set properties, union sources and aliases.
UNWIND $rows AS row
MERGE (n:{{label}} {id: row.id})
ON CREATE SET n.created_at = $now, n.job_id = row.job_id
SET n += row.props,
    n.name = coalesce(row.name, n.name), n.name_norm = coalesce(row.name_norm, n.name_norm),
    n.description = coalesce(row.description, n.description),
    n.updated_at = $now,
    n.sources = coalesce(n.sources, []) + [x IN row.sources WHERE NOT x IN coalesce(n.sources, [])],
    n.aliases = coalesce(n.aliases, []) + [x IN row.aliases WHERE NOT x IN coalesce(n.aliases, [])],
    n.aliases_norm = coalesce(n.aliases_norm, []) + [x IN row.aliases_norm WHERE NOT x IN coalesce(n.aliases_norm, [])]
RETURN count(n) AS written;

// Endpoints are matched with WHERE, not an inline map: ArcadeDB 26.10 resolves a *value* such as
// "$rows" as the parameter $rows in `(h {id: row.head})`; `WHERE h.id = row.head` compares it
// literally and is as fast (tests/kg_builder/graphdb/test_graph.py::test_injection_names...).
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

// @name create_missing_edges
// @purpose Create the edges of one type (rows without extra properties) that do not exist yet; return the created rows' numbers.
UNWIND $rows AS row
MATCH (h:{{head_label}}) WHERE h.id = row.head
MATCH (t:{{tail_label}}) WHERE t.id = row.tail
OPTIONAL MATCH (h)-[e:{{rel_type}}]->(t)
WITH h, t, row, e WHERE e IS NULL
CREATE (h)-[r:{{rel_type}} {relation: row.relation, confidence: row.confidence, sources: row.sources,
                             evidence: row.evidence, job_id: row.job_id, created_at: $now, updated_at: $now}]->(t)
RETURN collect(row.i) AS created;

// Separate from create_missing_edges because `SET r += row.props`, even with an empty map, costs
// ArcadeDB about a third more per edge, and most edges carry no extra properties.
// @name create_missing_edges_with_props
// @purpose Create the edges of one type (rows with extra properties) that do not exist yet; return the created rows' numbers.
UNWIND $rows AS row
MATCH (h:{{head_label}}) WHERE h.id = row.head
MATCH (t:{{tail_label}}) WHERE t.id = row.tail
OPTIONAL MATCH (h)-[e:{{rel_type}}]->(t)
WITH h, t, row, e WHERE e IS NULL
CREATE (h)-[r:{{rel_type}}]->(t)
SET r += row.props,
    r.relation = row.relation, r.confidence = row.confidence, r.sources = row.sources, r.evidence = row.evidence,
    r.job_id = row.job_id, r.created_at = $now, r.updated_at = $now
RETURN collect(row.i) AS created;

// @name delete_some_nodes
// @purpose Delete up to $limit nodes with their edges (called in a loop to wipe a graph in bounded transactions).
MATCH (n) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted;

// @name set_existing_node_properties
// @purpose Set properties on nodes of one label that already exist (never creates a node); returns how many matched.
UNWIND $rows AS row
MATCH (n:{{label}}) WHERE n.id = row.id
SET n += row.props, n.updated_at = $now
RETURN count(n) AS written;
