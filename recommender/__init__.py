"""recommender: distilled sequential recommenders (issue 12; DESIGN 4.7). First step: the students.

* :mod:`recommender.data`: Amazon Scientific sequences (RecBole atomic files): training sequences
  from the train file, a train-only holdout, evaluation sequences for ``valid`` / ``test``.
* :mod:`recommender.models`: the student registry (``sasrec``, ``gru4rec``) with RecBole's contract
  (``calculate_loss``, ``predict``, ``full_sort_predict``) and an item = ID embedding + projected
  knowledge vector (:mod:`recommender.knowledge`: MiniLM title vectors and/or graph embeddings).
* :mod:`recommender.train`: CE over all items, Adam, early stopping on the holdout, NaN stops.
* :mod:`recommender.store`: versioned saved students under ``KGFORGE_HOME/recommenders``.
* :mod:`recommender.evaluate` / :mod:`recommender.metrics`: the leave-one-out full-ranking table.
* :mod:`recommender.recommend`: top-k for a history or a user (``kgforge rec recommend``).

Teachers, distillation (DLLM2Rec, SLMRec), REKI/KAR adapters and the API come in later steps;
they plug in through ``SequentialRecommender.hidden`` / ``item_embeddings`` and the trainer's
``extra_loss`` callback.
"""
