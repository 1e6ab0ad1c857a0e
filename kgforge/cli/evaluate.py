"""``kgforge eval ...``: evaluate saved models with the published protocols."""

from __future__ import annotations

from pathlib import Path

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
    progress_bars,
    resolve_data_dir,
)

app = typer.Typer(help="Evaluate saved models.", no_args_is_help=True)


@app.command("kgc")
@handle_errors
def kgc_command(
    dataset: str = typer.Option(..., "--dataset", help="A KG dataset: umls, wn18rr, fb15k237."),
    split: str = typer.Option("dev", "--split", help="The split to rank: dev or test (where it is on disk)."),
    ranker: str = typer.Option("structural", "--ranker", help="First stage: structural (ComplEx-N3), dense "
                                                           "(bi-encoder) or hybrid (ComplEx + entity text)."),
    model: str | None = typer.Option(None, "--model", help="Saved model name or folder (default: <ranker>-<dataset>)."),
    rerank: str | None = typer.Option(None, "--rerank", help="Cross-encoder model that rescores the top-k "
                                                             "(e.g. reranker-umls)."),
    rerank_k: int = typer.Option(10, "--rerank-k", min=1, help="Candidates the cross-encoder rescores."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Queries scored per batch."),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads (default: torch's choice)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Filtered link prediction (MR, MRR, Hits@1/3/10) on a KG split, both directions, all entities."""
    from kg_builder.products.domain import load_kg_view
    from kg_builder.errors import KGForgeError
    from kg_builder.evaluation import evaluate_split
    from kg_builder.models.cross_encoder import TripleCrossEncoder
    from kg_builder.models.dense import DenseKGModel
    from kg_builder.models.hybrid import HybridKGModel
    from kg_builder.models.structural import ComplEx

    if ranker not in ("structural", "dense", "hybrid"):
        raise typer.BadParameter("must be structural, dense or hybrid", param_hint="--ranker")
    if threads:
        import torch

        torch.set_num_threads(threads)
    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    name = model or f"{ranker}-{dataset}"
    with err_console.status(f"loading {dataset} from {root} and model {name} ..."):
        records = load_kg_view(dataset, root)
        loader = {"dense": DenseKGModel, "hybrid": HybridKGModel, "structural": ComplEx}[ranker]
        scorer = loader.load(name, settings=settings)
        second = TripleCrossEncoder.load(rerank, settings=settings) if rerank else None
    ids = [e.id for e in records.entities]
    if set(ids) != set(scorer.entity_ids):
        raise KGForgeError(f"model {name} ranks {len(scorer.entity_ids)} entities that differ from {dataset}'s "
                           f"{len(ids)}; evaluate it on the dataset it was trained on")
    labels = {"dense": f"bi-encoder {name}", "structural": f"structural ComplEx-N3 {name}"}
    label = scorer.describe(split) if ranker == "hybrid" else labels[ranker]
    score = scorer.scorer_for(split) if ranker == "hybrid" else scorer.score
    with progress_bars() as progress:
        if ranker == "dense":
            scorer.entity_embeddings(progress=progress)
        result = evaluate_split(score, records, split, entity_ids=scorer.entity_ids,
                                batch_size=batch_size, ranker=label, progress=progress,
                                reranker=second.as_reranker() if second else None, rerank_k=rerank_k,
                                reranker_name=f"cross-encoder {rerank}")
    result.model = name if not rerank else f"{name}+{rerank}"
    if json_out:
        print_json(result.as_dict())
        return
    table = Table(title=f"{dataset} {split}: {result.num_triples} triples, {result.num_entities} entities, "
                        f"model {result.model} ({result.seconds:.1f}s)", caption=result.protocol)
    table.add_column("ranks")
    table.add_column("direction")
    for col in ("MR", "MRR", "Hits@1", "Hits@3", "Hits@10"):
        table.add_column(col, justify="right")
    for kind, metrics in (("filtered", result.filtered), ("raw", result.raw)):
        for direction, m in metrics.items():
            table.add_row(kind, direction, f"{m.mr:.2f}", f"{m.mrr:.3f}", f"{m.hits_at_1:.3f}",
                          f"{m.hits_at_3:.3f}", f"{m.hits_at_10:.3f}")
    console.print(table)


@app.command("triples")
@handle_errors
def triples_command(
    dataset: str = typer.Option(..., "--dataset", help="A KG dataset: umls, wn18rr, fb15k237."),
    split: str = typer.Option("dev", "--split", help="The split to classify (threshold is chosen on dev)."),
    model: str | None = typer.Option(None, "--model", help="Cross-encoder name (default: reranker-<dataset>)."),
    seed: int = typer.Option(0, help="Seed of the corrupted negatives."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Triple classification accuracy (true triples vs corrupted ones) with the cross-encoder; also
    against hard negatives (ComplEx's best false tail) when structural-<dataset> is trained."""
    from kg_builder.products.domain import load_kg_view
    from kg_builder.errors import DatasetError
    from kg_builder.evaluation.triples import classify_against_hard, classify_triples
    from kg_builder.models.cross_encoder import TripleCrossEncoder
    from kg_builder.models.saved import ModelNotTrainedError
    from kg_builder.models.structural import ComplEx
    from kg_builder.training.reranker import complex_top_tails

    settings = load_settings()
    records = load_kg_view(dataset, resolve_data_dir(settings, data_dir))
    name = model or f"reranker-{dataset}"
    if split not in records.triples or "dev" not in records.triples:
        raise DatasetError(f"{dataset} needs the dev split and {split!r} on disk (present: {', '.join(records.triples)})")
    with err_console.status(f"scoring {dataset} {split} with {name} ..."):
        encoder = TripleCrossEncoder.load(name, settings=settings)
        result = classify_triples(encoder.score, dev=records.triples["dev"], evaluated=records.triples[split],
                                  entity_ids=[e.id for e in records.entities], known=records.all_triples(), seed=seed)
        try:
            structural = ComplEx.load(f"structural-{dataset}", settings=settings)
        except ModelNotTrainedError:
            structural = None
        hard = classify_against_hard(encoder.score, complex_top_tails(structural, k=30), dev=records.triples["dev"],
                                     evaluated=records.triples[split], known=records.all_triples()) \
            if structural is not None else None
    payload = {"dataset": dataset, "split": split, "model": name, **result.as_dict(),
               "hard": hard.as_dict() if hard else None}
    if json_out:
        print_json(payload)
        return
    console.print(f"{dataset} {split} triple classification with {name}: accuracy {result.accuracy:.3f} "
                  f"({result.positives} true + {result.negatives} corrupted; dev accuracy {result.dev_accuracy:.3f}, "
                  f"threshold {result.threshold:.3f})")
    console.print(f"[dim]{result.protocol}[/]")
    if hard:
        console.print(f"against hard negatives (structural-{dataset}'s best false tails): accuracy {hard.accuracy:.3f} "
                      f"({hard.positives} true + {hard.negatives} hard; dev accuracy {hard.dev_accuracy:.3f}, "
                      f"threshold {hard.threshold:.3f})")
