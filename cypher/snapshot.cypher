// Bounded reads of one domain for a job's snapshot (kg_builder/pipeline/snapshot.py, StoreSnapshot).
// Every statement starts from an index of one knowledge label ({{label}}: Entity for a KG domain;
// Item, Brand, Category and Entity for a product domain, one statement each) on id, name_norm or
// domain, and is scoped to the job's domain: a node belongs to it when its `domain` is $domain, or
// when it has none (nodes that jobs created, named categories and brands shared across datasets).
// The far end of an edge is any named node (users have no name) of the domain. `$exclude_job` (or null) leaves
// out the nodes and edges that job created, so that a replayed job sees the graph as it was before
// its first attempt.

// @name snapshot_entities_by_ids
// @purpose Named nodes of one label and the domain with the given ids (batched lookups by id).
UNWIND $ids AS id
MATCH (n:{{label}}) WHERE n.id = id
WITH n WHERE n.name IS NOT NULL AND (n.domain IS NULL OR n.domain = $domain)
  AND ($exclude_job IS NULL OR n.job_id IS NULL OR n.job_id <> $exclude_job)
RETURN n.id AS id, n.name AS name, n.description AS description, n.type AS type;

// @name snapshot_entities_by_names
// @purpose Named nodes of one label and the domain whose normalised name is one of $names_norm.
UNWIND $names_norm AS name_norm
MATCH (n:{{label}}) WHERE n.name_norm = name_norm
WITH n WHERE n.name IS NOT NULL AND (n.domain IS NULL OR n.domain = $domain)
  AND ($exclude_job IS NULL OR n.job_id IS NULL OR n.job_id <> $exclude_job)
RETURN n.id AS id, n.name AS name, n.description AS description, n.type AS type, n.name_norm AS name_norm
ORDER BY n.id;

// @name snapshot_out_edges
// @purpose Outgoing edges of the given node ids (one label) to named nodes of the domain, with the tails' profiles.
UNWIND $ids AS id
MATCH (h:{{label}}) WHERE h.id = id
MATCH (h)-[r]->(t)
WITH h, r, t WHERE t.name IS NOT NULL AND (t.domain IS NULL OR t.domain = $domain)
  AND ($exclude_job IS NULL OR ((r.job_id IS NULL OR r.job_id <> $exclude_job)
                                AND (t.job_id IS NULL OR t.job_id <> $exclude_job)))
RETURN h.id AS head, coalesce(r.relation, type(r)) AS relation, t.id AS id, t.name AS name,
       t.description AS description, t.type AS type
LIMIT $limit;

// @name snapshot_in_edges
// @purpose Incoming edges of the given node ids (one label) from named nodes of the domain, with the heads' profiles.
UNWIND $ids AS id
MATCH (t:{{label}}) WHERE t.id = id
MATCH (h)-[r]->(t)
WITH h, r, t WHERE h.name IS NOT NULL AND (h.domain IS NULL OR h.domain = $domain)
  AND ($exclude_job IS NULL OR ((r.job_id IS NULL OR r.job_id <> $exclude_job)
                                AND (h.job_id IS NULL OR h.job_id <> $exclude_job)))
RETURN t.id AS tail, coalesce(r.relation, type(r)) AS relation, h.id AS id, h.name AS name,
       h.description AS description, h.type AS type
LIMIT $limit;

// Starts from the domain index: ArcadeDB 26.10 answers a pattern that starts from a relationship
// type by scanning every edge of the database (0.4-0.7 s with WN18RR beside UMLS, growing with it),
// and from the heads of the domain in 20 ms. Heads without a domain (created by a job that did not
// stamp one) are therefore not counted.
// @name snapshot_relation_range
// @purpose Tails of one relationship type from the domain's heads of one label, with edge counts, most frequent first, at most $limit.
MATCH (h:{{label}}) WHERE h.domain = $domain
MATCH (h)-[r:{{rel_type}}]->(t)
WITH h, r, t WHERE h.name IS NOT NULL AND t.name IS NOT NULL AND (t.domain IS NULL OR t.domain = $domain)
  AND ($exclude_job IS NULL OR ((r.job_id IS NULL OR r.job_id <> $exclude_job)
                                AND (h.job_id IS NULL OR h.job_id <> $exclude_job)
                                AND (t.job_id IS NULL OR t.job_id <> $exclude_job)))
RETURN t.id AS tail, t.name AS name, t.description AS description, t.type AS type, count(*) AS count
ORDER BY count DESC, tail LIMIT $limit;

// @name snapshot_relation_pool
// @purpose The relation pool of one domain: Relation nodes a source (`dataset:<domain>`) registered.
MATCH (r:Relation) WHERE $source IN r.sources
RETURN r.id AS type, r.name AS name, r.description AS description ORDER BY r.id;

// @name snapshot_domain_entities
// @purpose Every named node of one label and domain that $exclude_job did not create (a whole-domain read, through the domain index).
MATCH (n:{{label}}) WHERE n.domain = $domain
WITH n WHERE n.name IS NOT NULL AND ($exclude_job IS NULL OR n.job_id IS NULL OR n.job_id <> $exclude_job)
RETURN n.id AS id, n.name AS name, n.description AS description, n.type AS type;

// @name domain_entity_profiles
// @purpose Stream id, name, description and type of every named node of one label and domain (builds its embedding index).
MATCH (n:{{label}}) WHERE n.domain = $domain AND n.name IS NOT NULL
RETURN n.id AS id, n.name AS name, n.description AS description, n.type AS type;

// @name count_domain_entities
// @purpose Number of nodes of one label and domain (through the domain index).
MATCH (n:{{label}}) WHERE n.domain = $domain RETURN count(n) AS count;
