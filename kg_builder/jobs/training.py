"""Training runs: the registry of training kinds and the runner the ``kgforge.train`` task calls.

A *kind* (:class:`TrainingKind`) is a name, a pydantic model of its parameters (extra fields
forbidden, bounded budgets, dataset names checked against the registered datasets), an optional
submit-time check (a missing pretrained model is :class:`~kg_builder.models.saved.ModelNotTrainedError`,
409 naming the command that trains it) and the function that trains and saves, called as
``run(settings, params, progress)`` and returning a JSON-able dict (the run's ``result``).
Registries, not if/else: :func:`register_kind` adds one, :func:`get_kind` looks one up and on a
miss lists the valid names.

Built-in kinds (their functions are imported when a run starts, so importing this module pulls in
neither torch nor PyG):

==================  ==========================================================================
``embed_pretrain``  :func:`gnn.workflows.pretrain_sources`: the source domains as one graph;
                    saves the encoder as ``KGFORGE_HOME/models/<name>`` (``kgforge embed pretrain``)
``embed_finetune``  :func:`gnn.workflows.finetune_target`: fine-tune a pretrained encoder (or
                    train from scratch) on a target domain, early-stopped on a train-only
                    holdout; saves the model and the items' embedding set (``kgforge embed finetune``)
``rec_train``       a recommender student (:func:`recommender.train.train_student`) trained on a
                    dataset's train sequences and saved with :class:`recommender.store.RecommenderStore`
                    (what ``kgforge rec train`` does; see :func:`_rec_train`)
==================  ==========================================================================

Datasets are read from the *worker's* ``KGFORGE_DATA_DIR``; a client never names a path. A dataset
that is registered but not on the worker's disk fails the run with the loader's message.

Progress: every event of the training function (``gnn.train``'s per-batch ``{"stage", "batch",
"loss", "elapsed_s", ...}``, the recommender's ``{"event": "batch" | "epoch", ...}``, the workflows'
``{"stage": "export"}`` / ``{"stage": "save"}``) is folded into one :class:`TrainingProgress`
(stage, epoch, batch = batch events counted in the current training stage, total_batches = the
stage's budget, latest loss, latest validation score(s), elapsed seconds since the attempt started,
a message). It is written when the stage changes and otherwise at most every
:data:`PROGRESS_INTERVAL_S` seconds; the final state is written with the result.

Cancellation (``DELETE /v1/training/{id}``): a queued run is cancelled at once; a running one
learns of the request at its next progress write (each write reads the flag in the same
transaction) and stops by raising :class:`TrainingCancelled` from the progress callback, between two
batches; nothing is saved (the kinds save only after training). Stages without batch events (loading
and exporting a dataset) are not interrupted; the run stops at its first batch after them.

Leases: the run is claimed under ``host:pid:task`` (:meth:`TrainingStore.claim`), a heartbeat thread
refreshes the lease every ``lease_s / 4`` seconds (loading a dataset can take minutes without an
event), and a runner that finds its lease taken over stops without writing (:class:`TrainingLeaseLost`).

Failures are stored as the run's ``error``: a :class:`~kg_builder.errors.KGForgeError` with its own
message (``TrainingDivergedError``: "the loss became nan ... Lower the learning rate"; a missing
dataset folder: the path and the setting), any other exception as ``Type: message``. A
``RetryableError`` gives the lease back and is raised for the task to retry.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kg_builder.errors import InvalidInputError, KGForgeError, RetryableError
from kg_builder.settings import Settings

from . import lease
from .training_store import TrainingProgress, TrainingRun, TrainingStore

log = logging.getLogger(__name__)

#: The Celery task that runs a training run (``workers/tasks.py``); JSON argument: the run id.
TASK_TRAIN = "kgforge.train"
#: Progress is written at most this often (seconds), and whenever the stage changes.
PROGRESS_INTERVAL_S = 2.0
#: Budgets a client may ask for: batches per training stage, minutes of wall clock.
MAX_BATCHES = 100_000
MAX_MINUTES = 24 * 60.0
MAX_SEED = 2**31 - 1
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"

Progress = Callable[[dict[str, Any]], None]
Runner = Callable[[Settings, Any, Progress], dict[str, Any]]


class TrainingCancelled(KGForgeError):
    """Raised from the progress callback when the run's cancellation was requested."""


class TrainingLeaseLost(KGForgeError):
    """Raised from the progress callback when another worker took the run over."""


@dataclass(frozen=True)
class TrainingKind:
    """One kind of training run (see the module docstring).

    Attributes:
        name: what clients send as ``kind``.
        params: the pydantic model of the parameters (``extra="forbid"``).
        run: ``run(settings, params, progress) -> dict``: trains, saves, returns the result.
        summary: one line for the API docs and the unknown-kind message.
        check: ``check(settings, params)`` at submit time; raises ``ModelNotTrainedError`` (409) or
            ``InvalidInputError`` (422, field relative to ``params``).
        budget: ``budget(params) -> int | None``: the batch budget of a training stage, shown as
            ``progress.total_batches`` when the events do not carry their own total.
    """

    name: str
    params: type[BaseModel]
    run: Runner
    summary: str
    check: Callable[[Settings, Any], None] | None = None
    budget: Callable[[Any], int | None] | None = None

    def validate(self, params: Mapping[str, Any] | None) -> BaseModel:
        """The validated parameters; a :class:`pydantic.ValidationError` names the bad field."""
        return self.params.model_validate(dict(params or {}))


_KINDS: dict[str, TrainingKind] = {}
KINDS: Mapping[str, TrainingKind] = MappingProxyType(_KINDS)


def register_kind(kind: TrainingKind, *, replace: bool = False) -> TrainingKind:
    """Add ``kind`` to the registry (``replace`` to overwrite a kind of the same name)."""
    if not re.match(r"^[a-z][a-z0-9_]{0,63}$", kind.name):
        raise InvalidInputError("kind", f"{kind.name!r}: kind names are lower-case letters, digits and _")
    if kind.name in _KINDS and not replace and _KINDS[kind.name] is not kind:
        raise InvalidInputError("kind", f"training kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind (tests that register their own)."""
    _KINDS.pop(name, None)


def get_kind(name: str) -> TrainingKind:
    """The kind registered as ``name``; :class:`InvalidInputError` on ``kind`` listing the valid ones."""
    try:
        return _KINDS[name]
    except KeyError:
        raise InvalidInputError("kind", f"unknown training kind {name!r}; choose one of: "
                                        f"{', '.join(sorted(_KINDS))}") from None


# --- parameter models ----------------------------------------------------------------------------

def _workflows() -> Any:
    """:mod:`gnn.workflows`, whose defaults (sources, model, batch budgets) the embed kinds share with the CLI."""
    import gnn.workflows

    return gnn.workflows


def _rec_dataset(name: str) -> str:
    from kg_builder.datasets import DATASETS

    loader = DATASETS.get(name)
    if loader is None or loader.kind != "rec":
        valid = ", ".join(n for n, d in DATASETS.items() if d.kind == "rec")
        raise ValueError(f"unknown recommendation dataset {name!r}; registered: {valid}")
    return name


def _gnn_model(name: str) -> str:
    from gnn.models import MODELS

    if name not in MODELS:
        raise ValueError(f"unknown GNN model {name!r}; choose from {', '.join(sorted(MODELS))}")
    return name


def _check_pretrained(settings: Settings, name: str | None) -> None:
    from kg_builder.models.saved import ModelNotTrainedError, model_dir

    if name is None:
        return
    folder = model_dir(settings, name)
    if not ((folder / "config.json").is_file() and (folder / "model.safetensors").is_file()):
        raise ModelNotTrainedError(
            f"no pretrained model {name!r} in {folder.parent}; train it first with "
            f"`kgforge embed pretrain --name {name}` (or POST /v1/training with kind embed_pretrain and "
            f'"name": "{name}")')


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    max_minutes: float | None = Field(None, gt=0, le=MAX_MINUTES, description="A wall-clock budget as well.")
    seed: int = Field(0, ge=0, le=MAX_SEED)


class EmbedPretrainParams(_Params):
    """``embed_pretrain``: :func:`gnn.workflows.pretrain_sources`."""

    sources: list[str] = Field(default_factory=lambda: list(_workflows().DEFAULT_SOURCES), min_length=1,
                               max_length=8, description="Source domains (registered rec datasets): one graph, one "
                                                         "domain id each (default: Games and Office).")
    model: str = Field(default_factory=lambda: _workflows().DEFAULT_MODEL,
                       description="Encoder (gnn.models): lightgcn (default), hetero_sage, rgcn.")
    objective: str = Field("next_item", pattern="^(next_item|link)$",
                           description="next_item, or link (BPR on sampled subgraphs, for very large graphs).")
    max_batches: int = Field(default_factory=lambda: _workflows().PRETRAIN_BATCHES, ge=1, le=MAX_BATCHES,
                             description="Batches of 1,024 training pairs (default gnn.workflows.PRETRAIN_BATCHES).")
    name: str = Field("gnn-pretrain", pattern=NAME_PATTERN, description="Model folder under KGFORGE_HOME/models.")

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a source domain is listed twice")
        return [_rec_dataset(v) for v in value]

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return _gnn_model(value)


class EmbedFinetuneParams(_Params):
    """``embed_finetune``: :func:`gnn.workflows.finetune_target`."""

    dataset: str = Field("amazon18_scientific", description="The target domain (a registered rec dataset).")
    pretrained: str | None = Field(None, pattern=NAME_PATTERN,
                                   description="A pretrained model (embed_pretrain's name); none: from scratch.")
    model: str = Field(default_factory=lambda: _workflows().DEFAULT_MODEL,
                       description="Encoder when training from scratch (default lightgcn).")
    max_batches: int = Field(default_factory=lambda: _workflows().FINETUNE_BATCHES, ge=1, le=MAX_BATCHES,
                             description="At most this many batches (early stopping usually ends sooner; default "
                                         "gnn.workflows.FINETUNE_BATCHES).")
    early_stopping: bool = Field(True, description="Stop on a train-only holdout (last train item of 20 % of users).")
    name: str | None = Field(None, pattern=NAME_PATTERN, description="Model and embedding-set name "
                                                                     "(default gnn-<dataset>).")
    with_job_edges: bool = Field(False, description="Add the triples jobs wrote on the domain (from the worker's "
                                                    "graph database) as edges weighted by their confidence.")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="With with_job_edges: the lowest confidence "
                                                                   "of a job edge taken.")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        return _rec_dataset(value)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return _gnn_model(value)


class RecTrainParams(_Params):
    """``rec_train``: one recommender student, saved under ``KGFORGE_HOME/recommenders/<name>``."""

    dataset: str = Field("amazon18_scientific", description="A registered rec dataset.")
    model: str = Field("sasrec", description="A registered student (recommender.models): sasrec, gru4rec.")
    knowledge: str = Field("none", max_length=200,
                           description="none, text, text-whitened, graph:<embedding set>[@version], "
                                       "graph-score:<embedding set>[@version], joined by '+'.")
    epochs: int | None = Field(None, ge=1, le=1000, description="Most epochs (early stopping may end sooner).")
    lr: float | None = Field(None, gt=0, le=1.0)
    name: str | None = Field(None, pattern=NAME_PATTERN,
                             description="Store name (default <model>-<knowledge>-<dataset>-s<seed>).")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        return _rec_dataset(value)

    @field_validator("model")
    @classmethod
    def _student(cls, value: str) -> str:
        from recommender.models import names

        if value.lower() not in names():
            raise ValueError(f"unknown recommender {value!r}; choose one of: {', '.join(names())}")
        return value.lower()

    @field_validator("knowledge")
    @classmethod
    def _knowledge(cls, value: str) -> str:
        from recommender.knowledge import parse_spec

        try:
            parse_spec(value)
        except InvalidInputError as e:
            raise ValueError(e.reason) from None
        return value


# --- built-in kinds ------------------------------------------------------------------------------

def _embed_pretrain(settings: Settings, p: EmbedPretrainParams, progress: Progress) -> dict[str, Any]:
    from gnn.workflows import pretrain_sources

    return pretrain_sources(settings, sources=p.sources, model=p.model, objective=p.objective,
                            max_batches=p.max_batches, max_minutes=p.max_minutes, seed=p.seed, name=p.name,
                            progress=progress)


def _embed_finetune(settings: Settings, p: EmbedFinetuneParams, progress: Progress) -> dict[str, Any]:
    from gnn.workflows import finetune_target

    def run(store) -> dict[str, Any]:
        return finetune_target(settings, dataset=p.dataset, pretrained=p.pretrained, model=p.model,
                               max_batches=p.max_batches, max_minutes=p.max_minutes, seed=p.seed, name=p.name,
                               early_stopping=p.early_stopping, progress=progress, store=store,
                               min_confidence=p.min_confidence)

    if not p.with_job_edges:
        return run(None)
    from kg_builder.graphdb import GraphStore

    with GraphStore.from_settings(settings) as store:
        return run(store)


def _rec_train(settings: Settings, p: RecTrainParams, progress: Progress) -> dict[str, Any]:
    """What ``kgforge rec train`` does (``kgforge/cli/rec.py``), from settings. Registration point: when
    :mod:`recommender` gains one function that trains and saves a student from settings, call it here."""
    from recommender.data import load_rec_data
    from recommender.evaluate import saved_name
    from recommender.knowledge import build_graph_scores, build_knowledge
    from recommender.store import RecommenderStore
    from recommender.train import train_student

    name = p.name or saved_name(p.model, p.knowledge, p.dataset, p.seed)
    progress({"stage": "load", "datasets": [p.dataset]})
    data = load_rec_data(p.dataset, settings.data_dir)
    progress({"stage": "knowledge", "message": f"knowledge {p.knowledge}"})
    matrix = build_knowledge(p.knowledge, data, cache_dir=settings.home / "cache" / "title-embeddings",
                             settings=settings)
    options = {k: v for k, v in {"epochs": p.epochs, "lr": p.lr, "max_minutes": p.max_minutes}.items()
               if v is not None}
    result = train_student(data=data, model=p.model, knowledge=matrix, knowledge_spec=p.knowledge, seed=p.seed,
                           graph_scores=build_graph_scores(p.knowledge, data, settings=settings), progress=progress,
                           **options)
    progress({"stage": "save"})
    meta = RecommenderStore(settings).save(name, result.model, item_ids=data.item_ids, dataset=p.dataset,
                                           knowledge=p.knowledge, train_config=result.config, metrics=result.metrics)
    return {"name": name, "version": meta.version, "dataset": p.dataset, "model": p.model,
            "knowledge": p.knowledge, "metrics": result.metrics}


register_kind(TrainingKind(
    "embed_pretrain", EmbedPretrainParams, _embed_pretrain,
    "GNN pretraining across source domains; saves the encoder (kgforge embed pretrain)",
    budget=lambda p: p.max_batches))
register_kind(TrainingKind(
    "embed_finetune", EmbedFinetuneParams, _embed_finetune,
    "GNN fine-tuning (or training from scratch) on a target domain; saves the model and the items' "
    "embedding set (kgforge embed finetune)",
    check=lambda settings, p: _check_pretrained(settings, p.pretrained), budget=lambda p: p.max_batches))
register_kind(TrainingKind(
    "rec_train", RecTrainParams, _rec_train,
    "A recommender student (SASRec/GRU4Rec) on a dataset's train sequences; saves it (kgforge rec train)"))


# --- submit-time validation ----------------------------------------------------------------------

def validate_submission(settings: Settings, kind_name: str, params: Mapping[str, Any] | None) -> tuple[
        TrainingKind, BaseModel]:
    """The kind and its validated parameters, as the API checks them before anything is stored.

    Raises:
        InvalidInputError: unknown ``kind``, or a bad parameter (``field`` is ``params.<name>``).
        ModelNotTrainedError: a model the run needs is not there (the message names the command).
    """
    kind = get_kind(kind_name)
    try:
        parsed = kind.validate(params)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in ("params", *first["loc"]))
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidInputError(where, message) from None
    if kind.check is not None:
        try:
            kind.check(settings, parsed)
        except InvalidInputError as e:
            raise InvalidInputError(f"params.{e.field}", e.reason) from None
    return kind, parsed


# --- the runner ----------------------------------------------------------------------------------

_VALIDATION_KEY = re.compile(r"(ndcg|hr@|recall|mrr|validation)", re.IGNORECASE)


def adapt_event(event: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """A training function's event as :class:`TrainingProgress` fields, and whether it is one batch.

    Understands ``gnn.train``'s ``{"stage", "epoch", "batch", "loss", ...}``, the workflows'
    ``{"stage": "export", "datasets": [...]}``, and the recommender's ``{"event": "batch" | "epoch",
    "epoch", "epochs", "batch", "batches", "loss", "holdout_ndcg@10", ...}``.
    """
    fields: dict[str, Any] = {}
    kind = event.get("event")
    stage = event.get("stage") or ("train" if kind in ("batch", "epoch") else None)
    if stage:
        fields["stage"] = str(stage)
    if isinstance(event.get("epoch"), int):
        fields["epoch"] = event["epoch"]
    is_batch = isinstance(event.get("loss"), (int, float)) and kind != "epoch"
    if is_batch:
        fields["loss"] = float(event["loss"])
    if isinstance(event.get("epochs"), int) and isinstance(event.get("batches"), int):
        fields["total_batches"] = event["epochs"] * event["batches"]
    validation = {k: float(v) for k, v in event.items()
                  if _VALIDATION_KEY.search(k) and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if validation:
        fields["validation"] = validation
    if event.get("datasets"):
        fields["message"] = f"loading {', '.join(map(str, event['datasets']))}"
    elif isinstance(event.get("message"), str):
        fields["message"] = event["message"]
    return fields, is_batch


class ProgressReporter:
    """The ``progress`` callback handed to a kind: folds events into :class:`TrainingProgress` and
    writes it (throttled); raises :class:`TrainingCancelled` / :class:`TrainingLeaseLost` to stop."""

    def __init__(self, store: TrainingStore, run_id: str, owner: str, *, interval_s: float,
                 budget: int | None = None, heartbeat: lease.Heartbeat | None = None):
        self.store, self.run_id, self.owner = store, run_id, owner
        self.interval_s = interval_s
        self.budget = budget
        self.heartbeat = heartbeat
        self.progress = TrainingProgress(elapsed_s=0.0)
        self.writes = 0
        self._start = time.monotonic()
        self._last_write = float("-inf")
        self._batch_stage: str | None = None
        self._batches = 0

    def __call__(self, event: dict[str, Any]) -> None:
        if self.heartbeat is not None and self.heartbeat.lost.is_set():
            raise TrainingLeaseLost(f"training run {self.run_id}: another worker took it over")
        fields, is_batch = adapt_event(event)
        stage_changed = fields.get("stage") is not None and fields["stage"] != self.progress.stage
        update = dict(fields)
        if is_batch:
            stage = fields.get("stage", self.progress.stage)
            if stage != self._batch_stage:  # a new training stage: its own count, budget and scores
                self._batch_stage, self._batches = stage, 0
                update.setdefault("total_batches", self.budget)
                update.setdefault("validation", None)
                update.setdefault("message", None)
            self._batches += 1
            update["batch"] = self._batches
        update["elapsed_s"] = round(time.monotonic() - self._start, 2)
        self.progress = self.progress.model_copy(update=update)
        if stage_changed or time.monotonic() - self._last_write >= self.interval_s:
            self.write()

    def write(self) -> None:
        """Write the current progress now; raise when cancelled or taken over."""
        try:
            ack = self.store.update_progress(self.run_id, self.owner, self.progress)
        except RetryableError as e:  # a locked database must not kill hours of training: next write tries again
            log.warning("training run %s: progress not written (%s)", self.run_id, e)
            return
        self._last_write = time.monotonic()
        self.writes += 1
        if not ack.held:
            raise TrainingLeaseLost(f"training run {self.run_id}: no longer held by {self.owner}")
        if ack.cancel_requested:
            raise TrainingCancelled(f"training run {self.run_id} was cancelled")

    def final(self) -> TrainingProgress:
        return self.progress.model_copy(update={"elapsed_s": round(time.monotonic() - self._start, 2)})


def _with_final_scores(progress: TrainingProgress, result: dict[str, Any]) -> TrainingProgress:
    """The final progress, with the validation scores of the result's metrics when no event carried
    any (``gnn.train`` reports its holdout score only in its metrics: ``best_validation_ndcg@10``)."""
    metrics = result.get("metrics")
    if progress.validation or not isinstance(metrics, dict):
        return progress
    scores = {k: float(v) for k, v in metrics.items()
              if _VALIDATION_KEY.search(k) and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return progress.model_copy(update={"validation": scores}) if scores else progress


def _message(e: BaseException) -> str:
    if isinstance(e, KGForgeError):
        return f"{type(e).__name__}: {e}"
    return f"the training function failed ({type(e).__name__}): {e}"


def run_training(run_id: str, settings: Settings, *, owner: str | None = None, store: TrainingStore | None = None,
                 interrupts: tuple[type[BaseException], ...] = (),
                 progress_interval_s: float | None = None) -> TrainingRun:
    """Claim run ``run_id``, train it with its kind, store the result (or the failure); returns the run.

    A run that cannot be claimed (finished, live lease elsewhere, cancelled while queued) is returned
    untouched. ``interrupts`` (the task's soft time limit) propagate after the lease is released.

    Raises:
        RetryableError: a transient failure (the lease is released first, so the retry claims it).
    """
    store = store or TrainingStore.from_settings(settings)
    owner = owner or lease.make_owner()
    claim = store.claim(run_id, owner)
    if not claim.claimed:
        log.info("training run %s not started: %s", run_id, claim.reason)
        return claim.run
    run = claim.run
    try:
        kind = get_kind(run.kind)
        params = kind.validate(run.params)
    except (InvalidInputError, ValidationError) as e:
        store.fail(run_id, f"cannot start: {e}", owner=owner)
        return store.get(run_id)
    beat = lease.Heartbeat(lambda: store.heartbeat(run_id, owner), store.lease_s / 4, name=f"training-{run_id[:8]}")
    reporter = ProgressReporter(store, run_id, owner, budget=kind.budget(params) if kind.budget else None,
                                interval_s=PROGRESS_INTERVAL_S if progress_interval_s is None else progress_interval_s,
                                heartbeat=beat)
    log.info("training run %s (%s) started by %s", run_id, run.kind, owner)
    with beat:
        try:
            result = kind.run(settings, params, reporter)
        except TrainingCancelled:
            store.finish_cancelled(run_id, owner, reporter.final())
            log.info("training run %s cancelled at %s", run_id, reporter.progress.model_dump(exclude_none=True))
        except TrainingLeaseLost as e:
            log.warning("%s; stopping without writing", e)
        except interrupts:
            store.release(run_id, owner)
            raise
        except RetryableError:
            store.release(run_id, owner)
            raise
        except Exception as e:
            log.exception("training run %s failed", run_id)
            store.fail(run_id, _message(e), owner=owner, progress=reporter.final())
        else:
            if not isinstance(result, dict):
                result = {"value": result}
            store.succeed(run_id, owner, result, _with_final_scores(reporter.final(), result))
            log.info("training run %s succeeded", run_id)
    return store.get(run_id)


__all__ = ["KINDS", "MAX_BATCHES", "MAX_MINUTES", "PROGRESS_INTERVAL_S", "TASK_TRAIN", "EmbedFinetuneParams",
           "EmbedPretrainParams", "ProgressReporter", "RecTrainParams", "TrainingCancelled", "TrainingKind",
           "TrainingLeaseLost", "adapt_event", "get_kind", "register_kind", "run_training", "unregister_kind",
           "validate_submission"]
