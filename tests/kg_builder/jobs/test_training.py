"""The training-kind registry and the runner: parameter validation naming the field, events of the real
training functions folded into progress, throttled writes, cancellation and lease loss stopping a run,
failures stored with their reason. (The API is tested in tests/api/test_training.py, the Celery task
with a real worker in tests/workers/test_training_task.py.)"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from kg_builder.datasets import load_dataset
from kg_builder.datasets.records import Dataset, InteractionRecord, ItemRecord
from kg_builder.errors import DatabaseUnavailableError, InvalidInputError
from kg_builder.jobs import JobStatus
from kg_builder.jobs.training import (
    ProgressReporter,
    TrainingCancelled,
    TrainingKind,
    TrainingLeaseLost,
    adapt_event,
    get_kind,
    register_kind,
    run_training,
    unregister_kind,
    validate_submission,
)
from kg_builder.jobs.training_store import TrainingStore
from kg_builder.settings import Settings


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = 2


@pytest.fixture
def kinds():
    """Register test kinds for one test (removed afterwards)."""
    names = []

    def add(name: str, run, **options: Any) -> TrainingKind:
        names.append(name)
        return register_kind(TrainingKind(name, options.pop("params", NoParams), run, "test", **options),
                             replace=True)

    yield add
    for name in names:
        unregister_kind(name)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", data_dir=tmp_path / "data", jobs_db=tmp_path / "jobs.sqlite3")


def test_the_builtin_kinds_are_registered_and_a_miss_lists_them():
    for name in ("embed_pretrain", "embed_finetune", "rec_train"):
        assert get_kind(name).name == name
    with pytest.raises(InvalidInputError) as error:
        get_kind("embed_everything")
    assert error.value.field == "kind" and "embed_finetune, embed_pretrain, rec_train" in error.value.reason


def test_validation_names_the_parameter(settings):
    with pytest.raises(InvalidInputError) as error:
        validate_submission(settings, "rec_train", {"epochs": 0})
    assert error.value.field == "params.epochs"
    with pytest.raises(InvalidInputError) as error:
        validate_submission(settings, "embed_finetune", {"dataset": "umls"})
    assert error.value.field == "params.dataset" and "amazon18_scientific" in error.value.reason
    _, params = validate_submission(settings, "rec_train", {"dataset": "ml_latest_small", "model": "GRU4Rec"})
    assert params.model == "gru4rec" and params.knowledge == "none"


def test_events_of_the_training_functions_become_progress_fields():
    # gnn.train's per-batch event, and the workflows' stage events.
    fields, batch = adapt_event({"stage": "finetune", "epoch": 2, "batch": 40, "batches_per_epoch": 30,
                                 "loss": 3.5, "elapsed_s": 1.2})
    assert batch and fields == {"stage": "finetune", "epoch": 2, "loss": 3.5}
    fields, batch = adapt_event({"stage": "export", "datasets": ["amazon18_games", "amazon14_office"]})
    assert not batch and fields == {"stage": "export", "message": "loading amazon18_games, amazon14_office"}
    # The recommender's batch and epoch events.
    fields, batch = adapt_event({"event": "batch", "epoch": 1, "epochs": 12, "batch": 3, "batches": 40, "loss": 7.0})
    assert batch and fields == {"stage": "train", "epoch": 1, "loss": 7.0, "total_batches": 480}
    fields, batch = adapt_event({"event": "epoch", "epoch": 1, "loss": 6.9, "seconds": 8.0,
                                 "holdout_ndcg@10": 0.04, "epochs": 12})
    assert not batch and fields == {"stage": "train", "epoch": 1, "validation": {"holdout_ndcg@10": 0.04}}


def test_progress_is_throttled_but_every_stage_change_is_written(tmp_path):
    runs = TrainingStore(tmp_path / "jobs.sqlite3")
    run = runs.create("embed_pretrain", {})
    runs.claim(run.id, "h:1:t")
    report = ProgressReporter(runs, run.id, "h:1:t", interval_s=3600, budget=30)
    report({"stage": "export", "datasets": ["a"]})
    for i in range(30):
        report({"stage": "pretrain", "batch": i + 1, "loss": 5.0 - i / 10})
    assert report.writes == 2  # export, then the first pretrain batch; the 29 others were throttled
    assert runs.get(run.id).progress.batch == 1
    report({"stage": "save"})
    shown = runs.get(run.id).progress
    assert report.writes == 3
    assert (shown.stage, shown.batch, shown.total_batches, shown.loss) == ("save", 30, 30, pytest.approx(2.1))
    assert shown.message is None  # the export message ended with its stage

    every = ProgressReporter(runs, run.id, "h:1:t", interval_s=0)
    for i in range(5):
        every({"stage": "finetune", "loss": 1.0})
    assert every.writes == 5 and runs.get(run.id).progress.batch == 5


def test_a_cancel_request_or_a_lost_lease_stops_at_the_next_write(tmp_path):
    runs = TrainingStore(tmp_path / "jobs.sqlite3")
    run = runs.create("embed_pretrain", {})
    runs.claim(run.id, "h:1:t")
    report = ProgressReporter(runs, run.id, "h:1:t", interval_s=0)
    report({"stage": "pretrain", "loss": 1.0})
    runs.request_cancel(run.id)
    with pytest.raises(TrainingCancelled):
        report({"stage": "pretrain", "loss": 0.9})
    other = runs.create("embed_pretrain", {})
    runs.claim(other.id, "h:1:t")
    stale = ProgressReporter(runs, other.id, "h:1:old-owner", interval_s=0)
    with pytest.raises(TrainingLeaseLost):
        stale({"stage": "pretrain", "loss": 1.0})


def test_a_failing_kind_fails_the_run_with_its_reason(settings, kinds):
    kinds("missing_data", lambda s, p, progress: load_dataset("ml_latest_small", s.data_dir))
    kinds("boom", lambda s, p, progress: {}["nothing"])
    runs = TrainingStore.from_settings(settings)
    run = run_training(runs.create("missing_data", {}).id, settings, store=runs)
    assert run.status is JobStatus.failed and run.error.startswith("DatasetError:")
    assert str(settings.data_dir) in run.error and run.owner is None
    run = run_training(runs.create("boom", {}).id, settings, store=runs)
    assert run.status is JobStatus.failed and run.error == "the training function failed (KeyError): 'nothing'"
    # A kind that no longer accepts the stored parameters fails at start, naming them.
    run = run_training(runs.create("boom", {"epochs": "many"}).id, settings, store=runs)
    assert run.status is JobStatus.failed and "cannot start" in run.error and "epochs" in run.error


def test_a_transient_error_releases_the_lease_for_the_retry(settings, kinds):
    def flaky(s, p, progress):
        raise DatabaseUnavailableError("graph database unavailable: connection refused")

    kinds("flaky", flaky)
    runs = TrainingStore.from_settings(settings)
    run_id = runs.create("flaky", {}).id
    with pytest.raises(DatabaseUnavailableError):
        run_training(run_id, settings, store=runs, owner="h:1:t")
    assert runs.get(run_id).owner is None
    assert runs.claim(run_id, "h:1:t2").claimed  # the retry starts at once, no worker death counted
    assert runs.get(run_id).worker_deaths == 0


def _sequences(users: int = 80, items: int = 30) -> Dataset:
    """Users walk the items in a cycle from random starts (a next-item pattern to learn)."""
    rng = np.random.default_rng(0)
    interactions = []
    for u in range(users):
        start, length = int(rng.integers(items)), int(rng.integers(4, 8))
        for position in range(length):
            interactions.append(InteractionRecord(user=f"u{u}", item=str((start + position) % items),
                                                  split="valid" if position == length - 1 else "train",
                                                  position=position))
    return Dataset(name="cycle", kind="rec", items=[ItemRecord(id=str(i), title=f"item {i}") for i in range(items)],
                   interactions=interactions)


def test_a_recommender_student_reports_batches_epochs_and_holdout_scores(settings, kinds):
    """The real student trainer (recommender.train) through the runner: its batch and epoch events
    become progress with a total of epochs x batches and the holdout score."""
    from recommender.data import RecData, train_sequences_from_dataset
    from recommender.train import train_student

    def student(s, p, progress):
        dataset = _sequences()
        ids = [item.id for item in dataset.items]
        data = RecData(dataset=dataset, item_ids=ids,
                       train=train_sequences_from_dataset(dataset, {i: n for n, i in enumerate(ids)}))
        result = train_student(data=data, model="gru4rec", epochs=p.epochs, batch_size=16, seed=0,
                               progress=progress, model_kwargs={"hidden_size": 16, "gru_size": 16})
        return {"metrics": result.metrics}

    kinds("tiny_student", student)
    runs = TrainingStore.from_settings(settings)
    run = run_training(runs.create("tiny_student", {"epochs": 2}).id, settings, store=runs, progress_interval_s=0)
    assert run.status is JobStatus.succeeded, run.error
    p = run.progress
    assert p.stage == "train" and p.epoch == 2 and p.total_batches == p.batch and p.batch % 2 == 0
    assert set(p.validation) == {"holdout_ndcg@10"} and run.result["metrics"]["epochs_run"] == 2


def test_the_final_progress_shows_the_scores_of_the_result(settings, kinds):
    """gnn.train reports its holdout score only in the metrics: the final progress carries it."""
    def trained(s, p, progress):
        progress({"stage": "finetune", "loss": 2.0})
        return {"metrics": {"final_loss": 2.0, "best_validation_ndcg@10": 0.083, "batches": 1}}

    kinds("scored", trained)
    runs = TrainingStore.from_settings(settings)
    run = run_training(runs.create("scored", {}).id, settings, store=runs)
    assert run.status is JobStatus.succeeded and run.progress.validation == {"best_validation_ndcg@10": 0.083}
    assert run.progress.batch == 1 and run.result["metrics"]["batches"] == 1
