"""``kgforge jobs submit | watch | list | cancel`` (entity jobs) and ``kgforge jobs train | train-watch |
train-cancel`` (training runs, ``/v1/training``): a client of the HTTP API (``kgforge up``).

The API address defaults to ``http://KGFORGE_API_HOST:KGFORGE_API_PORT`` (``--api`` overrides it);
writes send ``Authorization: Bearer`` with ``--api-key`` / ``KGFORGE_API_KEY`` when one is given.

``--check-split SPLIT`` (with ``--watch``, or on ``watch``) checks the kept triples against a KG
dataset's split file: for each kept triple, whether it is one of the split's triples. This is only
meaningful when the graph was imported without that split (``kgforge import umls --splits
train,dev``): the pipeline never proposes a triple the graph already holds. The check says so when
the graph holds the split. ``make run`` imports UMLS this way and checks against ``test``, so its
first job is verified against held-out truth rather than only shown.

A job file is JSON: either the whole request body (``{"domain": ..., "kind": ..., "entities": [...],
"options": {...}}``; an entity by ``name`` (and ``label``) or by ``id``) or a list of entities (``[{"name": "virus"}, ...]``, with ``--dataset``); a
``.txt`` file holds one entity name per line.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kg_builder.datasets import load_dataset
from kg_builder.errors import DatasetError, InvalidInputError
from kg_builder.graphdb.schema import native_key
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

app = typer.Typer(help="Submit entity jobs and training runs to the API and follow them.", no_args_is_help=True)

ApiOption = typer.Option(None, "--api", help="API base URL (default http://KGFORGE_API_HOST:KGFORGE_API_PORT).")
KeyOption = typer.Option(None, "--api-key", envvar="KGFORGE_API_KEY", help="API key for writes.")
CheckSplitOption = typer.Option(None, "--check-split",
                                help="Mark each kept triple that is one of this split's triples of the job's KG "
                                     "dataset (e.g. test), for a graph imported without it (`kgforge import umls "
                                     "--splits train,dev`).")
TERMINAL = {"succeeded", "failed", "cancelled"}


class Client:
    def __init__(self, api: str | None, api_key: str | None, timeout: float = 30.0):
        import httpx

        settings = load_settings()
        self.base = (api or f"http://{settings.api_host}:{settings.api_port}").rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.base, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            fail(f"cannot reach the API at {self.base} ({e}); is `kgforge up` running?")
        if response.status_code >= 400:
            try:
                detail = response.json()
            except ValueError:
                detail = response.text
            fail(f"{method} {path} -> HTTP {response.status_code}: {json.dumps(detail) if not isinstance(detail, str) else detail}")
        return response.json()


def _body(file: Path | None, names: list[str], dataset: str | None, entity_type: str | None,
          use_llm: bool | None, *, ids: list[str] = (), label: str | None = None,
          kind: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    entities: list[dict[str, Any]] = []
    if file is not None:
        if not file.exists():
            fail(f"job file {file} does not exist")
        text = file.read_text()
        if file.suffix == ".txt":
            entities = [{"name": line.strip()} for line in text.splitlines() if line.strip()]
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                fail(f"job file {file} is not JSON: {e}")
            if isinstance(data, dict):
                body = data
            elif isinstance(data, list):
                entities = [e if isinstance(e, dict) else {"name": str(e)} for e in data]
            else:
                fail(f"job file {file}: expected an object or a list of entities")
    entities += [{"name": n, **({"type": entity_type} if entity_type else {}), **({"label": label} if label else {})}
                 for n in names]
    entities += [{"id": i} for i in ids]
    if entities:
        body.setdefault("entities", []).extend(entities)
    if dataset:
        body["domain"] = dataset
    if use_llm is not None:
        body.setdefault("options", {})["use_llm"] = use_llm
    if kind:
        body["kind"] = kind
    if not body.get("entities"):
        fail("give a job FILE or at least one --entity NAME or --id ID")
    if not body.get("domain"):
        fail("give --dataset (the domain whose trained models apply), or put \"domain\" in the job file")
    return body


def entity_neighbours(client: Client, job: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each of the job's source nodes' neighbours (``GET /v1/entities/{id}``, one request per node),
    read once for both the kept triples and the split check."""
    return {e["node_id"]: client.request("GET", f"/v1/entities/{e['node_id']}", params={"limit": 500})
            .get("neighbours", []) for e in job.get("entities") or [] if e.get("node_id")}


def kept_triples(client: Client, job: dict[str, Any],
                 neighbours: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """The triples this job wrote, read back through ``GET /v1/entities/{id}``."""
    neighbours = entity_neighbours(client, job) if neighbours is None else neighbours
    rows = []
    names: dict[str, str] = {}

    def name(node_id: str) -> str:  # tables show names; a node without one shows its id
        if node_id not in names:
            node = client.request("GET", f"/v1/entities/{node_id}", params={"limit": 1})["node"]
            names[node_id] = node.get("name") or node_id
        return names[node_id]

    for entity in job.get("entities") or []:
        if not entity.get("node_id"):
            continue
        for n in neighbours.get(entity["node_id"], []):
            if n.get("job_id") == job["id"] and n.get("direction") == "out":
                rows.append({"head": entity["name"], "relation": n["relation"], "tail": name(n["tail"]),
                             "head_id": entity["node_id"], "tail_id": n["tail"],
                             "confidence": n.get("confidence"), "sources": n.get("sources") or [],
                             "evidence": n.get("evidence") or []})
    return sorted(rows, key=lambda r: -(r["confidence"] or 0.0))


def split_triples(domain: str, split: str, data_dir: Path | None) -> frozenset[tuple[str, str, str]]:
    """The ``(head, relation, tail)`` ids of ``split`` of the KG dataset ``domain``; an error naming
    ``--check-split`` when the dataset or the split is not there."""
    return _split_triples(domain, split, resolve_data_dir(load_settings(), data_dir))


@lru_cache(maxsize=4)  # submit checks the split before the job and reads it again after
def _split_triples(domain: str, split: str, root: Path) -> frozenset[tuple[str, str, str]]:
    try:
        records = load_dataset(domain, root)
    except DatasetError as e:  # not a dataset kgforge reads, or its folder is missing
        raise InvalidInputError("--check-split", f"cannot read dataset {domain!r} from {root}: {e}") from e
    if split not in records.triples:
        raise InvalidInputError("--check-split", f"{split!r} is not a triple split of {domain} here "
                                                 f"(splits: {', '.join(records.triples) or 'none'})")
    return frozenset((t.head, t.relation, t.tail) for t in records.triples[split])


def check_split(job: dict[str, Any], rows: list[dict[str, Any]], split: str, data_dir: Path | None,
                neighbours: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Mark each kept triple ``held_out`` when it is one of ``split``'s triples of the job's dataset
    (module docstring), and summarise: kept, held out among them, the split's triples of the job's
    heads, and whether the graph already holds the split (then no new triple can be in it)."""
    domain = job["domain"]
    truth = split_triples(domain, split, data_dir)
    heads = {native_key(domain, e["node_id"]) for e in job.get("entities") or [] if e.get("node_id")}
    in_graph = 0
    for entity in job.get("entities") or []:
        if not entity.get("node_id"):
            continue
        head = native_key(domain, entity["node_id"])
        in_graph += sum((head, n["relation"], native_key(domain, n["tail"])) in truth
                        for n in neighbours.get(entity["node_id"], [])
                        if n.get("direction") == "out" and n.get("job_id") is None)
    for r in rows:
        r["held_out"] = (native_key(domain, r["head_id"]), r["relation"], native_key(domain, r["tail_id"])) in truth
    found = sum(r["held_out"] for r in rows)
    return {"split": split, "dataset": domain, "kept": len(rows), "held_out": found,
            "precision": found / len(rows) if rows else None,
            "split_triples_of_heads": sum(h in heads for h, _, _ in truth),
            "split_triples_in_graph": in_graph}


def _print_check(check: dict[str, Any]) -> None:
    split, dataset = check["split"], check["dataset"]
    if check["split_triples_in_graph"]:
        err_console.print(f"[yellow]check against {dataset} {split}: the graph already holds "
                          f"{check['split_triples_in_graph']} of these heads' {split} triples (imported without "
                          f"--splits), so no new triple can be one of them; import into a fresh KGFORGE_HOME with "
                          f"`kgforge import {dataset} --splits train,dev` to check.[/]")
        return
    console.print(f"check against {dataset} {split} (held out of the graph): {check['held_out']} of "
                  f"{check['kept']} kept triples are {split} triples; the heads have "
                  f"{check['split_triples_of_heads']} {split} triples in all. Triples outside {split} are not "
                  f"necessarily false, only unconfirmed by the dataset.")


def _print_triples(rows: list[dict[str, Any]], job_id: str, split: str | None = None) -> None:
    table = Table(title=f"triples written by job {job_id}")
    columns = ["head", "relation", "tail", "confidence", "sources", "evidence"] + ([f"in {split}"] if split else [])
    for column in columns:
        # Whole names: a narrow or piped console wraps the columns, never cuts them.
        table.add_column(column, justify="right" if column == "confidence" else "left", overflow="fold")
    for r in rows:
        cells = [r["head"], r["relation"], r["tail"], f"{r['confidence']:.3f}" if r["confidence"] is not None else "-",
                 ", ".join(r["sources"]), ", ".join(r["evidence"][:3]) or "-"]
        if split:
            cells.append("yes" if r.get("held_out") else "no")
        table.add_row(*cells)
    console.print(table)


def watch_job(client: Client, job_id: str, *, interval: float = 0.5, timeout: float | None = None) -> dict[str, Any]:
    """Poll the job with a progress bar until it ends (or ``timeout`` seconds pass)."""
    started = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bars:
        task = bars.add_task(f"job {job_id}", total=None)
        while True:
            job = client.request("GET", f"/v1/jobs/{job_id}", params={"entities": "false"})
            p = job["progress"]
            bars.update(task, total=p["total"] or None, completed=p["done"] + p["failed"],
                        description=f"job {job_id} {job['status']}")
            if job["status"] in TERMINAL:
                return client.request("GET", f"/v1/jobs/{job_id}")
            if timeout is not None and time.monotonic() - started > timeout:
                fail(f"job {job_id} still {job['status']} after {timeout:.0f}s")
            time.sleep(interval)


def _finish(client: Client, job: dict[str, Any], json_out: bool, show_triples: bool,
            split: str | None = None, data_dir: Path | None = None) -> None:
    done = job["status"] == "succeeded"
    neighbours = entity_neighbours(client, job) if done and (show_triples or split) else {}
    rows = kept_triples(client, job, neighbours) if show_triples and done else []
    check = check_split(job, rows, split, data_dir, neighbours) if split and done else None
    if json_out:
        print_json({**job, "triples": rows, **({"check": check} if check else {})})
    else:
        c = job["counts"]
        console.print(f"job {job['id']} [bold]{job['status']}[/]: generated {c['generated']}, kept {c['kept']}, "
                      f"new nodes {c['new']}, merged {c['merged']}")
        usage = job.get("usage") or {}
        if usage.get("calls"):
            console.print(f"LLM: {usage['calls']} calls, {usage['prompt_tokens']} prompt + "
                          f"{usage['completion_tokens']} completion tokens")
        for error in job.get("errors") or []:
            err_console.print(f"[yellow]{error['name']}[/]: {error['error']}")
        for entity in job.get("entities") or []:
            for note in entity.get("notes") or []:
                err_console.print(f"[dim]{entity.get('name')}: {note}[/]")
        if job.get("error"):
            err_console.print(f"[red]{job['error']}[/]")
        if rows:
            _print_triples(rows, job["id"], split if check and not check["split_triples_in_graph"] else None)
        if check:
            _print_check(check)
    raise typer.Exit({"succeeded": 0, "failed": 1, "cancelled": 2}.get(job["status"], 1))


@app.command("submit")
@handle_errors
def submit(
    file: Path | None = typer.Argument(None, help="Job file (JSON body, JSON list of entities, or .txt of names)."),
    entity: list[str] | None = typer.Option(None, "--entity", help="An entity name (repeat for more)."),
    ids: list[str] | None = typer.Option(None, "--id", help="A node id (repeat for more): amazon:B00000JBLU, "
                                                            "amazon14_office:category:6, umls:virus."),
    dataset: str | None = typer.Option(None, "--dataset", help="The domain whose trained models apply."),
    entity_type: str | None = typer.Option(None, "--type", help="Type of the --entity names."),
    label: str | None = typer.Option(None, "--label", help="Node label of the --entity names: Entity, Item, Brand "
                                                           "or Category."),
    kind: str | None = typer.Option(None, "--kind", help="entities (default), c2c (complementary categories of "
                                                         "Category entities) or titles (normalised Item titles)."),
    use_llm: bool | None = typer.Option(None, "--llm/--no-llm", help="Override the job's LLM option."),
    watch: bool = typer.Option(False, "--watch", help="Follow the job to its end and print its triples."),
    check: str | None = CheckSplitOption,
    data_dir: Path | None = DataDirOption,
    api: str | None = ApiOption,
    api_key: str | None = KeyOption,
    json_out: bool = JsonOption,
) -> None:
    """Submit an entity job; prints its id (and, with --watch, follows it)."""
    client = Client(api, api_key)
    body = _body(file, entity or [], dataset, entity_type, use_llm, ids=ids or [], label=label, kind=kind)
    if check and not watch:
        raise InvalidInputError("--check-split", "needs --watch (or check later: `kgforge jobs watch JOB "
                                                 "--check-split SPLIT`)")
    if check:
        split_triples(body["domain"], check, data_dir)  # a bad --check-split fails before the job is submitted
    accepted = client.request("POST", "/v1/jobs", json=body)
    if not watch:
        if json_out:
            print_json(accepted)
        else:
            console.print(f"job {accepted['id']} accepted; follow it with `kgforge jobs watch {accepted['id']}`")
        return
    err_console.print(f"job {accepted['id']} accepted")
    _finish(client, watch_job(client, accepted["id"]), json_out, True, check, data_dir)


@app.command("watch")
@handle_errors
def watch(job_id: str = typer.Argument(...), timeout: float | None = typer.Option(None, help="Give up after N s."),
          triples: bool = typer.Option(True, "--triples/--no-triples", help="Print the triples the job wrote."),
          check: str | None = CheckSplitOption, data_dir: Path | None = DataDirOption,
          api: str | None = ApiOption, json_out: bool = JsonOption) -> None:
    """Follow a job with a live progress bar; exit code 0 succeeded, 1 failed, 2 cancelled."""
    client = Client(api, None)
    _finish(client, watch_job(client, job_id, timeout=timeout), json_out, triples, check if triples else None,
            data_dir)


@app.command("list")
@handle_errors
def list_jobs(limit: int = typer.Option(20, min=1, max=500), offset: int = typer.Option(0, min=0),
              api: str | None = ApiOption, json_out: bool = JsonOption) -> None:
    """The newest jobs first."""
    page = Client(api, None).request("GET", "/v1/jobs", params={"limit": limit, "offset": offset})
    if json_out:
        print_json(page)
        return
    table = Table(title=f"jobs {offset + 1}-{offset + len(page['items'])} of {page['total']}")
    for column in ("id", "status", "domain", "progress", "kept", "created"):
        table.add_column(column)
    for job in page["items"]:
        p = job["progress"]
        table.add_row(job["id"], job["status"], job["domain"], f"{p['done']}/{p['total']}",
                      str(job["counts"]["kept"]), job["created_at"])
    console.print(table)


@app.command("cancel")
@handle_errors
def cancel(job_id: str = typer.Argument(...), api: str | None = ApiOption, api_key: str | None = KeyOption) -> None:
    """Ask a job to stop after its current batch."""
    job = Client(api, api_key).request("POST", f"/v1/jobs/{job_id}/cancel")
    console.print(f"job {job_id}: {job['status']}" + (" (cancel requested)" if job.get("cancel_requested") else ""))


# --- training runs (``/v1/training``) --------------------------------------------------------------

def _param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value): VALUE is read as JSON (numbers, true/false, lists), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        fail(f"--param {text!r}: use KEY=VALUE (VALUE as JSON, e.g. max_batches=50 or sources='[\"a\",\"b\"]')")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def watch_training(client: Client, run_id: str, *, interval: float = 1.0,
                   timeout: float | None = None) -> dict[str, Any]:
    """Poll a training run with a progress bar (batches of the current stage) until it ends."""
    started = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bars:
        task = bars.add_task(f"run {run_id}", total=None)
        while True:
            run = client.request("GET", f"/v1/training/{run_id}")
            p = run["progress"]
            loss = f" loss {p['loss']:.4f}" if isinstance(p.get("loss"), (int, float)) else ""
            scores = "".join(f" {k} {v:.4f}" for k, v in (p.get("validation") or {}).items())
            bars.update(task, total=p.get("total_batches") or None, completed=p.get("batch") or 0,
                        description=f"{run['kind']} {run['status']} {p.get('stage') or ''}{loss}{scores}")
            if run["status"] in TERMINAL:
                return run
            if timeout is not None and time.monotonic() - started > timeout:
                fail(f"training run {run_id} still {run['status']} after {timeout:.0f}s")
            time.sleep(interval)


def _finish_training(run: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(run)
    else:
        console.print(f"training run {run['id']} ({run['kind']}) [bold]{run['status']}[/]")
        if run.get("result"):
            console.print(json.dumps(run["result"], indent=2))
        if run.get("error"):
            err_console.print(f"[red]{run['error']}[/]")
    raise typer.Exit({"succeeded": 0, "failed": 1, "cancelled": 2}.get(run["status"], 1))


@app.command("train")
@handle_errors
def train(
    kind: str = typer.Argument(..., help="A training kind: embed_pretrain, embed_finetune, rec_train."),
    param: list[str] | None = typer.Option(None, "--param", help="KEY=VALUE (repeat); VALUE is JSON "
                                                                 "(max_batches=50, early_stopping=false)."),
    follow: bool = typer.Option(False, "--follow", help="Follow the run to its end with a progress bar."),
    timeout: float | None = typer.Option(None, help="With --follow: give up after N s."),
    api: str | None = ApiOption,
    api_key: str | None = KeyOption,
    json_out: bool = JsonOption,
) -> None:
    """Submit a training run to the API (a Celery worker trains it); prints its id (--follow: its
    progress, then its result; exit code 0 succeeded, 1 failed, 2 cancelled)."""
    client = Client(api, api_key)
    accepted = client.request("POST", "/v1/training", json={"kind": kind, "params": dict(map(_param, param or []))})
    if not follow:
        if json_out:
            print_json(accepted)
        else:
            console.print(f"training run {accepted['id']} accepted; follow it with "
                          f"`kgforge jobs train-watch {accepted['id']}`")
        return
    err_console.print(f"training run {accepted['id']} accepted")
    _finish_training(watch_training(client, accepted["id"], timeout=timeout), json_out)


@app.command("train-watch")
@handle_errors
def train_watch(run_id: str = typer.Argument(...), timeout: float | None = typer.Option(None, help="Give up after N s."),
                api: str | None = ApiOption, api_key: str | None = KeyOption, json_out: bool = JsonOption) -> None:
    """Follow a training run with a live progress bar; exit code 0 succeeded, 1 failed, 2 cancelled."""
    client = Client(api, api_key)
    _finish_training(watch_training(client, run_id, timeout=timeout), json_out)


@app.command("train-cancel")
@handle_errors
def train_cancel(run_id: str = typer.Argument(...), api: str | None = ApiOption,
                 api_key: str | None = KeyOption) -> None:
    """Cancel a queued training run now, or a running one between two batches (nothing is saved)."""
    run = Client(api, api_key).request("DELETE", f"/v1/training/{run_id}")
    console.print(f"training run {run_id}: {run['status']}" + (" (cancel requested)" if run.get("cancel_requested")
                                                                 and run["status"] == "running" else ""))
