"""``kgforge generate``, ``kgforge train confidence`` and ``kgforge eval generation``: the knowledge
pipeline from the command line (:mod:`kg_builder.pipeline`)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kgforge.cli.common import (
    DataDirOption,
    JsonOption,
    console,
    err_console,
    handle_errors,
    load_settings,
    print_json,
    resolve_data_dir,
    step_progress,
)

GeneratorOption = typer.Option(None, "--generator", help="Generators to use (repeat): graph, dense, corpus, llm. "
                                                         "Default: all (llm only when an LLM is configured).")


def _options(generators: list[str] | None, **values: Any):  # -> PipelineOptions
    from kg_builder.pipeline import PipelineOptions

    fields = {k: v for k, v in values.items() if v is not None}
    if generators:
        fields["generators"] = generators
    return PipelineOptions(**fields)


@handle_errors
def generate_command(
    entity: str = typer.Option(..., "--entity", help="The source entity's name."),
    dataset: str = typer.Option(..., "--dataset", help="The domain whose trained models apply (umls, wn18rr, ...)."),
    entity_type: str | None = typer.Option(None, "--type", help="The entity's type, when known."),
    description: str | None = typer.Option(None, "--description", help="A text about the entity."),
    generators: list[str] | None = GeneratorOption,
    use_llm: bool = typer.Option(True, "--llm/--no-llm", help="Use the configured LLM (KGFORGE_LLM_BASE_URL)."),
    target_precision: float | None = typer.Option(
        None, "--target-precision", help="Keep what clears the confidence floor that reached this precision on dev "
                                         "(default: KGFORGE_KEEP_TARGET_PRECISION, 0.7)."),
    min_confidence: float | None = typer.Option(None, "--min-confidence", help="An explicit confidence floor."),
    max_per_entity: int | None = typer.Option(None, "--max-per-entity", help="At most this many triples (default 10)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the kept triples without writing them."),
    json_out: bool = JsonOption,
) -> None:
    """Run the pipeline on one entity against the graph, write the kept triples, print them."""
    from kg_builder.llm.openai_compat import llm_from_settings
    from kg_builder.pipeline import GraphSnapshot, KnowledgePipeline, PipelineModels, SourceEntity
    from kg_builder.graphdb import GraphStore

    settings = load_settings()
    source = SourceEntity(name=entity, type=entity_type, description=description)
    options = _options(generators, use_llm=use_llm, target_precision=target_precision,
                       min_confidence=min_confidence, max_per_entity=max_per_entity)
    llm = llm_from_settings(settings) if use_llm else None
    options, notes = options.resolve_generators(settings, dataset, llm_configured=llm is not None)
    with err_console.status(f"loading the {dataset} models ..."):
        models = PipelineModels.load(settings, dataset, options)
    job_id = f"cli-{uuid.uuid4().hex[:12]}"
    with GraphStore.from_settings(settings) as store:
        with err_console.status("reading the graph ..."):
            snapshot = GraphSnapshot.from_store(store, dataset, settings=settings)
        pipeline = KnowledgePipeline(snapshot, models, options, llm)
        with err_console.status(f"generating knowledge about {source.name!r} ..."):
            run = pipeline.run(source)
        report = None if dry_run else pipeline.write(store, [run], job_id=job_id)
    kept = sorted(run.kept, key=lambda c: -(c.confidence or 0.0))
    if json_out:
        print_json({"entity": run.entity.id, "name": run.entity.name, "job_id": None if dry_run else job_id,
                    "mode": "llm" if llm else "offline", "relations": [c.relation for c in run.relations.kept],
                    "relations_filtered_by": run.relations.filtered_by, "candidates": len(run.candidates),
                    "kept": [c.model_dump(exclude={"features"}) for c in kept],
                    "write": report.model_dump() if report else None, "notes": notes + run.errors,
                    "timings": run.timings})
        return
    table = Table(title=f"{run.entity.name} ({run.entity.id}): {len(kept)} kept of {len(run.candidates)} candidates, "
                        f"{'LLM' if llm else 'offline'} mode")
    for column in ("relation", "target", "confidence", "reranker", "generators", "evidence"):
        # Whole names: columns wrap, never cut.
        table.add_column(column, justify="right" if column in ("confidence", "reranker") else "left",
                         overflow="fold", no_wrap=False)
    for c in kept:
        table.add_row(c.relation, c.target_name + ("" if c.target_id else " (new)"),
                      f"{c.confidence:.3f}" if c.confidence is not None else "-",
                      f"{c.reranker_probability:.3f}" if c.reranker_probability is not None else "-",
                      ", ".join(c.generators), ", ".join(c.evidence[:3]) or "-")
    console.print(table)
    console.print(f"relations ({run.relations.filtered_by}): {', '.join(c.relation for c in run.relations.kept)}")
    for note in notes + run.errors:
        err_console.print(f"[yellow]note:[/] {note}")
    if report is not None:
        console.print(f"written: {report.triples_written} triples, {report.new_nodes} new nodes, job {job_id}")
    else:
        console.print("dry run: nothing written")


@handle_errors
def train_confidence_command(
    dataset: str = typer.Option(..., "--dataset", help="A KG dataset with train and dev splits."),
    max_entities: int = typer.Option(60, "--max-entities", min=1, help="Dev heads the pipeline runs on."),
    seed: int = typer.Option(0),
    use_llm: bool = typer.Option(False, "--llm", help="Fit the LLM-mode model: run the configured LLM "
                                                      "(KGFORGE_LLM_BASE_URL) on the dev heads; saved as "
                                                      "confidence-<dataset>-llm."),
    calibration_graph: str = typer.Option(
        "train+dev", "--calibration-graph",
        help="The graph the dev heads run against: train+dev (less half of each calibration head's dev "
             "triples, which are the truth: the density of a graph that holds train and dev, as `make run`'s) "
             "or train (the whole dev split is the truth)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Calibrate the pipeline's confidence (logistic regression) on dev heads against a graph without their truth.

    A job applies only the model of its own mode (offline, or LLM when one is configured)."""
    import time

    from kg_builder.products.domain import load_kg_view
    from kg_builder.evaluation.generation import fit_confidence
    from kg_builder.models.saved import model_dir
    from kg_builder.pipeline import PipelineModels, PipelineOptions
    from kg_builder.pipeline.confidence import default_model_name
    from kg_builder.pipeline.pipeline import NO_RERANKER

    settings = load_settings()
    started = time.perf_counter()
    records = load_kg_view(dataset, resolve_data_dir(settings, data_dir))
    llm = None
    if use_llm:
        from kg_builder.errors import ConfigError
        from kg_builder.llm.openai_compat import llm_from_settings

        llm = llm_from_settings(settings)
        if llm is None:
            raise ConfigError("--llm needs an LLM endpoint: set KGFORGE_LLM_BASE_URL (and KGFORGE_LLM_MODEL)")
    options, _ = PipelineOptions(use_llm=use_llm).resolve_generators(settings, dataset, llm_configured=use_llm)
    models = PipelineModels.load(settings, dataset, options, calibrated=False)
    with step_progress() as update:
        full, no_reranker, metrics = fit_confidence(dataset=records, models=models, max_entities=max_entities,
                                                    seed=seed, options=options, llm=llm,
                                                    calibration_graph=calibration_graph, progress=update)
    name = default_model_name(dataset, "llm" if use_llm else "offline")
    full.save(model_dir(settings, name))
    no_reranker.save(model_dir(settings, f"{name}-{NO_RERANKER}"))
    metrics["seconds"] = time.perf_counter() - started
    if json_out:
        print_json({"model_name": name, "directory": str(model_dir(settings, name)), **metrics})
        return
    console.print(f"confidence model {name} ({metrics['mode']} mode): {metrics['candidates']} dev candidates of "
                  f"{metrics['entities']} heads, {metrics['positives']} true; out-of-fold Brier "
                  f"{metrics['brier_out_of_fold']:.4f}, ECE {metrics['ece_out_of_fold']:.4f}; {metrics['seconds']:.0f}s")
    console.print("floor by target precision (dev, out-of-fold): " + ", ".join(
        f"{k}: {v:.3f}" for k, v in metrics["floors_by_target_precision"].items()))
    console.print("coefficients: " + ", ".join(f"{k} {v:+.2f}" for k, v in metrics["coefficients"].items()))


@handle_errors
def eval_generation_command(
    dataset: str = typer.Option(..., "--dataset", help="A KG dataset with train and dev (and test) splits."),
    split: str = typer.Option("test", "--split", help="Held-out split whose triples are the truth: dev or test."),
    max_entities: int = typer.Option(40, "--max-entities", min=1, help="Held-out heads evaluated (and calibrated on)."),
    seed: int = typer.Option(0),
    target_precision: float = typer.Option(0.7, "--target-precision", min=0.01, max=1.0,
                                           help="The default policy's target precision (chooses the floor on dev)."),
    generators: list[str] | None = GeneratorOption,
    ablations: bool = typer.Option(True, "--ablations/--no-ablations", help="Also run every ablation."),
    calibration_graph: str | None = typer.Option(
        None, "--calibration-graph",
        help="train+dev (default on test) or train (default, and the only choice, on dev); on test with "
             "ablations the other one is also fitted and compared."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Run the pipeline on held-out heads: the default policy, the precision-recall curve over the
    confidence floor, and every ablation at the same number of kept triples."""
    from kg_builder.products.domain import load_kg_view
    from kg_builder.evaluation.generation import evaluate_generation
    from kg_builder.pipeline import PipelineModels

    settings = load_settings()
    records = load_kg_view(dataset, resolve_data_dir(settings, data_dir))
    options, _ = _options(generators, use_llm=False).resolve_generators(settings, dataset, llm_configured=False)
    models = PipelineModels.load(settings, dataset, options, calibrated=False)
    with step_progress() as update:
        result = evaluate_generation(dataset=records, models=models, split=split, max_entities=max_entities,
                                     seed=seed, options=options, ablations=ablations,
                                     target_precision=target_precision, calibration_graph=calibration_graph,
                                     progress=update)
    if json_out:
        print_json(result.model_dump())
        return
    curve = Table(title=f"precision-recall over the confidence floor ({dataset} {split})")
    for column in ("floor", "kept", "precision", "recall"):
        curve.add_column(column, justify="right")
    for point in result.pr_curve:
        curve.add_row(f"{point['floor']:.3f}", str(point["kept"]), f"{point['precision']:.3f}", f"{point['recall']:.3f}")
    console.print(curve)
    table = Table(title=f"generation on {dataset} {split} ({result.timings['total_seconds']:.0f}s): default policy "
                        f"(floor {result.floor:.3f} for precision {result.target_precision:.2f}), then every variant "
                        f"at the same kept budget")
    columns = ("kept", "precision", "recall", "candidate_recall", "novelty", "new_entities", "relation_entropy",
               "target_entropy", "brier")
    table.add_column("variant", overflow="fold")
    for column in columns:
        table.add_column(column, justify="right")
    for name, row in result.rows.items():
        if "error" in row:
            table.add_row(name, f"[red]{row['error']}[/]", *[""] * (len(columns) - 1))
            continue
        table.add_row(name, *[f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns])
    console.print(table)
    matched = Table(title="precision when each ranking first reaches a recall")
    matched.add_column("variant")
    keys = sorted({k for row in result.recall_matched.values() for k in row})
    for key in keys:
        matched.add_column(key.replace("precision_at_recall_", "recall "), justify="right")
    for name, row in result.recall_matched.items():
        matched.add_row(name, *[f"{row.get(k, float('nan')):.3f}" for k in keys])
    console.print(matched)
    if result.differences:
        paired = Table(title="full ranking's precision minus each variant's at the same budget "
                             "(95 % paired bootstrap interval over heads)")
        for column in ("variant", "difference", "interval"):
            paired.add_column(column, justify="left" if column == "variant" else "right")
        for name, d in result.differences.items():
            paired.add_row(name, f"{d['difference']:+.3f}", f"[{d['low']:+.3f}, {d['high']:+.3f}]")
        console.print(paired)
    if len(result.calibration_comparison) > 1:
        graphs = Table(title="the default policy under each calibration graph (does the floor promise what it keeps?)")
        for column in ("calibration graph", "label share", "floor", "kept", "mean kept confidence", "precision",
                       "recall"):
            graphs.add_column(column, justify="left" if column == "calibration graph" else "right")
        for name, row in result.calibration_comparison.items():
            graphs.add_row(name + (" (used)" if name == result.calibration_graph else ""),
                           *[f"{row[c]:.3f}" for c in ("label_share", "floor")], str(row["kept"]),
                           *[f"{row[c]:.3f}" for c in ("mean_kept_confidence", "precision", "recall")])
        console.print(graphs)
    console.print(f"[dim]{result.protocol}[/]")
