"""The ``kgforge`` command line: one typer app, one module per command group.

Long work shows a rich progress bar; every command that reads datasets takes ``--data-dir``
(default: ``KGFORGE_DATA_DIR``); machine-readable output with ``--json`` where it helps.
"""

from __future__ import annotations

import typer

from kgforge.cli import c2c, db, embed, evaluate, generate, graph, imports, jobs, models, rec, titles, train, up

app = typer.Typer(name="kgforge", help="kgforge: knowledge-graph construction service.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
app.add_typer(db.app, name="db")
app.add_typer(graph.app, name="graph")
app.add_typer(train.app, name="train")
app.add_typer(evaluate.app, name="eval")
app.add_typer(jobs.app, name="jobs")
app.add_typer(embed.app, name="embed")
app.add_typer(models.app, name="models")
app.add_typer(rec.app, name="rec")
app.command("import")(imports.import_command)
app.command("datasets")(imports.datasets_command)
app.command("generate")(generate.generate_command)
app.command("up")(up.up_command)
train.app.command("confidence")(generate.train_confidence_command)
evaluate.app.command("generation")(generate.eval_generation_command)
evaluate.app.command("c2c")(c2c.eval_c2c_command)
evaluate.app.command("titles")(titles.eval_titles_command)
titles_app = typer.Typer(help="Normalised product titles.", no_args_is_help=True)
titles_app.command("normalise")(titles.normalise_titles_command)
app.add_typer(titles_app, name="titles")


def main() -> None:
    app()
