"""One router per resource: jobs, entities, relations, documents, health (with metrics)."""
