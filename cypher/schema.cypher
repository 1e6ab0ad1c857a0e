// Schema: constraints and indexes. Every statement is idempotent (IF NOT EXISTS) and accepted by
// both Neo4j 5 and ArcadeDB's OpenCypher.

// @name create_id_constraint
// @purpose Make `id` unique (and indexed) for one node label: the key every MERGE uses.
CREATE CONSTRAINT {{constraint}} IF NOT EXISTS FOR (n:{{label}}) REQUIRE n.id IS UNIQUE;

// @name create_property_index
// @purpose Index one property of one node label (names, normalised names) for lookups.
CREATE INDEX {{index}} IF NOT EXISTS FOR (n:{{label}}) ON (n.{{property}});

// @name show_constraints
// @purpose List the constraints (name, labels, properties) to check the schema.
SHOW CONSTRAINTS YIELD name, labelsOrTypes, properties RETURN name, labelsOrTypes, properties;
