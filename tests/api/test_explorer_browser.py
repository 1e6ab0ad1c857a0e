"""The graph explorer in a real headless browser: Debian's ``chromium`` (``make install-dev``
installs it) driven by Playwright, against the API served by uvicorn on the session's embedded
graph database holding UMLS (the real dataset when the shared data is there, else a small graph
with the same ids) and one triple written by a job.

Skipped only when ``/usr/bin/chromium`` is absent. Each run saves screenshots in its tmp dir;
``KGFORGE_EXPLORER_SCREENSHOT=docs/explorer.png`` also writes the README's screenshot there.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord, load_dataset
from kg_builder.graphdb import TripleWrite
from kg_builder.graphdb.embedded import free_port
from kg_builder.ingest import import_dataset
from kg_builder.jobs.models import JobSubmission
from kg_builder.pipeline import PipelineOptions, SourceEntity
from kg_builder.settings import Settings

from .conftest import RecordingCelery

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                                                    "(`make install-dev` or `apt-get install -y chromium`)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra: make install-dev")
REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 30_000


def small_umls() -> Dataset:
    """A few UMLS ids and relations, for machines without the shared data."""
    names = ["virus", "cell", "organism", "disease_or_syndrome", "bacterium", "animal", "plant", "fish",
             "human", "mammal", "tissue", "enzyme"]
    triples = [TripleRecord("virus", rel, tail) for rel, tail in [
        ("location_of", "cell"), ("causes", "disease_or_syndrome"), ("interacts_with", "organism"),
        ("interacts_with", "bacterium"), ("isa", "organism")]]
    triples += [TripleRecord(a, "isa", b) for a, b in [("fish", "animal"), ("human", "mammal"), ("mammal", "animal"),
                                                        ("animal", "organism"), ("plant", "organism")]]
    triples += [TripleRecord("cell", "part_of", t) for t in ("tissue", "human", "plant", "animal")]
    triples += [TripleRecord("enzyme", "affects", t) for t in ("cell", "bacterium")]
    return Dataset(
        name="umls", kind="kg",
        entities=[EntityRecord(n, n.replace("_", " "), f"The {n.replace('_', ' ')} (a small UMLS stand-in).")
                  for n in names],
        relations=[RelationRecord(r, r.replace("_", " ")) for r in
                   ("location_of", "causes", "interacts_with", "isa", "part_of", "affects")],
        triples={"train": triples},
    )


def _dataset() -> Dataset:
    data = Path(os.environ.get("KGFORGE_DATA_DIR", REPO.parent / "shared" / "data"))
    return load_dataset("umls", data) if (data / "kg" / "umls").is_dir() else small_umls()


@pytest.fixture
def served(store, tmp_path):
    """The API on a free port (uvicorn in a thread) over the session database holding UMLS and
    one triple written by a job of the job store; yields (base url, store, job id)."""
    import uvicorn

    from api.main import create_app

    import_dataset(store, _dataset())
    app = create_app(Settings(home=tmp_path / "home", env="development", graph_password="dev-only-password",
                              job_reaper_interval_s=0))
    app.state.services.graph = store
    app.state.services.celery = RecordingCelery()
    job = app.state.services.jobs.create(JobSubmission(
        entities=[SourceEntity(name="virus")], domain="umls", options=PipelineOptions(generators=["graph"])))
    existing = {(e.type, e.tail) for e in store.neighbourhood("umls:virus", limit=10_000) if e.head == "umls:virus"}
    tail = next(i for i, *_ in store.node_names() if ("CAUSES", i) not in existing and i != "umls:virus")
    store.upsert_triples([TripleWrite("umls:virus", "causes", tail, confidence=0.63, job_id=job.id,
                                      sources=("graph:structural-umls",), evidence=("umls:doc:virus",))])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", store, job.id, tail
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser_page(served):
    base = served[0]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        page.kgforge_errors = []
        page.kgforge_requests = []
        page.on("pageerror", lambda error: page.kgforge_errors.append(str(error)))
        # Chromium logs every non-2xx answer; the refused write's 422 is expected, nothing else is.
        page.on("console", lambda m: page.kgforge_errors.append(m.text)
                if m.type == "error" and "status of 422" not in m.text else None)
        page.on("request", lambda request: page.kgforge_requests.append(request.url))
        try:
            yield page
        finally:
            browser.close()
    outside = [url for url in page.kgforge_requests if not url.startswith((base, "data:"))]
    assert outside == [], "the explorer fetched something from outside the API"


def _idle(page) -> None:
    page.wait_for_function("window.explorer && window.explorer.ready && window.explorer.idle()", timeout=WAIT_MS)


def _click_node(page, node_id: str) -> None:
    box = page.locator("#graph").bounding_box()
    at = page.evaluate("(id) => window.explorer.domPosition(id)", node_id)
    page.mouse.click(box["x"] + at["x"], box["y"] + at["y"])


def _screenshot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name))
    wanted = os.environ.get("KGFORGE_EXPLORER_SCREENSHOT")
    if wanted and name == "explorer.png":
        page.screenshot(path=str(REPO / wanted))


def test_search_expand_inspect_and_a_refused_write(served, browser_page, tmp_path):
    base, store, job_id, job_tail = served
    page = browser_page
    page.goto(f"{base}/explorer")
    _idle(page)
    assert page.title() == "kgforge graph explorer" and page.evaluate("window.explorer.nodeIds()") == []

    # A search finds virus (and, the only match, draws it with its neighbours).
    page.fill("#search", "Virus")
    page.press("#search", "Enter")
    page.wait_for_selector('#results a[data-id="umls:virus"]', timeout=WAIT_MS)
    _idle(page)
    assert page.url.endswith("/explorer?q=Virus")
    drawn = set(page.evaluate("window.explorer.nodeIds()"))
    assert "umls:virus" in drawn and len(drawn) > 3
    assert page.evaluate("window.explorer.expanded()") == ["umls:virus"]

    # A click on a neighbour (the one standing furthest from the others, so that the click finds it)
    # selects it and adds its neighbours.
    candidates = page.evaluate("""() => {
        const ids = window.explorer.shownNodeIds().filter((id) => id !== 'umls:virus');
        const at = Object.fromEntries(ids.map((id) => [id, window.explorer.domPosition(id)]));
        const far = (id) => Math.min(...ids.filter((o) => o !== id).map((o) => Math.hypot(at[o].x - at[id].x, at[o].y - at[id].y)));
        return ids.sort((a, b) => far(b) - far(a));
    }""")
    limit = int(page.input_value("#neighbour-limit"))
    import httpx

    target = next(c for c in candidates
                  if {e for n in httpx.get(f"{base}/v1/entities/{c}", params={"limit": limit}).json()["neighbours"]
                      for e in (n["head"], n["tail"])} - drawn)
    _click_node(page, target)
    page.wait_for_function("(id) => window.explorer.expanded().includes(id)", arg=target, timeout=WAIT_MS)
    _idle(page)
    after = set(page.evaluate("window.explorer.nodeIds()"))
    assert drawn < after, "the click added no node"
    assert page.evaluate("window.explorer.selected()") == {"node": target}
    name = store.get_node(target).properties.get("name")
    assert page.text_content("#panel-title") == name
    assert target in page.inner_text("#panel-body")  # its properties, id included
    _screenshot(page, tmp_path, "explorer.png")

    # The minimum-confidence filter hides what is below it (the job's 0.63 edge), not what is drawn.
    page.evaluate("() => { const s = document.getElementById('min-conf'); s.value = '0.9';"
                  " s.dispatchEvent(new Event('input')); }")
    job_edge = f"umls:virus|CAUSES|{job_tail}"
    if job_edge in page.evaluate("window.explorer.edgeIds()"):
        assert job_edge not in page.evaluate("window.explorer.shownEdgeIds()")

    # The Cypher box refuses a write and says why; nothing changed.
    before = store.counts()
    page.fill("#cypher", "MATCH (n) DETACH DELETE n")
    page.click("#cypher-run")
    page.wait_for_selector("#cypher-error:not([hidden])", timeout=WAIT_MS)
    assert "DETACH" in page.inner_text("#cypher-error") and "read-only" in page.inner_text("#cypher-error")
    assert store.counts() == before

    # A read draws its nodes and relationships and fills the table.
    page.fill("#cypher", "MATCH (n:Entity {id: 'umls:virus'})-[r]->(m) RETURN n, r, m.name AS name LIMIT 3")
    page.click("#cypher-run")
    page.wait_for_selector("#cypher-table tr:nth-child(2)", timeout=WAIT_MS)
    _idle(page)
    assert page.is_hidden("#cypher-error") and page.locator("#cypher-table tr").count() == 4
    assert "umls:virus" in page.evaluate("window.explorer.nodeIds()")
    assert page.evaluate("window.explorer.edgeIds().length") >= 1
    assert page.kgforge_errors == []


def test_a_jobs_triples_with_their_provenance_and_evidence(served, browser_page, tmp_path):
    base, store, job_id, job_tail = served
    page = browser_page
    status = __import__("httpx").get(f"{base}/v1/jobs/{job_id}").json()
    page.goto(base + status["explorer_url"])
    _idle(page)
    assert sorted(page.evaluate("window.explorer.nodeIds()")) == sorted(["umls:virus", job_tail])
    assert "1 triple(s) written by job" in page.inner_text("#status")

    # A click on the edge (between its two nodes) shows its provenance in the side panel.
    box = page.locator("#graph").bounding_box()
    ends = [page.evaluate("(id) => window.explorer.domPosition(id)", i) for i in ("umls:virus", job_tail)]
    page.mouse.click(box["x"] + (ends[0]["x"] + ends[1]["x"]) / 2, box["y"] + (ends[0]["y"] + ends[1]["y"]) / 2)
    page.wait_for_function("() => (window.explorer.selected() || {}).edge", timeout=WAIT_MS)
    panel = page.inner_text("#panel-body")
    assert "0.630" in panel and "graph:structural-umls" in panel and job_id in panel
    page.wait_for_function("() => document.getElementById('panel-body').innerText.includes('queued')",
                           timeout=WAIT_MS)  # the job's status, from the job store

    # The evidence document's text on click.
    page.click("button.evidence")
    page.wait_for_function("() => { const t = document.querySelector('.doc-text');"
                           " return t && !t.hidden && t.innerText.length > 20 && !t.innerText.startsWith('loading'); }",
                           timeout=WAIT_MS)
    description = store.get_node("umls:virus").properties["description"]
    assert description[:40] in page.inner_text(".doc-text")
    _screenshot(page, tmp_path, "explorer-job.png")
    assert page.kgforge_errors == []
