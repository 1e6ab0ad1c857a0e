// Reads of one domain's training triples for incremental updates (kg_builder/training/graph_state.py):
// `kgforge train structural --resume` reads the triples, `kgforge models status` counts them.
// A training triple is an edge between named nodes of the domain that an import wrote into the
// train split (`split = 'train'`) or that a job wrote (no `split`); dev and test edges are left
// out. Every statement starts from the domain index of one knowledge label ({{label}}), as the
// snapshot reads do (kgforge never scans every edge of the database), so its cost grows with the
// domain, not with other domains beside it. Tails may have no domain (shared brands and categories).

// @name incremental_domain_training_edges
// @purpose Every training edge (train split or job-written) from named nodes of one label and domain to named nodes of the domain: head, relation, tail.
MATCH (h:{{label}}) WHERE h.domain = $domain AND h.name IS NOT NULL
MATCH (h)-[r]->(t)
WITH h, r, t WHERE t.name IS NOT NULL AND (t.domain IS NULL OR t.domain = $domain)
  AND (r.split IS NULL OR r.split = 'train')
RETURN h.id AS head, coalesce(r.relation, type(r)) AS relation, t.id AS tail;

// @name incremental_domain_training_state
// @purpose Count of the training edges from one label's nodes of a domain, how many jobs wrote, and the newest creation time.
MATCH (h:{{label}}) WHERE h.domain = $domain AND h.name IS NOT NULL
MATCH (h)-[r]->(t)
WITH r, t WHERE t.name IS NOT NULL AND (t.domain IS NULL OR t.domain = $domain)
  AND (r.split IS NULL OR r.split = 'train')
RETURN count(r) AS edges, sum(CASE WHEN r.job_id IS NULL THEN 0 ELSE 1 END) AS job_edges,
       max(r.created_at) AS newest;

// @name incremental_domain_job_edges
// @purpose Every edge a job wrote from named nodes of one label and domain to named nodes of the domain, with its confidence (graph embeddings read them as weighted edges).
MATCH (h:{{label}}) WHERE h.domain = $domain AND h.name IS NOT NULL
MATCH (h)-[r]->(t)
WITH h, r, t WHERE r.job_id IS NOT NULL AND t.name IS NOT NULL AND (t.domain IS NULL OR t.domain = $domain)
RETURN h.id AS head, coalesce(r.relation, type(r)) AS relation, t.id AS tail, r.confidence AS confidence;
