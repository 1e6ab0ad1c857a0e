"""gnn: multi-domain graph embeddings with PyTorch Geometric (issue 11; DESIGN 4.6).

Training side:

* :mod:`gnn.export`: datasets into one PyG ``HeteroData`` (item, user, category, brand; train
  interactions only, catalogue and item-item links with reverses; a domain id per node; MiniLM
  item-title features, cached).
* :mod:`gnn.sampling`: a bounded link-batch sampler (PyG's ``LinkNeighborLoader`` needs pyg-lib or
  torch-sparse, which have no wheels on PyPI for this torch; it is the drop-in replacement where
  they are installed).
* :mod:`gnn.models`: the encoder registry (``lightgcn``, ``hetero_sage``, ``rgcn``): a text
  projection plus ID embeddings, then PyG convolutions.
* :mod:`gnn.train`: pretraining, fine-tuning and adaptive source selection (by validation gain);
  a non-finite loss stops training and saves nothing.
* :mod:`gnn.evaluate`: the target-domain table on Amazon Scientific (``kgforge embed eval``).

Serving side:

* :mod:`gnn.store`: versioned embedding sets (safetensors + ids + metadata) under
  ``KGFORGE_HOME/embeddings``, write-back to graph nodes.
* :mod:`gnn.index`: FAISS exact / HNSW nearest-neighbour search.
* :mod:`gnn.exports`: ``.npy`` + ids, Parquet, RecBole atomic files.

The API serves sets at ``/v1/embeddings`` (``api/routers/embeddings.py``); the CLI is ``kgforge
embed pretrain|finetune|eval|list|export|delete|write-back``.
"""
