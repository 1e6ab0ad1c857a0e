"""run_job: one entity job from the job store through the knowledge pipeline into the graph.

A job of another kind (``c2c``, ``titles``: :mod:`kg_builder.jobs.kinds`) runs its own work on each
entity under the same rules below (lease, batches, cancellation, replay, failures per entity).

This is the whole body of the ``kgforge.run_job`` Celery task (``workers/tasks.py`` only calls it),
so it can also run in-process (tests, a debugger, a one-off script)::

    from kg_builder.jobs import run_job
    job = run_job(job_id, get_settings())   # the finished Job

What it guarantees:

* **Never on untrained weights.** The domain's models are loaded before anything else; a missing
  one fails the job at once, with the message naming the ``kgforge train ...`` command.
* **Replayable.** The snapshot is read with ``exclude_job=job_id`` and written with
  ``update_snapshot=False``, so every entity's result depends only on the graph before the job. An
  entity is marked done only after its batch is written; a task that is redelivered after a crash
  (``acks_late``) skips the done entities and replays the interrupted batch, whose writes MERGE
  onto what the first attempt wrote. The job store counts a replayed batch once.
* **Bad input stays per entity.** An entity the pipeline rejects (``InvalidInputError``, a
  non-transient LLM error, or an unexpected exception, logged with its traceback) is marked failed
  with the reason; the others continue. A job whose every entity failed ends ``failed``.
* **Transient errors propagate.** ``RetryableError`` (graph database unavailable, LLM
  unavailable, job database locked) leaves the job as it is and is raised to the caller, which
  retries (the Celery task, with backoff); done entities are not redone.
* **Cancellation** is checked between batches.
* **One runner per job.** The attempt starts with :meth:`JobStore.claim` under a lease (``owner``:
  host, pid, task id) that a heartbeat thread refreshes every ``job_lease_s / 4`` seconds. A second
  delivery of the task while the lease is alive elsewhere returns the job without touching it; a
  runner whose lease was taken over stops before its next batch. A takeover from a dead worker
  counts a worker death; past ``KGFORGE_TASK_MAX_DELIVERIES`` the job fails naming the reason.
* **LLM usage** (prompt/completion tokens, calls) is read from the LLM's
  :class:`~kg_builder.llm.base.UsageMeter` after every batch and added to the job.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

from kg_builder.errors import InvalidInputError, KGForgeError, RetryableError
from kg_builder.llm.base import LLM, LLMError
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.saved import ModelNotTrainedError, models_dir
from kg_builder.pipeline import GraphSnapshot, KnowledgePipeline, PipelineModels, PipelineOptions, WriteReport
from kg_builder.pipeline.pipeline import EntityRun
from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore

from .lease import Heartbeat, make_owner
from .models import Job, JobUsage
from .job_store import BatchCounts, EntityOutcome, JobNotFoundError, JobStore

log = logging.getLogger(__name__)

_CACHE_SIZE = 2
_models_cache: OrderedDict[tuple, PipelineModels] = OrderedDict()
_encoders: dict[str, TextEncoder] = {}
_cache_lock = threading.Lock()


def _fingerprint(settings: Settings, domain: str) -> tuple:
    """Modification times of the domain's model folders and their files: retraining (or posting
    documents, which swaps the retriever folder) changes it, so a cached model set is reloaded."""
    root = models_dir(settings)
    if not root.is_dir():
        return ()
    marks = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and (folder.name.endswith(f"-{domain}") or f"-{domain}-" in folder.name):
            children = [folder, *folder.iterdir()]
            marks.append((folder.name, max(p.stat().st_mtime_ns for p in children)))
    return tuple(marks)


def load_models(settings: Settings, domain: str, options: PipelineOptions) -> PipelineModels:
    """:meth:`PipelineModels.load`, cached per process for the last few (domain, needs) pairs.

    A worker process runs many jobs; loading MiniLM, the cross-encoder and the retriever costs
    seconds, so they are kept while their folders are unchanged. Raises ModelNotTrainedError.
    """
    key = (
        str(settings.home),
        domain,
        "graph" in options.generators,
        "dense" in options.generators,
        options.use_reranker,
        _fingerprint(settings, domain),
    )
    with _cache_lock:
        if key in _models_cache:
            _models_cache.move_to_end(key)
            return _models_cache[key]
        encoder_key = str(settings.encoder_path)
        if encoder_key not in _encoders:
            _encoders[encoder_key] = TextEncoder(settings.encoder_path)
        models = PipelineModels.load(settings, domain, options, encoder=_encoders[encoder_key])
        _models_cache[key] = models
        while len(_models_cache) > _CACHE_SIZE:
            _models_cache.popitem(last=False)
        return models


def _batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _entity_error(e: Exception) -> str:
    if isinstance(e, InvalidInputError):
        return f"invalid input: {e.field}: {e.reason}"
    if isinstance(e, LLMError):
        return f"LLM error: {e}"
    return f"internal error ({type(e).__name__}): {e}"


def _source_node(store: GraphStore, snapshot: GraphSnapshot, run: EntityRun) -> str | None:
    """The graph node of S after the write (a new S is created only when it has kept triples)."""
    if run.entity.id in snapshot.entities:
        return run.entity.id
    if not run.kept:
        return None
    found = store.find_nodes_by_name(run.entity.name, limit=1)
    return found[0].id if found else run.entity.id


def run_job(
    job_id: str,
    settings: Settings,
    *,
    store: GraphStore | None = None,
    llm: LLM | None = None,
    jobs: JobStore | None = None,
    models: PipelineModels | None = None,
    owner: str | None = None,
    interrupts: tuple[type[BaseException], ...] = (),
) -> Job:
    """Run (or resume) job ``job_id`` to the end and return it as the job store now holds it.

    Args:
        job_id: a job created by :meth:`JobStore.create`.
        settings: where the job store, the models, the graph and the LLM are.
        store: the graph (default: one opened from ``settings`` and closed at the end).
        llm: the LLM (default: :func:`llm_from_settings`, None in offline mode; ignored when the
            job's options say ``use_llm: false``).
        jobs: the job store (default: ``settings.jobs_db_path``).
        models: the domain's models (default: loaded from ``KGFORGE_HOME/models``, cached).
        owner: who runs it, ``host:pid:task`` (default: this process with a random task id).
        interrupts: exceptions that stop the run without failing the job (re-raised as they are;
            the Celery task passes its soft time limit and fails the job with its own message).

    Returns:
        The job, finished (succeeded / failed / cancelled); a job that was already finished, or
        whose lease is alive elsewhere, is returned unchanged.

    Raises:
        RetryableError: a transient failure; the job stays resumable and the caller retries.
        JobNotFoundError: no such job.
    """
    jobs = jobs or JobStore.from_settings(settings)
    job = jobs.get(job_id, entities=False)
    if job is None:
        raise JobNotFoundError(f"no job {job_id!r} in {jobs.path}")
    if job.status.terminal:
        log.info("job %s is already %s; nothing to do", job_id, job.status.value)
        return job
    submission = jobs.submission(job_id)
    options = submission.options
    plan_notes: list[str] = []
    try:
        if submission.kind == "entities":
            # Default generators: those trained for the domain; each entity's notes name the skipped ones.
            options, plan_notes = options.resolve_generators(
                settings, submission.domain, llm_configured=bool(settings.llm_base_url) or llm is not None)
            models = models or load_models(settings, submission.domain, options)
        elif submission.kind == "c2c":
            from kg_builder.products.c2c_model import C2CModel, default_model_name

            C2CModel.load(default_model_name(submission.domain), settings=settings)  # fail now, naming the command
    except ModelNotTrainedError as e:
        jobs.fail(job_id, f"a model this job needs is not trained for domain {submission.domain!r}: {e}")
        return _final(jobs, job_id)
    owner = owner or make_owner()
    claim = jobs.claim(job_id, owner)
    if not claim.claimed:
        log.info("job %s not run by %s: %s", job_id, owner, claim.reason)
        return claim.job
    heartbeat = Heartbeat(lambda: jobs.heartbeat(job_id, owner), jobs.lease_s / 4, name=f"heartbeat-{job_id}")
    heartbeat.start()

    own_store, own_llm, finished = store is None, False, False
    try:
        store = store or GraphStore.from_settings(settings)
        if llm is None and options.use_llm:
            from kg_builder.llm.openai_compat import llm_from_settings

            llm = llm_from_settings(settings)
            own_llm = llm is not None
        snapshot = GraphSnapshot.from_store(store, submission.domain, exclude_job=job_id, settings=settings)
        if submission.kind == "entities":
            pipeline = KnowledgePipeline(snapshot, models, options, llm)
            work = None
        else:
            from .kinds import kind_work

            work = kind_work(submission.kind, settings, store, snapshot, llm, job_id, options)
        meter = getattr(llm, "meter", None) if llm is not None else None
        for batch in _batches(jobs.pending_entities(job_id), settings.job_batch_size):
            if heartbeat.lost.is_set():
                log.warning("job %s: %s lost its lease (another worker took the job over); stopping", job_id, owner)
                finished = True
                return _final(jobs, job_id)
            if jobs.is_cancelled(job_id):
                jobs.cancel(job_id)
                log.info("job %s cancelled between batches", job_id)
                finished = True
                return _final(jobs, job_id)
            before = _usage(meter)
            try:
                if work is None:
                    _run_batch(job_id, batch, pipeline, snapshot, store, jobs, plan_notes, interrupts)
                else:
                    from .kinds import run_kind_batch

                    outcomes, counts = run_kind_batch(work, batch, interrupts=interrupts)
                    jobs.record_batch(job_id, outcomes, counts)
            finally:
                _record_usage(jobs, job_id, before, _usage(meter))
        finished = True
        if heartbeat.lost.is_set():  # the new owner finishes it
            return _final(jobs, job_id)
        return jobs.finish(job_id)
    except RetryableError:
        raise
    except interrupts:
        raise
    except KGForgeError as e:  # invalid options for this graph, a database refusal, a broken model
        jobs.fail(job_id, str(e))
        finished = True
        return _final(jobs, job_id)
    except Exception as e:
        log.exception("job %s failed with an unexpected error", job_id)
        jobs.fail(job_id, f"internal error ({type(e).__name__}): {e}")
        finished = True
        raise
    finally:
        heartbeat.stop()
        if not finished:  # interrupted (transient error, time limit): the next delivery resumes at once
            try:
                jobs.release(job_id, owner)
            except Exception:
                log.warning("job %s: could not release the lease of %s; it expires in %.0f s", job_id, owner,
                            jobs.lease_s, exc_info=True)
        if own_store and store is not None:
            store.close()
        if own_llm:
            llm.close()


def _usage(meter) -> tuple[int, int, int]:
    if meter is None:
        return (0, 0, 0)
    usage = meter.usage
    return (usage.prompt_tokens, usage.completion_tokens, meter.requests)


def _record_usage(jobs: JobStore, job_id: str, before: tuple[int, int, int], after: tuple[int, int, int]) -> None:
    prompt, completion, calls = (a - b for a, b in zip(after, before, strict=True))
    if prompt or completion or calls:
        try:
            jobs.add_usage(job_id, JobUsage(prompt_tokens=prompt, completion_tokens=completion,
                                            total_tokens=prompt + completion, calls=calls))
        except Exception:  # accounting must not fail the batch; the tokens are in the worker log
            log.warning("job %s: could not record LLM usage (%d prompt, %d completion tokens, %d calls)", job_id,
                        prompt, completion, calls, exc_info=True)


def _run_batch(
    job_id: str,
    batch: Sequence,
    pipeline: KnowledgePipeline,
    snapshot: GraphSnapshot,
    store: GraphStore,
    jobs: JobStore,
    plan_notes: Sequence[str] = (),
    interrupts: tuple[type[BaseException], ...] = (),
) -> None:
    runs: list[tuple[int, EntityRun]] = []
    outcomes: list[EntityOutcome] = []
    for position, entity in batch:
        try:
            run = pipeline.run(entity)
        except (RetryableError, *interrupts):  # the job's business, not this entity's
            raise
        except Exception as e:
            if not isinstance(e, (InvalidInputError, LLMError)):
                log.exception("job %s: entity %d (%r) failed", job_id, position, entity.name)
            else:
                log.warning("job %s: entity %d (%r) failed: %s", job_id, position, entity.name, e)
            outcomes.append(EntityOutcome(position, error=_entity_error(e)))
            continue
        runs.append((position, run))
        jobs.entity_running(job_id, position)
    report = (
        pipeline.write(store, [r for _, r in runs], job_id=job_id, update_snapshot=False)
        if runs
        else WriteReport()
    )
    catalogue = report.not_in_catalogue > 0
    for position, run in runs:
        unresolved = sum(1 for c in run.kept if c.target_id is None) if catalogue else 0
        outcomes.append(
            EntityOutcome(
                position,
                node_id=_source_node(store, snapshot, run),
                generated=len(run.candidates),
                kept=len(run.kept) - unresolved,
                notes=[*plan_notes, *run.errors] + ([f"{unresolved} kept target name(s) matched no catalogue node "
                                                      "and were not written"] if unresolved else []),
            )
        )
    jobs.record_batch(
        job_id,
        sorted(outcomes, key=lambda o: o.position),
        BatchCounts(new=report.new_nodes, merged=report.merged, triples_written=report.triples_written),
    )


def _final(jobs: JobStore, job_id: str) -> Job:
    job = jobs.get(job_id, entities=False)
    assert job is not None
    return job


__all__ = ["load_models", "run_job"]
