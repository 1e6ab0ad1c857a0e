// Schema introspection for GET /v1/schema and kgforge.graph_tools (kg_builder/graphdb/introspect.py).
// Every statement is bounded: one label or relationship type at a time, samples under LIMIT $sample.

// @name introspect_labels
// @purpose Every node label the database knows (ArcadeDB: every vertex type, also those without nodes).
CALL db.labels() YIELD label RETURN label;

// @name introspect_relationship_types
// @purpose Every relationship type the database knows.
CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType AS type;

// @name introspect_count_label
// @purpose Number of nodes carrying one label.
MATCH (n:{{label}}) RETURN count(n) AS count;

// @name introspect_count_type
// @purpose Number of relationships of one type.
MATCH ()-[r:{{rel_type}}]->() RETURN count(r) AS count;

// @name introspect_sample_nodes
// @purpose The labels and properties of the first $sample nodes of one label (property keys and types).
MATCH (n:{{label}}) WITH n LIMIT $sample RETURN labels(n) AS labels, properties(n) AS props;

// @name introspect_sample_edges
// @purpose Endpoint labels and properties of the first $sample relationships of one type (patterns, keys, types).
MATCH (a)-[r:{{rel_type}}]->(b) WITH a, r, b LIMIT $sample
RETURN labels(a) AS start, labels(b) AS end, properties(r) AS props;

// @name introspect_indexes
// @purpose The database's indexes (label, properties, kind) for the schema's metadata.
SHOW INDEXES YIELD name, type, entityType, labelsOrTypes, properties, owningConstraint
RETURN name, type, entityType, labelsOrTypes, properties, owningConstraint;

// @name introspect_databases
// @purpose The server's databases (name, type, default) to tell which one a database name reaches.
SHOW DATABASES YIELD name, type, default RETURN name, type, default;
