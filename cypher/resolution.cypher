// Entity resolution (kg_builder/resolution): batched lookups through indexes, scoped to one domain.
// Aliases live in (:Alias) lookup nodes (one per alias, label, domain and target node): a list
// property cannot be looked up through an index, a scalar `lookup` key can.

// @name resolution_nodes_by_names
// @purpose Nodes of one label (and of $domain unless it is null) whose normalised name is in $norms (name_norm index).
MATCH (n:{{label}}) WHERE n.name_norm IN $norms AND ($domain IS NULL OR n.domain = $domain)
RETURN n.name_norm AS norm, n.id AS id, n.name AS name, n.type AS type ORDER BY n.id;

// @name resolution_nodes_by_ids
// @purpose id, name, normalised name, type and domain of the nodes of one label whose id is in $ids (id index).
MATCH (n:{{label}}) WHERE n.id IN $ids
RETURN n.id AS id, n.name AS name, n.name_norm AS norm, n.type AS type, n.domain AS domain;

// @name resolution_aliases
// @purpose Alias lookup nodes whose key "label|domain|alias_norm" is in $lookups (alias_lookup index).
MATCH (a:Alias) WHERE a.lookup IN $lookups RETURN a.lookup AS lookup, a.node_id AS node_id ORDER BY a.node_id;

// @name resolution_write_aliases
// @purpose Record alias lookup nodes; one per (lookup, node) key, so writing one twice changes nothing.
UNWIND $rows AS row
MERGE (a:Alias {key: row.key})
ON CREATE SET a.lookup = row.lookup, a.node_id = row.node_id, a.alias = row.alias, a.label = row.label,
              a.domain = row.domain, a.created_at = $now
RETURN count(a) AS written;

// @name resolution_domain_names
// @purpose id, name and type of the named nodes of one label in one domain (to build a domain's name index).
MATCH (n:{{label}}) WHERE n.domain = $domain AND n.name IS NOT NULL RETURN n.id AS id, n.name AS name, n.type AS type;

// @name resolution_create_alias_constraint
// @purpose Make Alias.key unique (and indexed): two jobs recording one alias make one lookup node.
CREATE CONSTRAINT alias_key_unique IF NOT EXISTS FOR (a:Alias) REQUIRE a.key IS UNIQUE;

// @name resolution_create_alias_index
// @purpose Index Alias.lookup, the key resolution looks aliases up by.
CREATE INDEX alias_lookup IF NOT EXISTS FOR (a:Alias) ON (a.lookup);

// @name resolution_create_domain_index
// @purpose Index the domain of one node label (a domain's names are read without scanning other domains).
CREATE INDEX {{index}} IF NOT EXISTS FOR (n:{{label}}) ON (n.domain);

// Baseline for benchmarks/bench_resolution.py (not used by kgforge itself).

// @name bench_resolution_name_index
// @purpose Baseline: index the plain `name` of one label, as an exact-name MERGE builder would.
CREATE INDEX {{index}} IF NOT EXISTS FOR (n:{{label}}) ON (n.name);

// @name bench_resolution_exact_merge
// @purpose Baseline: MERGE each name on the exact `name` property (what most LLM graph builders do); ids of the matched or created nodes.
UNWIND $rows AS row
MERGE (n:{{label}} {name: row.name})
ON CREATE SET n.id = row.id, n.bench_baseline = true
RETURN row.i AS i, collect(n.id) AS ids;

// @name bench_resolution_drop_baseline
// @purpose Baseline clean-up: delete at most $limit nodes of one label that the baseline created.
MATCH (n:{{label}}) WHERE n.bench_baseline = true WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted;
