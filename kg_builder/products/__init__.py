"""The product graph (issue 10): knowledge over Amazon items, brands and categories.

* :mod:`.domain` -- an Amazon recommendation set as a knowledge-graph domain (entities = its items,
  brands and categories; a relation pool with descriptions; train/dev/test triples) so that the
  knowledge pipeline's generators, reranker and confidence model train and run on it.
* :mod:`.c2c` -- complementary categories (C2C): which categories are bought together with a category.
* :mod:`.titles` -- normalised product titles (offline normaliser, LLM rewrite) and BERT-whitening.
"""
