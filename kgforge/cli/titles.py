"""``kgforge eval titles`` and ``kgforge titles normalise``: normalised product titles (issue 10).

The lead registers the two functions in :mod:`kgforge.cli` (``eval`` group: ``titles``; a
``titles`` group: ``normalise``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from kgforge.cli.common import (
    DataDirOption,
    JsonOption,
    console,
    err_console,
    fail,
    handle_errors,
    load_settings,
    print_json,
    resolve_data_dir,
)


@handle_errors
def eval_titles_command(
    dataset: str = typer.Option("amazon18_scientific", "--dataset",
                                help="An Amazon sequence set: amazon18_scientific (or amazon18_games)."),
    split: str = typer.Option("valid", "--split", help="The target split: valid, or test where it is on disk."),
    whitening_dims: int = typer.Option(256, "--whitening-dims", min=1, max=384, help="Dimensions kept by whitening."),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads (default: torch's choice)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Next-item retrieval (full ranking, NDCG@10, HR@10) from item text embeddings of raw and
    normalised titles, each with and without BERT-whitening; names the best row as the default."""
    from kg_builder.datasets import load_dataset
    from kg_builder.evaluation.titles import evaluate_titles, user_sequences
    from kg_builder.models.encoder import TextEncoder

    if threads:
        import torch

        torch.set_num_threads(threads)
    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    with err_console.status(f"loading {dataset} from {root} ..."):
        records = load_dataset(dataset, root)
    if not records.interactions:
        fail(f"{dataset} has no interactions to evaluate next-item retrieval on")
    user_sequences(records, split)  # an absent (held-out) split fails here, before the encoder loads
    encoder = TextEncoder()
    with err_console.status("encoding item texts (cached after the first run) ..."):
        result = evaluate_titles(records, split, encode=encoder.encode, model=str(encoder.path),
                                 cache_dir=settings.home / "cache" / "title-embeddings",
                                 whitening_dims=whitening_dims)
    if json_out:
        print_json(result.as_dict())
        return
    table = Table(title=f"next-item retrieval on {dataset} {split} ({result.protocol['users']:,} users, "
                        f"{result.protocol['items']:,} items, full ranking)")
    for column in ("row", "dims", "NDCG@10", "HR@10", "NDCG@10 (history kept)"):
        table.add_column(column, justify="left" if column == "row" else "right")
    for row in result.rows:
        table.add_row(row["row"], str(row["dims"]), f"{row['ndcg@10']:.4f}", f"{row['hr@10']:.4f}",
                      f"{row['ndcg@10_keep_history']:.4f}")
    console.print(table)
    console.print(f"chosen default: [bold]{result.best['row']}[/]")
    for key, value in result.protocol.items():
        console.print(f"  {key}: {value}", highlight=False)


@handle_errors
def normalise_titles_command(
    dataset: str = typer.Option(..., "--dataset", help="An imported Amazon dataset, e.g. amazon18_scientific."),
    llm: bool = typer.Option(False, "--llm", help="Rewrite with the configured LLM (KGFORGE_LLM_BASE_URL); "
                                                  "bad answers fall back to the offline normaliser."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N items (a trial run)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Normalise the dataset's item titles and store them on its Item nodes (beside the raw title)."""
    from kg_builder.datasets import load_dataset
    from kg_builder.graphdb import GraphStore
    from kg_builder.ingest import DatasetKeys  # the importer's item ids, so the titles land on its nodes
    from kg_builder.llm import llm_from_settings
    from kg_builder.products.titles import LLMTitleRewriter, TitleNormaliser, dataset_normaliser

    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    with err_console.status(f"loading {dataset} from {root} ..."):
        records = load_dataset(dataset, root)
    offline = dataset_normaliser(records)
    normaliser: TitleNormaliser | LLMTitleRewriter = offline
    client = None
    if llm:
        client = llm_from_settings(settings)
        if client is None:
            fail("--llm needs an LLM server: set KGFORGE_LLM_BASE_URL (and KGFORGE_LLM_MODEL), or drop --llm")
        normaliser = LLMTitleRewriter(client, offline=offline)
    keys = DatasetKeys(records.name)
    items = [(keys.item(item), item.title, item.brand) for item in records.items if item.title][:limit]
    try:
        with err_console.status(f"normalising {len(items):,} titles ..."):
            results = normaliser.run_many(items)
    finally:
        if client is not None:
            client.close()
    with GraphStore.from_settings(settings) as store:
        from kg_builder.products.titles import write_normalised_titles

        report = write_normalised_titles(store, results)
    fallbacks = sum(1 for r in results if r.source.note)
    summary = {"dataset": dataset, "normalised": len(results), "written": report.written,
               "missing_items": len(report.missing), "llm_fallbacks": fallbacks,
               "method": results[0].source.tag if results else None,
               "examples": [{"raw": r.raw, "normalised": r.text, "brand": r.brand, "type": r.product_type}
                            for r in results[:5]]}
    if report.missing and not report.written:
        fail(f"none of {dataset}'s items is in the graph: run `kgforge import {dataset}` first")
    if json_out:
        print_json(summary)
        return
    console.print(f"wrote {report.written:,} normalised titles to {dataset}'s Item nodes "
                  f"({len(report.missing):,} items not in the graph, {fallbacks:,} LLM fallbacks)")
    for example in summary["examples"]:
        console.print(f"  {example['raw']}\n    -> {example['normalised']}", highlight=False)
