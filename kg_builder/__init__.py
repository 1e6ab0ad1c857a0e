"""kg_builder: the knowledge-production core of kgforge.

Sub-packages: ``store`` (Bolt graph store and the embedded database), ``datasets`` (loaders for the
real datasets), ``ingest`` (dataset import into the graph). The core never imports FastAPI or
Celery: ``api`` and ``workers`` depend on it, never the reverse.
"""

__version__ = "0.1.0"
