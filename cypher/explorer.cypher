// Reads of the graph explorer (api/routers/explorer.py through kg_builder/graphdb/explore.py).

// No index holds edge properties, so this scans the edges; without an ORDER BY the database stops
// at the first $limit matches.
// @name edges_by_job
// @purpose The edges a job created (their `job_id`), with both endpoints, at most $limit.
MATCH (h)-[r]->(t) WHERE r.job_id = $job_id
RETURN properties(h) AS head, labels(h) AS head_labels, type(r) AS type, properties(r) AS props,
       properties(t) AS tail, labels(t) AS tail_labels
LIMIT $limit;
