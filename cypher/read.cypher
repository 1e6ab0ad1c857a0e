// Reads. Lookups go through the per-label `id` constraint index or the name indexes.

// @name node_by_id
// @purpose Fetch one node of one label by its id.
MATCH (n:{{label}} {id: $id}) RETURN properties(n) AS props, labels(n) AS labels;

// @name nodes_by_ids
// @purpose Fetch the nodes of one label whose ids are in $ids.
MATCH (n:{{label}}) WHERE n.id IN $ids RETURN properties(n) AS props, labels(n) AS labels;

// @name nodes_by_name
// @purpose Find nodes of one label by normalised name (an exact name normalises to the same value).
MATCH (n:{{label}}) WHERE n.name_norm = $name_norm
RETURN properties(n) AS props, labels(n) AS labels ORDER BY n.id LIMIT $limit;

// @name nodes_by_alias
// @purpose Find nodes of one label that list a normalised alias (a scan of the label: aliases are lists).
MATCH (n:{{label}}) WHERE $alias_norm IN n.aliases_norm
RETURN properties(n) AS props, labels(n) AS labels ORDER BY n.id LIMIT $limit;

// @name neighbourhood
// @purpose Distinct edges within {{hops}} hops of one node (both directions), at most $limit.
MATCH (s:{{label}} {id: $id})
MATCH p = (s)-[*1..{{hops}}]-(m)
UNWIND relationships(p) AS r
WITH DISTINCT r LIMIT $limit
RETURN startNode(r).id AS head, labels(startNode(r)) AS head_labels, type(r) AS type,
       endNode(r).id AS tail, labels(endNode(r)) AS tail_labels, properties(r) AS props;

// @name neighbour_page
// @purpose One page of a node's distinct 1-hop edges, by confidence (missing: -1) desc, type, head, tail.
MATCH (s:{{label}} {id: $id})-[r]-()
WITH DISTINCT r
WITH r, coalesce(r.confidence, -1.0) AS confidence, type(r) AS type, startNode(r) AS h, endNode(r) AS t
ORDER BY confidence DESC, type, h.id, t.id
SKIP $offset LIMIT $limit
RETURN h.id AS head, labels(h) AS head_labels, type, t.id AS tail, labels(t) AS tail_labels, properties(r) AS props;

// @name relation_pool
// @purpose The relation pool: every relation type with its original name and description.
MATCH (r:Relation) RETURN r.id AS type, r.name AS name, r.description AS description,
       r.sources AS sources ORDER BY r.id;

// @name export_triples
// @purpose Stream every edge with its endpoints and provenance (no ordering: a plain scan).
MATCH (h)-[r]->(t)
RETURN h.id AS head, type(r) AS type, coalesce(r.relation, type(r)) AS relation, t.id AS tail,
       r.confidence AS confidence, r.sources AS sources, r.evidence AS evidence, r.job_id AS job_id;

// @name count_nodes_by_label
// @purpose Number of nodes per label.
MATCH (n) RETURN labels(n) AS labels, count(*) AS count;

// @name count_edges_by_type
// @purpose Number of edges per relationship type.
MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS count;

// @name count_duplicate_edges
// @purpose Number of surplus edges: same head, type and tail written more than once (must be 0).
MATCH (h)-[r]->(t) WITH h, type(r) AS type, t, count(r) AS n WHERE n > 1 RETURN coalesce(sum(n - 1), 0) AS duplicates;

// @name ping
// @purpose Cheapest round trip that proves the database answers queries.
RETURN 1 AS ok;

// @name node_names
// @purpose Stream id, name and type of every named node of one label (to build the name embedding index).
MATCH (n:{{label}}) WHERE n.name IS NOT NULL RETURN n.id AS id, n.name AS name, n.type AS type;

// @name entity_profiles
// @purpose Stream id, name, description, type and creating job of every Entity node (the pipeline's snapshot).
MATCH (n:Entity) WHERE n.name IS NOT NULL
RETURN n.id AS id, n.name AS name, n.description AS description, n.type AS type, n.job_id AS job_id,
       n.domain AS domain;
