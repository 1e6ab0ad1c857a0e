"""``kgforge eval c2c``: evaluate the complementary-category (C2C) methods (issue 10).

The protocol is :mod:`kg_builder.evaluation.c2c`'s; this module only loads the data, the encoder
and the LLM (when ``KGFORGE_LLM_BASE_URL`` is set) and prints the table or JSON.
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
    handle_errors,
    load_settings,
    print_json,
    resolve_data_dir,
)



@handle_errors
def eval_c2c_command(
    dataset: str = typer.Option("amazon14_office", "--dataset",
                                help="A recommendation dataset with complement item links (amazon14_office)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the item hold-out (a stable hash of seed and item id)."),
    holdout: float = typer.Option(0.3, "--holdout", min=0.01, max=0.99,
                                  help="Share of items whose complement links are the truth."),
    encoder: bool = typer.Option(True, "--encoder/--no-encoder",
                                 help="Run the MiniLM text-similarity method (and the LLM's name mapping)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """P@5, R@10 and MRR of each C2C method against held-out item complement links."""
    from kg_builder.datasets import load_dataset
    from kg_builder.evaluation.c2c import evaluate_c2c
    from kg_builder.llm import llm_from_settings
    from kg_builder.products.domain import site_corpus

    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    with err_console.status(f"loading {dataset} from {root} ..."):
        records = load_dataset(dataset, root)
        corpus = site_corpus(dataset, root)
        text_encoder = None
        if encoder:
            from kg_builder.models.encoder import TextEncoder

            text_encoder = TextEncoder(settings.encoder_path)
    llm = llm_from_settings(settings)
    with err_console.status("evaluating ...") as status:
        result = evaluate_c2c(records, corpus=corpus, seed=seed, holdout=holdout, encoder=text_encoder, llm=llm,
                              progress=lambda step: status.update(f"evaluating: {step} ..."))
    if json_out:
        print_json(result.as_dict())
        return
    table = Table(title=f"C2C on {dataset} (seed {seed}, hold-out {holdout:.0%} of items)")
    for column in ("method", "P@5", "R@10", "MRR", "sources"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in result.rows:
        name = f"{row.method} (reference)" if row.reference else row.method
        table.add_row(name, f"{row.p_at_5:.4f}", f"{row.r_at_10:.4f}", f"{row.mrr:.4f}", str(row.sources))
    console.print(table)
    data = result.as_dict()
    for key, value in data["protocol"].items():
        console.print(f"[dim]{key}:[/] {value}", highlight=False)
    for key, value in data["choices"].items():
        console.print(f"[dim]{key}:[/] {value}", highlight=False)
    for method, why in result.skipped.items():
        console.print(f"[yellow]skipped {method}:[/] {why}", highlight=False)
    console.print(f"best: {data['best']}; beats the co-purchase baseline on P@5: "
                  f"{data['best_beats_baseline_p_at_5']}", highlight=False)
