"""``kgforge rec ...``: sequential recommenders (issue 12): train, eval, recommend, list.

Students are saved under ``KGFORGE_HOME/recommenders/<name>/v<version>`` (:mod:`recommender.store`);
the protocol of ``eval`` is in :mod:`recommender.evaluate`.
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

app = typer.Typer(help="Sequential recommenders (SASRec, GRU4Rec), the text teacher and distillation: train, teacher, "
                       "distill, eval, recommend.", no_args_is_help=True)


class _Bars:
    """A recommender.train progress callback drawing one rich bar per training run (batches)."""

    def __init__(self, progress):
        self.progress, self.task, self.label = progress, None, ""

    def __call__(self, event: dict) -> None:
        if event.get("event") == "row":
            self.label = event["model"]
            self.task = None
            return
        if event.get("event") == "batch":
            total = event["batches"] * event["epochs"]
            done = (event["epoch"] - 1) * event["batches"] + event["batch"]
            if self.task is None:
                self.task = self.progress.add_task(self.label or "train", total=total)
            self.progress.update(self.task, completed=done, total=total,
                                 description=f"{self.label or 'train'} ep {event['epoch']} loss {event['loss']:.3f}")
        elif event.get("event") == "epoch" and self.task is not None and "holdout_ndcg@10" in event:
            self.progress.update(self.task, description=f"{self.label or 'train'} ep {event['epoch']} holdout "
                                                        f"ndcg@10 {event['holdout_ndcg@10']:.4f}")


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=False)


def _seeds(text: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of integers", param_hint="--seeds") from None
    if not values:
        raise typer.BadParameter("give at least one seed", param_hint="--seeds")
    return values


@app.command("eval")
@handle_errors
def eval_command(
    dataset: str = typer.Option("amazon18_scientific", "--dataset"),
    split: str = typer.Option("valid", "--split", help="valid, or test where the held-out file is on disk."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds of the student rows (mean and std)."),
    train: bool = typer.Option(False, "--train", help="Train (and save) every model the rows need first; "
                                                      "otherwise the saved ones are loaded."),
    train_missing: bool = typer.Option(False, "--train-missing", help="Train only the models not saved yet."),
    sections: str = typer.Option("students,teachers,distilled", "--sections",
                                 help="Row groups: students, teachers, distilled (comma-separated)."),
    students: str = typer.Option("sasrec,gru4rec", "--students", help="Students of the student and distilled rows."),
    methods: str = typer.Option(",".join(("dllm2rec", "slmrec", "dllm2rec+slmrec", "kar", "kar+dllm2rec+slmrec")),
                                "--methods", help="Distillation plans of the distilled rows (comma-separated)."),
    teachers: str = typer.Option("text,text+graph", "--teachers",
                                 help="Teachers of the distilled rows: text (the text teacher), text+graph (the text "
                                      "teacher fused with the graph set gnn-<dataset>, when saved)."),
    graph: bool = typer.Option(True, "--graph/--no-graph", help="Also the student and distilled rows with the "
                                                                "graph's embedding set gnn-<dataset> (when saved)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Most epochs per student (default: recommender.train)."),
    teacher_minutes: float = typer.Option(12.0, "--teacher-minutes", min=0.5,
                                          help="Wall-clock budget of the text teacher's fine-tuning."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """The table: popularity; SASRec and GRU4Rec with and without text knowledge; the teachers (text
    teacher, LLM teacher, seed-user knowledge); each student distilled with DLLM2Rec, SLMRec, both,
    REKI/KAR, with and without the graph's knowledge (leave-one-out, full ranking over all items,
    history excluded; recommender/evaluate.py states the protocol)."""
    from recommender.evaluate import evaluate_table
    from recommender.store import RecommenderStore

    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    kwargs = {"epochs": epochs} if epochs else {}
    with _progress() as bars:
        result = evaluate_table(dataset=dataset, split=split, data_dir=root, seeds=_seeds(seeds), train=train,
                                store=RecommenderStore(settings), train_kwargs=kwargs, progress=_Bars(bars),
                                cache_dir=settings.home / "cache" / "title-embeddings", settings=settings,
                                sections=_names(sections), students=_names(students), distill_plans=_names(methods),
                                graph=graph, train_missing=train_missing, teachers=_names(teachers),
                                teacher_kwargs={"max_minutes": teacher_minutes})
    if json_out:
        print_json(result)
        return
    table = Table(title=f"{dataset} {split}: next-item, full ranking", caption=str(result["protocol"]))
    for column in ("row", "NDCG@10", "HR@10", "NDCG@20", "HR@20"):
        table.add_column(column, overflow="fold")
    for row in result["rows"]:
        table.add_row(row["row"], *(_cell(row, m) for m in ("ndcg@10", "hr@10", "ndcg@20", "hr@20")))
    console.print(table)


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _cell(row: dict, metric: str) -> str:
    value, std = row.get(metric), row.get(f"{metric}_std")
    if value is None:
        return row.get("status", "-")
    return f"{value:.4f}" + (f" ({std:.4f})" if isinstance(std, (int, float)) else "")


@app.command("teacher")
@handle_errors
def teacher_command(
    dataset: str = typer.Option("amazon18_scientific", "--dataset"),
    max_minutes: float = typer.Option(12.0, "--max-minutes", min=0.5, help="Wall-clock budget of the fine-tuning."),
    epochs: int = typer.Option(4, "--epochs", min=1),
    user_fraction: float = typer.Option(1.0, "--user-fraction", min=0.01, max=1.0,
                                        help="Share of the training users the teacher sees."),
    name: str | None = typer.Option(None, "--name", help="Store name (default text-teacher-minilm-<dataset>-s0)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Fine-tune the language-model teacher (MiniLM item text + a Transformer over the history) and save it."""
    from recommender.data import load_rec_data
    from recommender.evaluate import TEACHER, TEACHER_SEED, saved_name
    from recommender.store import RecommenderStore
    from recommender.teachers.text_teacher import train_text_teacher

    settings = load_settings()
    data = load_rec_data(dataset, resolve_data_dir(settings, data_dir))
    name = name or saved_name(TEACHER, "minilm", dataset, TEACHER_SEED)
    with _progress() as bars:
        progress = _Bars(bars)
        progress({"event": "row", "model": name})
        result = train_text_teacher(data=data, seed=TEACHER_SEED, max_minutes=max_minutes, epochs=epochs,
                                    user_fraction=user_fraction, progress=progress)
    meta = RecommenderStore(settings).save(name, result.model, item_ids=data.item_ids, dataset=dataset,
                                           train_config=result.config, metrics=result.metrics)
    if json_out:
        print_json({"name": name, "version": meta.version, **result.metrics})
        return
    console.print(f"trained the text teacher on {dataset}: {result.metrics}; saved {name} v{meta.version}")


@app.command("distill")
@handle_errors
def distill_command(
    dataset: str = typer.Option("amazon18_scientific", "--dataset"),
    model: str = typer.Option("sasrec", "--model", help="A registered student: sasrec, gru4rec."),
    method: str = typer.Option("dllm2rec+slmrec", "--method",
                               help="dllm2rec, slmrec, kar, joined by '+' (e.g. kar+dllm2rec+slmrec)."),
    teacher: str | None = typer.Option(None, "--teacher", help="A saved teacher (default text-teacher-minilm-<dataset>-s0)."),
    teacher_graph: str | None = typer.Option(None, "--teacher-graph",
                                             help="Fuse the teacher with this graph embedding set (name or "
                                                  "name@version): the text + graph teacher."),
    knowledge: str = typer.Option("text", "--knowledge", help="The student's item knowledge (kar condenses its parts; "
                                                              "add teacher:<name> and graph:<set>; "
                                                              "graph-score:<set> adds the set's own score)."),
    seed: int = typer.Option(0, "--seed"),
    epochs: int = typer.Option(None, "--epochs", min=1),
    name: str | None = typer.Option(None, "--name", help="Store name (default <model>-<method>-<knowledge>-<dataset>-s<seed>)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Train a student distilled from a saved teacher (DLLM2Rec, SLMRec) and/or with the REKI/KAR
    adapter, and save it as a plain student (serving costs what the plain student costs)."""
    import recommender.teachers  # noqa: F401  (registers the teacher)
    from kg_builder.errors import InvalidInputError
    from recommender.data import load_rec_data
    from recommender.distill import distill_student, parse_plan
    from recommender.evaluate import TEACHER, TEACHER_SEED, distilled_name, saved_name
    from recommender.knowledge import build_graph_scores, build_knowledge_blocks
    from recommender.models import get
    from recommender.store import RecommenderStore

    get(model)
    parts = parse_plan(method)
    settings = load_settings()
    store = RecommenderStore(settings)
    data = load_rec_data(dataset, resolve_data_dir(settings, data_dir))
    teacher_model = None
    if teacher_graph and not parts & {"dllm2rec", "slmrec"}:
        raise InvalidInputError("teacher_graph", f"method {method!r} distils no teacher (add dllm2rec or slmrec)")
    if parts & {"dllm2rec", "slmrec"}:
        teacher_name = teacher or saved_name(TEACHER, "minilm", dataset, TEACHER_SEED)
        saved = store.load(teacher_name)
        teacher_model = saved.model
        if teacher_graph:
            from recommender.teachers.graph_teacher import load_graph_teacher

            teacher_model = load_graph_teacher(teacher_model, f"{teacher_name} v{saved.meta.version}", teacher_graph,
                                               data, settings=settings)
    with err_console.status(f"knowledge {knowledge} ..."):
        blocks = build_knowledge_blocks(knowledge, data, cache_dir=settings.home / "cache" / "title-embeddings",
                                        settings=settings)
        graph_scores = build_graph_scores(knowledge, data, settings=settings)
    name = name or distilled_name(model, method, knowledge, dataset, seed, graph_teacher=bool(teacher_graph))
    kwargs = {"epochs": epochs} if epochs else {}
    with _progress() as bars:
        progress = _Bars(bars)
        progress({"event": "row", "model": name})
        result = distill_student(data=data, model=model, teacher=teacher_model, method=method, knowledge_blocks=blocks,
                                 knowledge_spec=knowledge, graph_scores=graph_scores, seed=seed, progress=progress,
                                 **kwargs)
    stored = f"kar({knowledge})" if "kar" in parts else knowledge
    meta = store.save(name, result.model, item_ids=data.item_ids, dataset=dataset, knowledge=stored,
                      train_config=result.config, metrics=result.metrics)
    if json_out:
        print_json({"name": name, "version": meta.version, **result.metrics})
        return
    console.print(f"distilled {model} ({method}) on {dataset}: {result.metrics}; saved {name} v{meta.version}")


@app.command("train")
@handle_errors
def train_command(
    dataset: str = typer.Option("amazon18_scientific", "--dataset"),
    model: str = typer.Option("sasrec", "--model", help="A registered student: sasrec, gru4rec."),
    knowledge: str = typer.Option("none", "--knowledge", help="none, text, text-whitened, graph:<embedding set>, "
                                                              "graph-score:<embedding set> (the set's own score "
                                                              "joins the student's), joined by '+'."),
    seed: int = typer.Option(0, "--seed"),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Most epochs (early stopping may end sooner)."),
    lr: float = typer.Option(None, "--lr", min=0.0),
    max_minutes: float | None = typer.Option(None, "--max-minutes", min=0.1, help="Wall-clock budget as well."),
    name: str | None = typer.Option(None, "--name", help="Store name (default <model>-<knowledge>-<dataset>-s<seed>)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Train one student on the train file (early stopping on a train-only holdout) and save it."""
    from recommender.data import load_rec_data
    from recommender.evaluate import saved_name
    from recommender.knowledge import build_graph_scores, build_knowledge
    from recommender.models import get
    from recommender.store import RecommenderStore
    from recommender.train import train_student

    get(model)  # an unknown name fails before any loading
    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    name = name or saved_name(model, knowledge, dataset, seed)
    data = load_rec_data(dataset, root)
    with err_console.status(f"knowledge {knowledge} ..."):
        matrix = build_knowledge(knowledge, data, cache_dir=settings.home / "cache" / "title-embeddings",
                                 settings=settings)
        graph_scores = build_graph_scores(knowledge, data, settings=settings)
    kwargs = {k: v for k, v in {"epochs": epochs, "lr": lr, "max_minutes": max_minutes}.items() if v is not None}
    with _progress() as bars:
        progress = _Bars(bars)
        progress({"event": "row", "model": name})
        result = train_student(data=data, model=model, knowledge=matrix, knowledge_spec=knowledge,
                               graph_scores=graph_scores, seed=seed, progress=progress, **kwargs)
    meta = RecommenderStore(settings).save(name, result.model, item_ids=data.item_ids, dataset=dataset,
                                           knowledge=knowledge, train_config=result.config, metrics=result.metrics)
    if json_out:
        print_json({"name": name, "version": meta.version, **result.metrics})
        return
    console.print(f"trained {model} ({knowledge} knowledge) on {dataset}: {result.metrics}; saved {name} "
                  f"v{meta.version}")


@app.command("recommend")
@handle_errors
def recommend_command(
    model: str = typer.Option(..., "--model", help="A saved recommender (kgforge rec list)."),
    version: int | None = typer.Option(None, "--version", min=1),
    user: str | None = typer.Option(None, "--user", help="A user id of the dataset: history = all their items."),
    history: str | None = typer.Option(None, "--history", help="Item ids, oldest first, comma-separated."),
    k: int = typer.Option(10, "-k", "--k", min=1, max=1000),
    keep_seen: bool = typer.Option(False, "--keep-seen", help="Allow items of the history in the answer."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Top-k next items for a user of the dataset or for an item history."""
    from recommender.recommend import recommend, user_history
    from recommender.store import RecommenderStore

    if (user is None) == (history is None):
        raise typer.BadParameter("give exactly one of --user and --history", param_hint="--user/--history")
    settings = load_settings()
    saved = RecommenderStore(settings).load(model, version)
    if user is not None:
        items = user_history(saved.meta.dataset, resolve_data_dir(settings, data_dir), user)
    else:
        items = [s.strip() for s in history.split(",") if s.strip()]
    answer = recommend(saved, items, k=k, exclude_seen=not keep_seen)
    if json_out:
        print_json({"model": saved.meta.name, "version": saved.meta.version, "history": items, **answer})
        return
    table = Table(title=f"{saved.meta.name} v{saved.meta.version}: top {k} after {len(items)} item(s)")
    for column in ("rank", "item", "score"):
        table.add_column(column)
    for rank, (item, score) in enumerate(zip(answer["items"], answer["scores"]), start=1):
        table.add_row(str(rank), item, f"{score:.4f}")
    console.print(table)


@app.command("list")
@handle_errors
def list_command(json_out: bool = JsonOption) -> None:
    """Every saved recommender version."""
    from recommender.store import RecommenderStore

    metas = RecommenderStore(load_settings()).list()
    if json_out:
        print_json([m.model_dump(mode="json") for m in metas])
        return
    table = Table(title=f"{len(metas)} recommender version(s)")
    for column in ("name", "version", "model", "knowledge", "dataset", "created", "holdout ndcg@10"):
        table.add_column(column, overflow="fold")
    for m in metas:
        table.add_row(m.name, str(m.version), m.model, m.knowledge, m.dataset, m.created.isoformat(timespec="seconds"),
                      str(m.metrics.get("holdout_ndcg@10", "-")))
    console.print(table)
