"""``kgforge train ...``: train models on a dataset and save them under ``KGFORGE_HOME/models``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from kg_builder.models.dense import default_model_name
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
    step_progress,
    training_progress,
)

app = typer.Typer(help="Train models (saved under KGFORGE_HOME/models/<name>).", no_args_is_help=True)


@app.command("dense")
@handle_errors
def dense_command(
    dataset: str = typer.Option(..., "--dataset", help="A KG dataset: umls, wn18rr, fb15k237."),
    epochs: int = typer.Option(3, min=1, help="Passes over the train split (both directions)."),
    batch_size: int = typer.Option(64, "--batch-size", min=2, help="Examples per step (in-batch negatives)."),
    lr: float = typer.Option(5e-5, help="AdamW learning rate (linear warm-up and decay)."),
    max_minutes: float | None = typer.Option(15.0, "--max-minutes",
                                             help="Wall-clock cap of the training loop; stops between steps."),
    max_length: int = typer.Option(48, "--max-length", min=8, help="Tokens per text."),
    seed: int = typer.Option(0, help="Random seed."),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's choice). On a busy shared "
                                                 "machine 1 can be 3x faster than oversubscribed cores."),
    name: str | None = typer.Option(None, help="Model name (default: dense-<dataset>)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Train the dense bi-encoder (SimKGC-style, MiniLM) on a KG dataset, evaluate it on dev, save it."""
    from kg_builder.models.dense import DenseConfig
    from kg_builder.training import train_dense

    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    with progress_bars() as progress:
        result = train_dense(dataset=dataset, data_dir=root, settings=settings, epochs=epochs,
                             batch_size=batch_size, lr=lr, max_minutes=max_minutes, seed=seed, progress=progress,
                             name=name or default_model_name(dataset), config=DenseConfig(max_length=max_length),
                             threads=threads)
    if json_out:
        print_json(result.as_dict())
        return
    fit = result.fit
    budget = " (stopped by --max-minutes)" if fit.stopped_by_budget else ""
    table = Table(title=f"dense bi-encoder {result.model_name}: {fit.steps}/{fit.planned_steps} steps, "
                        f"{fit.epochs_completed} epochs in {fit.seconds:.0f}s{budget}")
    table.add_column("split / direction")
    for col in ("MR", "MRR", "Hits@1", "Hits@3", "Hits@10"):
        table.add_column(col, justify="right")
    if result.metrics:
        for direction, m in result.metrics["filtered"].items():
            table.add_row(f"{result.metrics['split']} filtered {direction}", f"{m['mr']:.2f}", f"{m['mrr']:.3f}",
                          f"{m['hits_at_1']:.3f}", f"{m['hits_at_3']:.3f}", f"{m['hits_at_10']:.3f}")
    console.print(table)
    losses = ", ".join(f"{x:.3f}" for x in fit.epoch_losses)
    console.print(f"mean loss per epoch: {losses}; saved to {result.directory}")
    if result.protocol:
        console.print(f"[dim]{result.protocol}[/]")


@app.command("structural")
@handle_errors
def structural_command(
    dataset: str = typer.Option(..., "--dataset", help="A KG dataset: umls, wn18rr, fb15k237."),
    rank: int = typer.Option(200, min=1, help="ComplEx rank (complex dimensions); a resume keeps the saved rank."),
    epochs: int | None = typer.Option(None, min=1, help="Passes over the train split (both directions); "
                                                         "default 50, or 10 with --resume."),
    batch_size: int = typer.Option(500, "--batch-size", min=1),
    lr: float = typer.Option(0.1, help="Adagrad learning rate."),
    regularization: float = typer.Option(0.05, help="N3 weight."),
    max_minutes: float = typer.Option(30.0, "--max-minutes", help="Wall-clock cap; stops between batches."),
    eval_every: int | None = typer.Option(10, "--eval-every", help="Dev evaluation every N epochs; keeps the best."),
    precision: str = typer.Option("fp32", help="fp32, or bf16 (CPU autocast; about 3x faster on AVX512-BF16)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the saved model on the domain's training "
                                                        "triples in the graph now (the import's train split and "
                                                        "every triple jobs wrote): new entities get rows, old rows "
                                                        "and the optimizer state carry on."),
    replay: float | None = typer.Option(None, "--replay", min=0.0,
                                        help="With --resume: train each epoch on the new triples plus this many "
                                             "old ones per new one (default: every triple)."),
    seed: int = typer.Option(13),
    name: str | None = typer.Option(None, help="Model name (default: structural-<dataset>); with --resume, the "
                                               "model continued and saved again."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Train the structural link predictor (ComplEx-N3, 1-N scoring, reciprocal relations) and save it.

    With --resume, continue the saved model on the graph's current triples of the domain (dev
    metrics still on the dataset's dev split) and record the graph state it was trained on.
    """
    from kg_builder.errors import InvalidInputError
    from kg_builder.products.domain import load_kg_view
    from kg_builder.training.structural import resume_structural, train_structural

    settings = load_settings()
    records = load_kg_view(dataset, resolve_data_dir(settings, data_dir))
    if replay is not None and not resume:
        raise InvalidInputError("replay", "--replay applies to --resume only")
    with training_progress("epoch") as update:
        if resume:
            from kg_builder.graphdb import GraphStore
            from kg_builder.training.graph_state import graph_training_dataset

            with GraphStore.from_settings(settings) as store:
                grown, state = graph_training_dataset(store, records)
            result = resume_structural(dataset=grown, settings=settings, model=name, epochs=epochs or 10,
                                       batch_size=batch_size, lr=lr, regularization=regularization,
                                       max_minutes=max_minutes, eval_every=eval_every, seed=seed, replay=replay,
                                       name=name, progress=update, precision=precision, graph_state=state)
        else:
            result = train_structural(dataset=records, settings=settings, rank=rank, epochs=epochs or 50,
                                      batch_size=batch_size, lr=lr, regularization=regularization,
                                      max_minutes=max_minutes, eval_every=eval_every, seed=seed, name=name,
                                      progress=update, precision=precision)
    if json_out:
        print_json(result.as_dict())
        return
    dev = result.metrics.get("dev") or {}
    budget = " (stopped by --max-minutes)" if result.stopped_by_budget else ""
    console.print(f"structural model {result.model_name}: {result.metrics['epochs_run']} epochs in "
                  f"{result.timings['train_seconds']:.0f}s{budget}; best epoch {result.metrics['best_epoch']}")
    trained_on = result.metrics["trained_on"]
    if resume:
        before = trained_on["resumed_from"]
        console.print(f"resumed from {before['triples']} triples and {before['entities']} entities: "
                      f"{trained_on['new_triples']} new triples, {trained_on['new_entities']} new entities "
                      f"({before['placed_by_neighbours']} placed by their neighbours), "
                      f"{before['new_relations']} new relations")
    if dev:
        console.print(f"{dev['split']} filtered, both directions: MR {dev['mr']:.2f} MRR {dev['mrr']:.3f} "
                      f"Hits@1 {dev['hits_at_1']:.3f} Hits@3 {dev['hits_at_3']:.3f} Hits@10 {dev['hits_at_10']:.3f}")
    console.print(f"trained on {trained_on['triples']} triples, {trained_on['entities']} entities "
                  f"({trained_on['source']}); saved to {result.directory}")


@app.command("hybrid")
@handle_errors
def hybrid_command(
    dataset: str = typer.Option(..., "--dataset", help="A KG dataset: umls, wn18rr, fb15k237."),
    split: str = typer.Option("dev", "--split", help="The split the per-relation weights are fitted on."),
    structural: str | None = typer.Option(None, "--structural", help="Structural model (default: structural-<dataset>)."),
    name: str | None = typer.Option(None, help="Model name (default: hybrid-<dataset>)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Fit the hybrid ranker: ComplEx-N3 fused with frozen MiniLM entity-text similarity, one weight per relation."""
    from kg_builder.products.domain import load_kg_view
    from kg_builder.training.hybrid import fit_hybrid

    settings = load_settings()
    records = load_kg_view(dataset, resolve_data_dir(settings, data_dir))
    with step_progress() as update:
        result = fit_hybrid(dataset=records, settings=settings, split=split, structural=structural, name=name,
                            progress=lambda phase, done, total: update(done, total, phase))
    if json_out:
        print_json(result.as_dict())
        return
    m = result.metrics
    table = Table(title=f"hybrid {result.model_name} on {dataset} {split} ({result.timings['total_seconds']:.0f}s)",
                  caption=m["protocol"])
    table.add_column("ranker")
    for col in ("MR", "MRR", "Hits@1", "Hits@3", "Hits@10"):
        table.add_column(col, justify="right")
    for label, key in (("structural only", "structural_only"), ("hybrid (cross-fitted)", "hybrid")):
        x = m[key]
        table.add_row(label, f"{x['mr']:.1f}", f"{x['mrr']:.3f}", f"{x['hits_at_1']:.3f}", f"{x['hits_at_3']:.3f}",
                      f"{x['hits_at_10']:.3f}")
    console.print(table)
    weights = ", ".join(f"{k} {v:g}" for k, v in m["weights"].items())
    console.print(f"text weights (fitted on all of {split}): {weights}")
    console.print(f"saved to {result.directory}")


@app.command("reranker")
@handle_errors
def reranker_command(
    dataset: str = typer.Option(..., "--dataset", help="A KG dataset: umls, wn18rr, fb15k237."),
    epochs: float = typer.Option(1.0, min=0.01, help="Passes over train triples + their negatives."),
    batch_size: int = typer.Option(16, "--batch-size", min=2),
    lr: float = typer.Option(2e-4, help="AdamW learning rate (upper layers and head)."),
    negatives: int = typer.Option(1, min=0, help="Corrupted negatives (random head or tail) per true triple."),
    hard_negatives: int = typer.Option(1, "--hard-negatives", min=0,
                                       help="ComplEx's false top tails (the graph generator's) per true triple."),
    range_negatives: int = typer.Option(1, "--range-negatives", min=0,
                                        help="Same-relation tails that are not known true, per true triple."),
    head_negatives: int = typer.Option(0, "--head-negatives", min=0,
                                       help="ComplEx's most plausible false triples of the head over every "
                                            "relation (wrong relation and tail), per true triple (off by "
                                            "default: no gain on UMLS dev, README)."),
    max_minutes: float = typer.Option(30.0, "--max-minutes", min=0.01, help="Wall-clock cap of the training loop."),
    freeze_layers: int = typer.Option(3, "--freeze-layers", min=0,
                                      help="Lower MiniLM layers kept frozen (with the embeddings)."),
    dev_triples: int = typer.Option(300, "--dev-triples", min=1,
                                    help="Dev triples (+ one corrupted and one hard negative each) for the "
                                         "threshold and accuracies."),
    rank_queries: int = typer.Option(100, "--rank-queries", min=0,
                                     help="Of those, triples in the top-10 rerank report (0: skip it)."),
    threads: int | None = typer.Option(None, min=1, help="torch threads (default: 1 when the machine is busy)."),
    seed: int = typer.Option(13),
    name: str | None = typer.Option(None, help="Model name (default: reranker-<dataset>)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Fine-tune the KG-BERT-style cross-encoder (sentence-transformers CrossEncoder on MiniLM) on
    true triples vs corrupted and generator-mined hard negatives; threshold and metrics on dev."""
    from kg_builder.products.domain import load_kg_view
    from kg_builder.training.reranker import train_reranker

    settings = load_settings()
    records = load_kg_view(dataset, resolve_data_dir(settings, data_dir))
    with training_progress("step") as update:
        result = train_reranker(dataset=records, settings=settings, epochs=epochs, batch_size=batch_size, lr=lr,
                                negatives=negatives, hard_negatives_per_positive=hard_negatives,
                                range_negatives_per_positive=range_negatives,
                                head_negatives_per_positive=head_negatives, max_minutes=max_minutes,
                                freeze_layers=freeze_layers, threads=threads, dev_triples=dev_triples,
                                rank_queries=rank_queries, seed=seed, name=name, progress=update)
    if json_out:
        print_json(result.as_dict())
        return
    m = result.metrics
    budget = " (stopped by --max-minutes)" if result.stopped_by_budget else ""
    n = m["examples"]
    console.print(f"reranker {result.model_name}: {m['steps']}/{m['planned_steps']} steps in "
                  f"{result.timings['train_seconds']:.0f}s{budget} over {n['examples']} examples ({n['positives']} "
                  f"true, {n['corrupted']} corrupted, {n['hard']} hard from {m['hard_negatives_from']}, "
                  f"{n['range']} same-range, {n['head']} over every relation)")
    if "dev_accuracy" in m:
        table = Table(title=f"{dataset} dev (threshold logit {m['dev_threshold_logit']:.3f}, best dev accuracy "
                            "over true + corrupted + hard)")
        table.add_column("dev metric")
        table.add_column("value", justify="right")
        for label, key in (("accuracy, all negatives", "dev_accuracy"),
                           ("accuracy vs corrupted", "dev_accuracy_corrupted"),
                           ("accuracy vs hard (ComplEx top tails)", "dev_accuracy_hard"),
                           ("accuracy vs corrupted, 1:1, own best threshold", "dev_accuracy_corrupted_balanced"),
                           ("accuracy vs hard, 1:1, own best threshold", "dev_accuracy_hard_balanced"),
                           ("ROC AUC vs corrupted", "dev_auc_corrupted"),
                           ("ROC AUC vs hard", "dev_auc_hard")):
            table.add_row(label, f"{m[key]:.3f}")
        if "dev_rerank" in m:
            r = m["dev_rerank"]
            table.add_row(f"top-{r['k']} MRR, ComplEx alone ({r['queries']} triples)", f"{r['first_stage_mrr']:.3f}")
            table.add_row(f"top-{r['k']} MRR, reranker alone", f"{r['reranker_mrr']:.3f}")
            table.add_row(f"top-{r['k']} MRR, ComplEx + w x logit (w cross-fitted)", f"{r['combined_mrr']:.3f}")
            table.add_row("  w chosen on all dev (1e6: reranker alone)", f"{r['weight']:g}")
        console.print(table)
    console.print(f"saved to {result.directory}")


@app.command("relations")
@handle_errors
def relations_command(
    dataset: str = typer.Option(..., "--dataset", help="A KG dataset: umls, wn18rr, fb15k237."),
    epochs: int = typer.Option(60, min=1, help="Passes over the entities (each of the two fits)."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Entities per step."),
    hidden: int = typer.Option(256, min=0, help="Hidden units of the head (0: linear)."),
    holdout_fraction: float = typer.Option(0.2, "--holdout-fraction",
                                           help="Share of entities held out for the metrics (0: none)."),
    seed: int = typer.Option(13, help="Random seed (split and initialisation)."),
    name: str | None = typer.Option(None, help="Model name (default: relations-<dataset>)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Train the relation classifier P(r | S) (MiniLM embedding -> relations S heads) and save it.

    Held-out entities are scored against a prior baseline (relations ranked by how many training
    entities have them); the saved model is then refitted on all entities.
    """
    from kg_builder.products.domain import load_kg_view
    from kg_builder.models.encoder import TextEncoder, encoder_path
    from kg_builder.training.relations import train_relation_classifier

    settings = load_settings()
    records = load_kg_view(dataset, resolve_data_dir(settings, data_dir))
    encoder = TextEncoder(encoder_path(settings))
    with progress_bars() as bars:
        bars.phase("embed entities", len(records.entities))

        def on_epoch(done: int, total: int, loss: float) -> None:
            if done == 1:
                bars.phase("train", total)
            bars.advance(1)

        result = train_relation_classifier(dataset=records, settings=settings, encoder=encoder, epochs=epochs,
                                           lr=lr, batch_size=batch_size, hidden=hidden,
                                           holdout_fraction=holdout_fraction, seed=seed, name=name,
                                           progress=on_epoch, encode_progress=bars.advance)
    if json_out:
        print_json(result.as_dict())
        return
    metrics = result.metrics
    console.print(f"relation classifier {result.model_name}: {metrics['entities']} entities, "
                  f"{metrics['relations']} relations, {metrics['mean_relations_per_entity']:.1f} head relations "
                  f"per entity on average ({metrics['entities_without_head_relation']} entities head none)")
    held = metrics.get("holdout")
    if held:
        table = Table(title=f"{held['entities']} held-out entities (model fitted on the others)")
        table.add_column("ranker")
        columns = ("micro_f1", "macro_f1", "map", "recall@5", "precision@5")
        for col in ("micro-F1@0.5", "macro-F1@0.5", "MAP", "R@5", "P@5"):
            table.add_column(col, justify="right")
        for label, key in (("classifier", "classifier"), ("prior baseline", "prior")):
            table.add_row(label, *(f"{held[key][c]:.3f}" for c in columns))
        console.print(table)
    console.print(f"refitted on all entities in {result.timings['total_seconds']:.0f}s; saved to {result.directory}")


@app.command("utility")
@handle_errors
def utility_command(
    dataset: str = typer.Option(..., "--dataset", help="A KG dataset with entity descriptions: umls, wn18rr."),
    max_entities: int | None = typer.Option(1000, "--max-entities", min=1,
                                            help="Sample at most this many source entities (WN18RR has 40k)."),
    candidates: int = typer.Option(20, min=2, help="Retrieved documents per source entity."),
    max_name_share: float | None = typer.Option(
        None, "--max-name-share",
        help="Leave names found in more than this share of documents out of the mention matcher "
             "(default: 0.005 on corpora of 1,000+ documents, such as WN18RR; no filter below)."),
    max_minutes: float | None = typer.Option(
        None, "--max-minutes", min=0.05,
        help="Stop collecting training examples after this long (train and test entities are cut "
             "alike; default: no limit). Env: KGFORGE_UTILITY_MAX_MINUTES.",
        envvar="KGFORGE_UTILITY_MAX_MINUTES"),
    name_queries: bool = typer.Option(
        False, "--name-queries",
        help="Retrieve with the entity name alone instead of its knowledge (description and known facts)."),
    seed: int = typer.Option(0, help="Random seed (entity split and held-out neighbours)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Train the utility reranker over the dataset's description corpus; save retriever and reranker.

    Saved under KGFORGE_HOME/models/utility-<dataset>/ (retriever/, reranker/, mentions.json,
    training.json). The graph is the train split (labels: documents naming held-out neighbours);
    test metrics, on held-out entities, compare the utility ranking with similarity-only rankings
    and with counting the entities a document names.
    """
    from kg_builder.errors import InvalidInputError
    from kg_builder.models.encoder import TextEncoder, encoder_path
    from kg_builder.products.domain import domain_corpus, is_product_domain, load_kg_view
    from kg_builder.retrieval import HybridRetriever, corpus_from_dataset, train_utility_reranker
    from kg_builder.retrieval.saved_utility import DEFAULT_MAX_DOCUMENT_SHARE, filtered_mentions, save_utility

    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    records = load_kg_view(dataset, root)
    corpus = domain_corpus(records, root) if is_product_domain(dataset) else corpus_from_dataset(records)
    if not len(corpus):
        raise InvalidInputError("dataset", f"{dataset} has no entity descriptions, so there is no corpus to "
                                           "retrieve from; use a dataset with descriptions (umls, wn18rr)")
    if max_name_share is None and len(corpus) >= 1000:
        max_name_share = DEFAULT_MAX_DOCUMENT_SHARE
    encoder = TextEncoder(encoder_path(settings))
    mentions = None
    with progress_bars() as bars:
        bars.phase("embed corpus", len(corpus))
        retriever = HybridRetriever.build(corpus, encoder, progress=bars.advance)
        if max_name_share is not None:
            bars.phase("count names", len(corpus))
            mentions = filtered_mentions(records, corpus, max_document_share=max_name_share,
                                         progress=bars.advance)
    with err_console.status("training the utility reranker (retrieving candidates for every source entity)"):
        result = train_utility_reranker(dataset=records, retriever=retriever, candidates=candidates, seed=seed,
                                        max_entities=max_entities, mentions=mentions,
                                        knowledge_queries=not name_queries,
                                        max_seconds=max_minutes * 60 if max_minutes is not None else None)
        directory = save_utility(settings, dataset, result.reranker, result=result)
    matcher = {"max_name_share": max_name_share, "names": len(result.reranker.mentions.names),
               "entities": len(records.entities)}
    if json_out:
        print_json({"model_name": directory.name, "directory": str(directory), "dataset": dataset,
                    "mention_matcher": matcher, **result.model_dump()})
        return
    k = result.config["k"]
    counts = result.counts
    table = Table(title=f"utility reranking on {counts['test_entities']} held-out test entities "
                        f"({result.config['candidates']} candidates each, "
                        f"{counts['test_useful']}/{counts['test_examples']} useful)")
    table.add_column("ranking of the same candidates")
    table.add_column(f"P@{k}", justify="right")
    table.add_column(f"nDCG@{k}", justify="right")
    for ranking in ("utility", "hybrid_similarity", "dense_similarity", "bm25", "entity_mentions"):
        values = result.metrics.get(f"test/{ranking}")
        if values:
            table.add_row(ranking.replace("_", " "), f"{values[f'precision@{k}']:.3f}", f"{values[f'ndcg@{k}']:.3f}")
    console.print(table)
    if max_name_share is not None:
        console.print(f"mention matcher: {matcher['names']} of {matcher['entities']} names kept "
                      f"(found in at most {max_name_share:.1%} of the documents, 4+ characters, not stopwords)")
    if counts["train_entities"] + counts["test_entities"] < counts["planned_entities"]:
        console.print(f"time budget: {counts['train_entities'] + counts['test_entities']} of "
                      f"{counts['planned_entities']} sampled entities used (--max-minutes {max_minutes})")
    console.print(f"trained on {counts['train_entities']} entities in {result.seconds:.0f}s; "
                  f"retriever and reranker saved to {directory}")


@app.command("c2c")
@handle_errors
def c2c_command(
    dataset: str = typer.Option(..., "--dataset", help="A product domain with complement links: amazon14_office."),
    encoder_on: bool = typer.Option(True, "--encoder/--no-encoder", help="Use MiniLM text similarity as a feature."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Train the complementary-categories model a c2c job reads (kg_builder/products/c2c_model.py):
    co-purchase, text similarity and the product corpus combined by logistic regression, fitted on
    every complement link; saved as c2c-<dataset>."""
    from kg_builder.datasets import load_dataset
    from kg_builder.models.encoder import TextEncoder, encoder_path
    from kg_builder.models.saved import model_dir
    from kg_builder.products.c2c_model import default_model_name, train_c2c
    from kg_builder.products.domain import site_corpus

    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    records = load_dataset(dataset, root)
    corpus = site_corpus(dataset, root)
    encoder = TextEncoder(encoder_path(settings)) if encoder_on else None
    with err_console.status("training the C2C model ...") as status:
        model = train_c2c(records, encoder=encoder, corpus=corpus, progress=lambda s: status.update(f"C2C: {s} ..."))
    directory = model.save(model_dir(settings, default_model_name(dataset)))
    if json_out:
        print_json({"model": default_model_name(dataset), "directory": str(directory), "floor": model.floor,
                    **model.meta})
        return
    console.print(f"C2C model {default_model_name(dataset)}: {model.meta['categories']} categories, "
                  f"{model.meta['positive_pairs']} complement pairs of {model.meta['trained_pairs']}, methods "
                  f"{', '.join(model.meta['methods'])} + learned; saved to {directory}")
