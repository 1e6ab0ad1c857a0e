"""The recommender table on Amazon Scientific (issue 12: popularity, students, teachers, distillation).

Protocol (printed with every number, in the result's ``protocol``):

* Leave-one-out on ``amazon18_scientific``: each user's history (the train items) + the target of
  the evaluated split (``valid``; ``test`` = history incl. the valid item -> test item, where
  ``Scientific.test.inter`` is on disk). 8,442 users, **full ranking over all 4,385 items**, no
  sampled negatives; **history items excluded**; ties count against the target
  (:mod:`recommender.metrics`, the conventions of :func:`kg_builder.evaluation.titles.rank_metrics`).
* HR@10/20 and NDCG@10/20 averaged over users; student rows are the **mean of the seeds** (default
  0, 1, 2) with the standard deviation (``*_std``) and each seed's numbers.
* Students train on ``Scientific.train.inter`` only, early-stopped on a train-only holdout (never
  on ``valid``); see :mod:`recommender.train` for every default. The same trained model serves both
  splits (RecBole's benchmark-file protocol).

Rows: ``popularity`` (train interaction counts; :func:`gnn.evaluate.popularity_embeddings` scored by
:func:`~kg_builder.evaluation.titles.rank_metrics`), then each student of ``STUDENTS`` with each
knowledge spec of ``KNOWLEDGE`` (``none`` = ID only; ``text`` = the MiniLM title vectors,
projected and added to the ID embedding). ``text`` rather than ``text-whitened``: chosen on the
train-only holdout (SASRec, seed 0: holdout NDCG@10 0.0902 with ``text``, 0.0862 with
``text-whitened``; valid was 0.0807 vs 0.0809, i.e. no difference).

With ``train=True`` every student row is trained with the defaults and saved as
``<model>-<knowledge>-<dataset>-s<seed>`` in the :class:`~recommender.store.RecommenderStore`
(so ``kgforge rec recommend --model sasrec-text-amazon18_scientific-s0`` serves it);
without it the saved versions are loaded (a missing one names the command that trains it).

Sections (``sections``; ``kgforge rec eval`` runs all three by default, ``--sections students``
only the student rows):

* ``students``: the rows above, and with ``graph`` each student with ``text+graph:gnn-<dataset>``
  knowledge (the graph embedding set beside the title vectors; with ``train`` (or ``train_missing``
  and no saved set) the set is made first, as ``kgforge embed finetune --dataset <dataset>`` makes
  it; otherwise a missing set gives a ``not run`` row naming that command), and the same plus
  ``+graph-score:gnn-<dataset>`` (the student's graph-score term, :mod:`recommender.graph_score`:
  the set's own decayed-history score added to the student's logits at ``GRAPH_SCORE_WEIGHT`` (4.0) by late fusion,
  so this row reuses the saved network of the row without it: :func:`fuse_saved`).
* ``teachers``: the text teacher (:mod:`recommender.teachers.text_teacher`, one run, seed 0, saved
  as ``text-teacher-minilm-<dataset>-s0``); the LLM teacher as a ``not run`` row (no LLM here); the
  text teacher with **seed-user** knowledge (:func:`recommender.teachers.seed_users.evaluate_seed_users`:
  ``seed_users`` (500) k-means seeds get the teacher's user vector, everyone else the weighted vector
  of its 3 nearest seeds; the row carries the calls saved and both metric sets).
* ``teachers`` also holds the **text + graph teacher**
  (:class:`~recommender.teachers.graph_teacher.GraphFusedTeacher`: the text teacher's score plus the
  graph embedding set's decayed-history score, weight 1.0) where ``graph`` is on and
  ``gnn-<dataset>`` is saved.
* ``distilled``: each student of ``students`` with each plan of ``distill_plans``
  (:mod:`recommender.distill`: ``dllm2rec``, ``slmrec``, ``dllm2rec+slmrec``, ``kar``,
  ``kar+dllm2rec+slmrec``), the student's knowledge ``text`` (``kar``: ``text+teacher:<teacher>``
  condensed by the adapter), and with ``graph`` the same with ``+graph:gnn-<dataset>`` (a ``not run``
  row naming ``kgforge embed finetune`` when that embedding set is not saved), and with
  ``+graph:gnn-<dataset>+graph-score:gnn-<dataset>``. Same trainer defaults
  as the student rows (equal budgets: at most 12 epochs, patience 3 on the same holdout), saved as
  ``<model>-<plan>-<knowledge>-<dataset>-s<seed>``; from each teacher of ``teachers`` (``text``, and
  ``text+graph`` for the plans that distil a teacher, saved as ``<model>-<plan>-tgt-...``).

Measured, teachers and distillation (**dev numbers**, ``valid``, same protocol; the command with
``--sections teachers,distilled --seeds 0 --train-missing``, run as two processes (SASRec, GRU4Rec)
on the shared 2-core machine, one torch thread each; **one seed (0)** for the distilled rows, the
3-seed GRU4Rec row where marked; no ``gnn-amazon18_scientific`` embedding set was saved, so every
``+ graph`` row is ``not run``):

=====================================================  =======  ======  =======  ======  ============
row                                                    NDCG@10  HR@10   NDCG@20  HR@20   train
=====================================================  =======  ======  =======  ======  ============
text teacher (MiniLM top layer + IDs, 25.1 M params)   0.0700   0.1071  0.0794   0.1442  379 s, 2.3 GB
text teacher, seed-user knowledge (500 of 8,442)       0.0674   0.1059  0.0771   0.1444  -
LLM teacher                                            not run (no LLM here)
SASRec + text (seed 0, from the student rows)          0.0807   -       -        -       68 s
SASRec + DLLM2Rec                                      0.0788   0.1200  0.0893   0.1613  303 s
SASRec + SLMRec                                        0.0800   0.1238  0.0908   0.1668  298 s
SASRec + DLLM2Rec + SLMRec                             0.0820   0.1272  0.0914   0.1644  193 s
SASRec + KAR (teacher + title vectors)                 0.0735   0.1124  0.0830   0.1500  153 s
SASRec + KAR + DLLM2Rec + SLMRec                       0.0754   0.1163  0.0848   0.1533  445 s
GRU4Rec + text (seed 0, from the student rows)         0.0571   -       -        -       52 s
GRU4Rec + DLLM2Rec                                     0.0687   0.1153  0.0784   0.1538  236 s
GRU4Rec + SLMRec                                       0.0682   0.1116  0.0791   0.1548  193 s
GRU4Rec + DLLM2Rec + SLMRec                            0.0694   0.1123  0.0799   0.1540  308 s
  the same, seeds 0, 1, 2: mean (std)                  0.0697 (0.0006)  0.1128  0.0798  0.1530  163-308 s
GRU4Rec + KAR + DLLM2Rec + SLMRec                      0.0678   0.1105  0.0776   0.1498  229 s
=====================================================  =======  ======  =======  ======  ============

Seed users save 7,942 of 8,442 teacher calls (94 %) for 3.8 % of the teacher's NDCG@10. Distillation
from this teacher (weaker than SASRec + text on the holdout: 0.0696 against 0.0902) lifts GRU4Rec
+ text by +14 % over three seeds (0.0612 -> 0.0697; seed 0 alone 0.0571 -> 0.0694), to the
teacher's level (0.0700) and SASRec + text by ~+1.6 % (0.0807 -> 0.0820); KAR's
adapter over teacher and title vectors is below the plain text supplement for SASRec.

``train_missing`` trains only what is not saved yet. Run::

    kgforge rec eval --dataset amazon18_scientific --split valid --data-dir ../shared/data --train --json
    kgforge rec eval --sections students,teachers,distilled --train-missing --data-dir ../shared/data --json

Measured (**dev numbers**, ``--split valid``, 8,442 users, 4,385 items; the command above with
``--seeds 0,1,2`` and the defaults of :mod:`recommender.train` on a fresh ``KGFORGE_HOME`` whose
title-embedding cache was primed (MiniLM encoding of the 4,385 titles took 289 s separately on the
shared 2-core machine); one torch thread; whole run **13 min 24 s** wall, peak RSS 1.02 GB; each
training run 36-87 s, 7-12 epochs):

===========================  ===============  ===============  ===============  ===============
row                          NDCG@10 (std)    HR@10 (std)      NDCG@20 (std)    HR@20 (std)
===========================  ===============  ===============  ===============  ===============
popularity                   0.0214           0.0389           0.0260           0.0572
SASRec (ID only)             0.0718 (0.0009)  0.1063 (0.0005)  0.0797 (0.0006)  0.1377 (0.0008)
SASRec + text knowledge      0.0790 (0.0014)  0.1209 (0.0012)  0.0888 (0.0012)  0.1600 (0.0003)
GRU4Rec (ID only)            0.0409 (0.0063)  0.0694 (0.0102)  0.0484 (0.0067)  0.0993 (0.0117)
GRU4Rec + text knowledge     0.0612 (0.0029)  0.1006 (0.0037)  0.0705 (0.0024)  0.1378 (0.0018)
===========================  ===============  ===============  ===============  ===============

For reference on the same protocol: MiniLM text + whitening alone 0.0765 NDCG@10
(:mod:`gnn.evaluate`); RecBole's SASRec on this split is reported at about 0.055 (not run here:
the side-by-side RecBole benchmark is a later step, so the gap to it is unexplained). GRU4Rec is
under-trained at this budget (two of three ID-only seeds stopped on the 12-epoch cap or after a
noisy holdout peak; the spread is large).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kg_builder.errors import InvalidInputError

from .data import load_rec_data
from .metrics import KS, model_metrics

logger = logging.getLogger(__name__)

STUDENTS = ("sasrec", "gru4rec")
KNOWLEDGE = ("none", "text")
SECTIONS = ("students", "teachers", "distilled")
TEACHER = "text-teacher"
TEACHER_SEED = 0
DISTILL_PLANS = ("dllm2rec", "slmrec", "dllm2rec+slmrec", "kar", "kar+dllm2rec+slmrec")
DISTILL_KNOWLEDGE = "text"
#: Teachers of the distilled rows: the text teacher, and the text teacher fused with the graph's
#: embedding set (:mod:`recommender.teachers.graph_teacher`; only where that set is saved).
TEACHERS = ("text", "text+graph")
GRAPH_SET = "gnn-{dataset}"
SEED_USERS = 500
METRICS = tuple(f"{m}@{k}" for k in KS for m in ("ndcg", "hr"))
PROTOCOL = ("leave-one-out; full ranking over all items, no sampled negatives; history items excluded; "
            "ties count against the target; HR/NDCG@10/20 averaged over users; students: mean (std) over seeds")


def saved_name(model: str, knowledge: str, dataset: str, seed: int) -> str:
    """The store name of one row's model for one seed (a ``graph-score:<set>`` part naming the same set
    as the spec's ``graph:<set>`` part is written ``gscore``, so names stay within 100 characters)."""
    parts = knowledge.split("+")
    parts = ["gscore" if p.startswith("graph-score:") and f"graph:{p[len('graph-score:'):]}" in parts else p
             for p in parts]
    spec = "+".join(parts).replace(":", "_").replace("+", "_").replace("@", "_")
    return f"{model}-{spec}-{dataset}-s{seed}"


def distilled_name(model: str, plan: str, knowledge: str, dataset: str, seed: int, *, graph_teacher: bool = False
                   ) -> str:
    """The store name of a distilled student (``-tgt`` when its teacher is the text + graph teacher)."""
    tag = plan.replace("+", "_") + ("-tgt" if graph_teacher else "")
    return saved_name(f"{model}-{tag}", short_spec(knowledge), dataset, seed)


def short_spec(knowledge: str) -> str:
    """A knowledge spec for store names: ``teacher:<name>`` parts become ``teacher`` (names <= 100 chars)."""
    return "+".join("teacher" if p.startswith("teacher:") else p for p in knowledge.split("+"))


def summarise(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(runs)}
    for key in METRICS:
        values = np.array([r[key] for r in runs])
        out[key] = round(float(values.mean()), 4)
        out[f"{key}_std"] = round(float(values.std()), 4)
    return out


def evaluate_table(*, dataset: str = "amazon18_scientific", split: str = "valid", data_dir: Path | str,
                   seeds: Sequence[int] = (0, 1, 2), students: Sequence[str] = STUDENTS,
                   knowledge: Sequence[str] = KNOWLEDGE, train: bool = False, store=None,
                   train_kwargs: dict[str, Any] | None = None, cache_dir: Path | None = None, settings=None,
                   progress: Callable[[dict[str, Any]], None] | None = None,
                   sections: Sequence[str] = ("students",), distill_plans: Sequence[str] = DISTILL_PLANS,
                   graph: bool = True, train_missing: bool = False, teacher_kwargs: dict[str, Any] | None = None,
                   seed_users: int = SEED_USERS, teachers: Sequence[str] = TEACHERS) -> dict[str, Any]:
    """Every row above; returns ``{"protocol": ..., "rows": [...]}``.

    Raises:
        DatasetError: the split is not on disk (a held-out ``test`` without its file).
        RecommenderNotFoundError: ``train=False`` and a row's model was never saved.
    """
    from gnn.evaluate import popularity_embeddings
    from kg_builder.evaluation.titles import rank_metrics

    from .knowledge import build_graph_scores, build_knowledge
    from .store import default_store
    from .train import train_student

    if not seeds:
        raise InvalidInputError("seeds", "need at least one seed")
    store = store if store is not None else default_store()
    started = time.monotonic()
    data = load_rec_data(dataset, data_dir)
    sequences = data.evaluation(split)
    popularity = popularity_embeddings(data.dataset)
    pop = {}
    for k in KS:
        pop.update(rank_metrics(popularity, sequences, k=k))
    rows: list[dict[str, Any]] = [{"row": "popularity", **{k: round(pop[k], 4) for k in METRICS}}]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise InvalidInputError("sections", f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    matrices: dict[str, Any] = {}
    trained_here: set[str] = set()  # store names trained and saved by this call
    specs, not_run = list(knowledge), []
    graph_spec = f"{DISTILL_KNOWLEDGE}+graph:{GRAPH_SET.format(dataset=dataset)}"
    graph_score_spec = f"{graph_spec}+graph-score:{GRAPH_SET.format(dataset=dataset)}"
    if graph and {"students", "distilled"} & set(sections) and (
            train or (train_missing and not _graph_set_saved(settings, dataset))):
        _train_graph_set(settings, dataset, data_dir, progress)
    if graph and "students" in sections:
        for extra in (graph_spec, graph_score_spec):
            if extra in specs:
                continue
            if _graph_set_saved(settings, dataset):
                specs.append(extra)
            else:
                not_run += [_graph_not_run(f"{m} + {extra} knowledge", dataset) for m in students]
    for model_name in (students if "students" in sections else ()):
        for spec in specs:
            runs, timings = [], []
            for seed in seeds:
                name = saved_name(model_name, spec, dataset, seed)
                base_name = saved_name(model_name, without_graph_score(spec), dataset, seed)
                fused = None
                if _fusable(store, name, base_name, train=train, train_missing=train_missing, trained_here=trained_here):
                    fused = fuse_saved(store, base_name, name, spec, data, dataset, settings=settings)
                if fused is not None:
                    student, train_metrics = fused
                elif train or (train_missing and not store.versions(name)):
                    if spec not in matrices:
                        matrices[spec] = (build_knowledge(spec, data, cache_dir=cache_dir, settings=settings),
                                          build_graph_scores(spec, data, settings=settings))
                    if progress:
                        progress({"event": "row", "model": name})
                    knowledge_matrix, graph_scores = matrices[spec]
                    result = train_student(data=data, model=model_name, knowledge=knowledge_matrix,
                                           knowledge_spec=spec, graph_scores=graph_scores, seed=seed,
                                           progress=progress, **dict(train_kwargs or {}))
                    meta = store.save(name, result.model, item_ids=data.item_ids, dataset=dataset, knowledge=spec,
                                      train_config=result.config, metrics=result.metrics)
                    trained_here.add(name)
                    student, train_metrics = result.model, {**result.metrics, "saved": f"{name} v{meta.version}"}
                else:
                    saved = store.load(name)
                    if saved.item_ids != data.item_ids:
                        raise InvalidInputError("dataset", f"saved model {name} was trained on other items than "
                                                           f"{dataset} in {data_dir}")
                    student = saved.model
                    train_metrics = {**saved.meta.metrics, "saved": f"{name} v{saved.meta.version}"}
                runs.append(model_metrics(student, sequences))
                timings.append(train_metrics)
            label = f"{model_name} + {spec} knowledge" if spec != "none" else f"{model_name} (ID only)"
            row = {"row": label, "model": model_name, "knowledge": spec, **summarise(runs),
                   "per_seed": [{k: round(v, 4) for k, v in r.items()} for r in runs], "train_metrics": timings}
            logger.info("%s: %s", label, {k: row[k] for k in METRICS})
            rows.append(row)
    rows.extend(not_run)
    if {"teachers", "distilled"} & set(sections):
        rows.extend(distillation_rows(
            data=data, sequences=sequences, dataset=dataset, seeds=seeds, students=students, store=store,
            train=train, train_missing=train_missing, sections=sections, plans=distill_plans, graph=graph,
            train_kwargs=train_kwargs, teacher_kwargs=teacher_kwargs, cache_dir=cache_dir, settings=settings,
            progress=progress, seed_users=seed_users, teachers=teachers))
    protocol = {"dataset": dataset, "split": split, "users": len(sequences.users), "items": data.n_items,
                "ranking": PROTOCOL, "seeds": list(seeds), "trained_here": train,
                "train_data": "train file only; early stopping on a train-only holdout (last train item of 10% of "
                              "users), never on valid",
                "train_kwargs": dict(train_kwargs or {}), "seconds": round(time.monotonic() - started, 1)}
    return {"protocol": protocol, "rows": rows}


def without_graph_score(spec: str) -> str:
    """``spec`` without its ``graph-score:<set>`` part (``none`` when nothing is left)."""
    return "+".join(p for p in spec.split("+") if not p.startswith("graph-score:")) or "none"


def _fusable(store, name: str, base_name: str, *, train: bool, train_missing: bool, trained_here: set[str]) -> bool:
    """Whether ``name`` is to be made now and can be made from ``base_name`` (its network without the
    graph-score part): with ``train``, only a base trained by this same call; otherwise any saved one."""
    if base_name == name or not (train or (train_missing and not store.versions(name))):
        return False
    return base_name in trained_here or (not train and bool(store.versions(base_name)))


def fuse_saved(store, base_name: str, name: str, spec: str, data, dataset: str, *, settings=None,
               stored_spec: str | None = None):
    """The saved student ``base_name`` (the same student, seed and data without the graph-score part)
    plus the graph-score term of ``spec``, saved as ``name``: exactly what training ``name`` would give
    (the term is late fusion, :func:`recommender.models.base.with_graph_score`), without training
    it twice. Returns ``(model, metrics)``."""
    from .knowledge import build_graph_scores
    from .models.base import with_graph_score

    base = store.load(base_name)
    if base.item_ids != data.item_ids:
        raise InvalidInputError("dataset", f"saved model {base_name} was trained on other items than {dataset}")
    model = with_graph_score(base.model, torch.from_numpy(build_graph_scores(spec, data, settings=settings)))
    network = f"{base_name} v{base.meta.version}"
    config = {**base.meta.train_config, "knowledge": spec, "graph_score_dim": model.graph_score_dim,
              "graph_score": "late fusion: the network of " + network + ", added at weight "
                             f"{float(model.graph_score_weight)}", "network_from": network}
    meta = store.save(name, model, item_ids=data.item_ids, dataset=dataset, knowledge=stored_spec or spec,
                      train_config=config, metrics=base.meta.metrics)
    return model, {**base.meta.metrics, "saved": f"{name} v{meta.version}", "network_from": network}


def _graph_set_saved(settings, dataset: str) -> bool:
    from gnn.store import EmbeddingStore

    return bool(EmbeddingStore(settings).versions(GRAPH_SET.format(dataset=dataset)))


def _train_graph_set(settings, dataset: str, data_dir: Path | str, progress) -> None:
    """The graph rows' embedding set, as ``kgforge embed finetune --dataset <dataset>`` makes it
    (LightGCN from scratch, early-stopped on a train-only holdout; train interactions only)."""
    from gnn.workflows import finetune_target
    from kg_builder.settings import get_settings

    if progress:
        progress({"event": "row", "model": GRAPH_SET.format(dataset=dataset)})
    finetune_target(settings or get_settings(), dataset=dataset, data_dir=data_dir)


def _graph_not_run(label: str, dataset: str) -> dict[str, Any]:
    graph_set = GRAPH_SET.format(dataset=dataset)
    return {"row": label, "status": "not run",
            "note": f"no embedding set {graph_set!r}: run `kgforge embed finetune --dataset {dataset}` first"}


def _row_metrics(model, sequences) -> dict[str, float]:
    return {k: round(v, 4) for k, v in model_metrics(model, sequences).items()}


def load_or_train_teacher(*, data, dataset: str, store, train: bool, train_missing: bool,
                          teacher_kwargs: dict[str, Any] | None = None, progress=None):
    """The saved text teacher ``text-teacher-<dataset>-s0`` (trained and saved first when asked)."""
    from .teachers.text_teacher import train_text_teacher

    name = saved_name(TEACHER, "minilm", dataset, TEACHER_SEED)
    if train or (train_missing and not store.versions(name)):
        if progress:
            progress({"event": "row", "model": name})
        result = train_text_teacher(data=data, seed=TEACHER_SEED, progress=progress, **dict(teacher_kwargs or {}))
        meta = store.save(name, result.model, item_ids=data.item_ids, dataset=dataset, knowledge="none",
                          train_config=result.config, metrics=result.metrics)
        return result.model, {**result.metrics, "saved": f"{name} v{meta.version}"}, name
    saved = store.load(name)
    if saved.item_ids != data.item_ids:
        raise InvalidInputError("dataset", f"saved teacher {name} was trained on other items than {dataset}")
    return saved.model, {**saved.meta.metrics, "saved": f"{name} v{saved.meta.version}"}, name


def distillation_rows(*, data, sequences, dataset: str, seeds: Sequence[int], students: Sequence[str], store,
                      train: bool, train_missing: bool, sections: Sequence[str], plans: Sequence[str], graph: bool,
                      train_kwargs, teacher_kwargs, cache_dir, settings, progress, seed_users: int,
                      teachers: Sequence[str] = TEACHERS) -> list[dict[str, Any]]:
    """The teacher rows (text teacher, LLM teacher, seed-user knowledge, the text + graph teacher) and
    the distilled students (each plan of ``plans``, from each teacher of ``teachers``, without and
    with the graph's embedding set when it is saved)."""
    from . import teachers as _registered  # noqa: F401  (registers text-teacher)
    from .distill import distill_student, parse_plan
    from .knowledge import build_graph_scores, build_knowledge_blocks
    from .teachers.graph_teacher import GRAPH_WEIGHT, load_graph_teacher
    from .teachers.seed_users import evaluate_seed_users

    rows: list[dict[str, Any]] = []
    trained_here: set[str] = set()  # store names trained and saved by this call
    teacher, teacher_metrics, teacher_name = load_or_train_teacher(
        data=data, dataset=dataset, store=store, train=train, train_missing=train_missing,
        teacher_kwargs=teacher_kwargs, progress=progress)
    if "teachers" in sections:
        rows.append({"row": "text teacher (MiniLM fine-tuned, text only)", "model": TEACHER,
                     **_row_metrics(teacher, sequences), "runs": 1, "seeds": [TEACHER_SEED],
                     "train_metrics": [teacher_metrics]})
        rows.append({"row": "LLM teacher (rationales)", "model": "llm-teacher", "status": "not run",
                     "note": "no LLM runs on this machine; tested against the OpenAI-compatible test double only. "
                             "The text teacher stands in for it (DESIGN 4.7)."})
        n_seeds = min(seed_users, len(sequences.users))
        report = evaluate_seed_users(teacher, sequences, n_seeds=n_seeds)
        rows.append({"row": f"text teacher, seed-user knowledge ({report['seeds']} seeds of {report['users']} users)",
                     "model": TEACHER + "+seed-users", **report["seed_propagated"], "runs": 1,
                     "seed_users": report})
    graph_set = GRAPH_SET.format(dataset=dataset)
    unknown = set(teachers) - set(TEACHERS)
    if unknown:
        raise InvalidInputError("teachers", f"unknown teacher(s) {sorted(unknown)}; choose from {', '.join(TEACHERS)}")
    by_kind: dict[str, Any] = {"text": teacher} if "text" in teachers else {}
    if graph and "text+graph" in teachers:
        if _graph_set_saved(settings, dataset):
            by_kind["text+graph"] = load_graph_teacher(teacher, teacher_metrics["saved"], graph_set,
                                                       data, settings=settings)
            if "teachers" in sections:
                rows.append({"row": "text + graph teacher (text teacher's score + the graph set's, weight "
                                    f"{GRAPH_WEIGHT})", "model": "text+graph-teacher",
                             **_row_metrics(by_kind["text+graph"], sequences), "runs": 1, "seeds": [TEACHER_SEED],
                             "teacher": by_kind["text+graph"].describe()})
        else:
            rows.append(_graph_not_run("text + graph teacher", dataset))
    if "distilled" not in sections:
        return rows
    variants = [(DISTILL_KNOWLEDGE, False)]
    if graph:
        variants.append((f"{DISTILL_KNOWLEDGE}+graph:{graph_set}", True))
        variants.append((f"{DISTILL_KNOWLEDGE}+graph:{graph_set}+graph-score:{graph_set}", True))
    runs_of = [(model_name, plan, kind) for model_name in students for plan in plans for kind in by_kind
               if kind == "text" or parse_plan(plan) & {"dllm2rec", "slmrec"}]
    for model_name, plan, kind in runs_of:
        parts = parse_plan(plan)
        teacher_model = by_kind[kind]
        for spec, with_graph in variants:
            full_spec = f"{spec}+teacher:{teacher_name}" if "kar" in parts else spec
            label = f"{model_name} + {plan}" + (" + graph" if with_graph else "")
            label += " + graph score" if "graph-score:" in spec else ""
            label += " (text + graph teacher)" if kind == "text+graph" else ""
            runs, timings = [], []
            try:
                for seed in seeds:
                    name = distilled_name(model_name, plan, full_spec, dataset, seed, graph_teacher=kind == "text+graph")
                    base_name = distilled_name(model_name, plan, without_graph_score(full_spec), dataset, seed,
                                               graph_teacher=kind == "text+graph")
                    stored_spec = f"kar({full_spec})" if "kar" in parts else full_spec
                    fused = None
                    if _fusable(store, name, base_name, train=train, train_missing=train_missing,
                                trained_here=trained_here):
                        fused = fuse_saved(store, base_name, name, full_spec, data, dataset, settings=settings,
                                           stored_spec=stored_spec)
                    if fused is not None:
                        student, metrics = fused
                    elif train or (train_missing and not store.versions(name)):
                        blocks = build_knowledge_blocks(full_spec, data, cache_dir=cache_dir, settings=settings)
                        if progress:
                            progress({"event": "row", "model": name})
                        result = distill_student(data=data, model=model_name, teacher=teacher_model, method=plan,
                                                 knowledge_blocks=blocks, knowledge_spec=full_spec, seed=seed,
                                                 graph_scores=build_graph_scores(full_spec, data, settings=settings),
                                                 progress=progress, **dict(train_kwargs or {}))
                        meta = store.save(name, result.model, item_ids=data.item_ids, dataset=dataset,
                                          knowledge=stored_spec, train_config=result.config,
                                          metrics=result.metrics)
                        trained_here.add(name)
                        student, metrics = result.model, {**result.metrics, "saved": f"{name} v{meta.version}"}
                    else:
                        saved = store.load(name)
                        student, metrics = saved.model, {**saved.meta.metrics,
                                                         "saved": f"{name} v{saved.meta.version}"}
                    runs.append(model_metrics(student, sequences))
                    timings.append(metrics)
            except Exception as e:  # noqa: BLE001 - only the missing graph set is turned into a row
                from gnn.store import EmbeddingSetNotFoundError

                if with_graph and isinstance(e, EmbeddingSetNotFoundError):
                    rows.append({**_graph_not_run(label, dataset), "model": model_name, "method": plan,
                                 "knowledge": full_spec})
                    continue
                raise
            row = {"row": label, "model": model_name, "method": plan, "knowledge": full_spec,
                   "teacher": teacher_name if kind == "text" else teacher_model.describe(),
                   **summarise(runs), "per_seed": [{k: round(v, 4) for k, v in r.items()} for r in runs],
                   "train_metrics": timings}
            logger.info("%s: %s", label, {k: row[k] for k in METRICS})
            rows.append(row)
    return rows


__all__ = ["DISTILL_PLANS", "KNOWLEDGE", "SECTIONS", "STUDENTS", "TEACHERS", "distillation_rows", "distilled_name",
           "evaluate_table",
           "load_or_train_teacher", "saved_name"]
