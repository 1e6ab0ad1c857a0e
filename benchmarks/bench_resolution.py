"""Entity-resolution benchmark: name variants from the real data, kgforge's resolver against plain
exact-name MERGE, side by side in one run on one embedded database.

What it does:

1. **graph**: imports the entities of UMLS, WN18RR and FB15k-237 and the items (product titles) of
   Amazon Office (2014), a sample of Amazon Games (2018) and a sample of the Amazon product-text
   corpus into a fresh embedded ArcadeDB on a temporary home, with kgforge's importer; some
   entities are **held out** (not imported) to serve as hard negatives. Then kgforge records the
   aliases the domains' names spell out (``EntityResolver.index_name_aliases``: acronyms such as
   "Central Intelligence Agency (CIA)", cleaned product titles), as an import would.
2. **cases** (each a name, its domain, an optional type and the entity it denotes):
   - *variants* of imported entities: upper case, title case, punctuation (hyphens, a trailing
     full stop), plural of the last word of common nouns (lower-case names: regular, irregular and
     Latin plurals), word order ("acid, amino"), dropped function words ("amino acid peptide
     protein"), the acronym or the expansion
     where the name gives one, product titles against their cleaned forms (no bracketed parts,
     cut at " - " or the first comma, in lower case). Only entities whose name is unique in their
     domain are varied, and a variant that is another entity's name (or cleaned title) in the
     domain is dropped: no resolver could know which one is meant.
   - *hard negatives*: held-out entities whose name is a lexical variant of another entity's in
     the same domain (WN18RR "arms" beside "arm"), held-out products whose cleaned title another
     product shares ("Madden NFL 2005 - Xbox" beside "... - PlayStation 2"), names of one domain
     resolved in another that lacks them (cross-domain homonyms: a UMLS job must not merge into
     WN18RR's "virus"), and one name with two types in one domain ("Mercury" the person and the
     film). The right answer for each is one new node per entity.
3. **kgforge**: per domain, the cases in random order in batches of ``--batch`` (one
   ``EntityResolver(store, domain=..., label=...)`` run per batch, like one job each).
4. **baseline**: the same cases in the same batches through ``MERGE (n:Label {name: $name})``
   (with an index on ``name``), what most LLM graph builders do; the nodes it created are deleted
   before kgforge runs.
5. **scoring**, identical for both: a resolution that creates a node although its entity already
   has one (imported, or created by an earlier case) is a *duplicate*; one that lands on another
   entity's node is a *wrong merge*; merge precision = correct merges / all merges.

Prints rich tables and saves ``benchmarks/results/resolution.json``. Run:
``.venv/bin/python benchmarks/bench_resolution.py --data-dir ../shared/data`` (about 10 minutes
on two busy cores; ``--per-domain`` scales the sample).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

import cypher
from kg_builder.datasets import load_dataset
from kg_builder.datasets.records import Dataset
from kg_builder.ingest import import_dataset
from kg_builder.models.encoder import TextEncoder
from kg_builder.resolution import Candidate, EntityResolver, name_variants
from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore, schema
from kg_builder.graphdb.embedded import EmbeddedDatabase, free_port

REPO = Path(__file__).resolve().parent.parent
console = Console(width=None if sys.stdout.isatty() else 130)  # whole column names in logs

KG_DOMAINS = ("umls", "wn18rr", "fb15k237")
ITEM_DOMAINS = ("amazon14_office", "amazon18_games", "amazon18_product_text")
TYPED_DOMAIN = "bench_typed"  # a domain with nothing imported: one name, two types

# --- variant generators (independent of the resolver's own rules where they can be) ------------------------

IRREGULAR = {"child": "children", "man": "men", "woman": "women", "person": "people", "mouse": "mice",
             "foot": "feet", "tooth": "teeth", "bacterium": "bacteria", "fungus": "fungi", "alga": "algae",
             "phenomenon": "phenomena", "criterion": "criteria", "analysis": "analyses", "nucleus": "nuclei",
             "vertebra": "vertebrae", "larva": "larvae", "medium": "media", "stimulus": "stimuli",
             "diagnosis": "diagnoses", "index": "indices", "matrix": "matrices", "genus": "genera"}
FUNCTION_WORDS = {"or", "and", "of", "the"}


def plural(word: str) -> str | None:
    lower = word.lower()
    if lower in IRREGULAR:
        return IRREGULAR[lower]
    if not lower.isalpha() or len(lower) < 3 or lower.endswith(("s", "i", "ae")):
        return None
    if lower.endswith("y") and lower[-2] not in "aeiou":
        return word[:-1] + "ies"
    if lower.endswith(("x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def given_acronym(name: str) -> tuple[str, str] | None:
    """(expansion, acronym) when the name gives its acronym: "Central Intelligence Agency (CIA)"."""
    match = re.match(r"^(.*\S)\s*\(([A-Z]{2,8})\)$", name)
    if not match:
        return None
    initials = "".join(w[0] for w in match.group(1).split() if w[0].isupper())
    return (match.group(1), match.group(2)) if initials == match.group(2) else None


def kg_variants(name: str) -> list[tuple[str, str]]:
    """(kind, variant) pairs of a KG entity name."""
    words = name.split()
    out = [("case", name.upper()), ("case", name.title())]
    out.append(("punctuation", "-".join(words) if len(words) > 1 else name + "."))
    last = plural(words[-1]) if words and name == name.lower() else None  # proper names take no plural
    if last:
        out.append(("plural", " ".join(words[:-1] + [last])))
    if len(words) >= 2:
        out.append(("word_order", f"{words[-1]}, {' '.join(words[:-1])}"))
    if len(words) >= 3 and FUNCTION_WORDS & {w.lower() for w in words}:
        out.append(("function_words", " ".join(w for w in words if w.lower() not in FUNCTION_WORDS)))
    acronym = given_acronym(name)
    if acronym:
        out += [("acronym", acronym[1]), ("acronym", acronym[0])]
    return [(kind, v) for kind, v in out if v and v != name]


def title_head(title: str) -> tuple[str, str]:
    """(title without bracketed parts, that cut at the first " - ", " | " or ", ")."""
    bare = re.sub(r"\s*[(\[][^()\[\]]*[)\]]", "", title).strip()
    return bare, re.split(r"\s+[-\u2013|]\s+|,\s+", bare, maxsplit=1)[0].strip()


def cleaned_titles(title: str) -> list[str]:
    """What a cleaner (or an LLM) makes of a noisy product title."""
    bare, head = title_head(title)
    forms = sorted({bare, head, head.lower()})
    return [f for f in forms if f != title and len(schema.normalize_name(f).split()) >= 2]


def item_variants(title: str) -> list[tuple[str, str]]:
    out = [("case", title.upper())] + [("cleaned_title", c) for c in cleaned_titles(title)]
    return [(k, v) for k, v in out if v != title]


# --- cases ------------------------------------------------------------------------------------------------------


@dataclass
class Case:
    domain: str
    label: str
    name: str
    truth: str  # node id of an imported entity, or "absent:..." for an entity the graph lacks
    kind: str
    type: str | None = None


def unique_names(records: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """norm -> (node id, name) for the names that only one entity of the domain has."""
    by_norm: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for node_id, name in records:
        norm = schema.normalize_name(name)
        if norm:
            by_norm[norm].append((node_id, name))
    return {norm: rows[0] for norm, rows in by_norm.items() if len(rows) == 1}


def build(data_dir: Path, per_domain: int, items_per_domain: int, rng: random.Random) -> tuple[dict, list[Case], dict]:
    """Datasets to import (with held-out entities removed), the cases, and counts of what was excluded."""
    datasets: dict[str, Dataset] = {}
    cases: list[Case] = []
    excluded: Counter = Counter()
    names_by_domain: dict[str, set[str]] = {}
    kept_records: dict[str, list[tuple[str, str]]] = {}

    for domain in KG_DOMAINS:
        ds = load_dataset(domain, data_dir)
        records = [(f"{domain}:{e.id}", e.name or e.id) for e in ds.entities]
        norms = Counter(schema.normalize_name(n) for _, n in records)
        # hard negatives: hold out entities whose name is a lexical variant of another entity's
        held: dict[str, tuple[str, str]] = {}
        order = records[:]
        rng.shuffle(order)
        for node_id, name in order:
            norm = schema.normalize_name(name)
            if norms[norm] != 1 or len(held) >= min(per_domain // 3, len(records) // 10):
                continue
            siblings = [v for v in name_variants(norm) if norms.get(v, 0) > 0]
            if siblings and not any(v in {schema.normalize_name(n) for _, n in held.values()} for v in siblings):
                held[node_id] = (node_id, name)
        kept = [r for r in records if r[0] not in held]
        keep_ids = {r[0] for r in kept}
        datasets[domain] = dataclasses.replace(ds, entities=[e for e in ds.entities if f"{domain}:{e.id}" in keep_ids],
                                               triples={}, relations=[])
        kept_records[domain] = kept
        names_by_domain[domain] = {schema.normalize_name(n) for _, n in kept}
        for node_id, name in held.values():
            for kind, variant in [("hard_negative", name), ("hard_negative", name.upper())]:
                cases.append(Case(domain, schema.ENTITY, variant, f"absent:{node_id}", kind))

    for domain in ITEM_DOMAINS:
        ds = load_dataset(domain, data_dir)
        items = [i for i in ds.items if i.title]
        rng.shuffle(items)
        if domain != "amazon14_office":
            items = items[: max(items_per_domain * 6, 1000)]  # a sample of the catalogue is the domain
        key = (lambda i, _d=domain: f"amazon:{i.asin}" if i.asin else f"{_d}:item:{i.id}")
        # hard negatives: a product whose cleaned title another product shares (another platform or
        # size); its full title says which one it is, so that is the name resolved
        by_base: dict[str, list] = defaultdict(list)
        for item in items:
            head = schema.normalize_name(title_head(item.title)[1])
            if len(head.split()) >= 2:
                by_base[head].append(item)
        held_items = {}
        for base, group in sorted(by_base.items()):
            distinct = [i for i in group if schema.normalize_name(i.title) != base]
            if len(group) > 1 and distinct and len({schema.normalize_name(i.title) for i in group}) == len(group) \
                    and len(held_items) < items_per_domain // 3:
                held_items[distinct[-1].id] = distinct[-1]
        kept_items = [i for i in items if i.id not in held_items]
        datasets[domain] = dataclasses.replace(ds, items=kept_items, interactions=[], item_links=[], documents=[],
                                               triples={}, relations=[], entities=[])
        kept_records[domain] = [(key(i), i.title) for i in kept_items]
        names_by_domain[domain] = {schema.normalize_name(i.title) for i in kept_items}
        for item in held_items.values():
            for variant in (item.title, item.title.upper()):
                cases.append(Case(domain, schema.ITEM, variant, f"absent:{domain}:{item.id}", "hard_negative"))

    # positive variants of entities with a unique name
    for domain, records in kept_records.items():
        label = schema.ITEM if domain in ITEM_DOMAINS else schema.ENTITY
        unique = unique_names(records)
        excluded["homonym_originals"] += len({schema.normalize_name(n) for _, n in records}) - len(unique)
        taken = set(names_by_domain[domain])
        if label == schema.ITEM:  # a cleaned title shared by two products is ambiguous
            base_count = Counter(schema.normalize_name(c) for _, t in records for c in set(cleaned_titles(t)))
            taken |= {b for b, n in base_count.items() if n > 1}
        pool = sorted(unique.values())
        rng.shuffle(pool)
        limit = len(pool) if domain == "umls" else (per_domain if label == schema.ENTITY else items_per_domain)
        acronyms = [r for r in pool if given_acronym(r[1])]
        chosen = list(dict.fromkeys(pool[:limit] + acronyms))
        for node_id, name in chosen:
            variants = kg_variants(name) if label == schema.ENTITY else item_variants(name)
            own = schema.normalize_name(name)
            for kind, variant in variants:
                norm = schema.normalize_name(variant)
                if not norm:
                    continue
                if norm != own and norm in taken:
                    excluded["ambiguous_variants"] += 1
                    continue
                cases.append(Case(domain, label, variant, node_id, kind))

    # cross-domain homonyms: a name of one domain resolved in a domain that lacks it (and its variants)
    for source, target in (("wn18rr", "umls"), ("umls", "fb15k237"), ("fb15k237", "wn18rr"),
                           ("amazon14_office", "amazon18_games")):
        label = schema.ITEM if target in ITEM_DOMAINS else schema.ENTITY
        pool = [n for _, n in kept_records[source]]
        rng.shuffle(pool)
        count = 0
        for name in pool:
            norm = schema.normalize_name(name)
            if not norm or norm in names_by_domain[target] or name_variants(norm) & names_by_domain[target]:
                continue
            cases.append(Case(target, label, name, f"absent:{target}:{norm}", "cross_domain"))
            count += 1
            if count >= per_domain // 4:
                break

    # one name, two types, in a domain of its own
    pool = [n for _, n in kept_records["fb15k237"] if len(n.split()) >= 2]
    rng.shuffle(pool)
    for name in pool[: per_domain // 8]:
        norm = schema.normalize_name(name)
        for type_, variant in (("person", name), ("film", name), ("person", name.upper()), ("film", name.lower())):
            cases.append(Case(TYPED_DOMAIN, schema.ENTITY, variant, f"absent:{TYPED_DOMAIN}:{norm}:{type_}",
                              "type_homonym", type_))
    return datasets, cases, dict(excluded)


# --- the two resolvers -----------------------------------------------------------------------------------------


def batches(cases: list[Case], size: int, rng: random.Random) -> list[list[int]]:
    """Indexes of ``cases`` grouped per (domain, label), shuffled, cut into job-sized batches."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        groups[(case.domain, case.label)].append(i)
    out = []
    for key in sorted(groups):
        idx = groups[key]
        rng.shuffle(idx)
        out += [idx[s:s + size] for s in range(0, len(idx), size)]
    return out


def run_baseline(store: GraphStore, cases: list[Case], plan: list[list[int]]) -> list[tuple[list[str], bool]]:
    results: list[tuple[list[str], bool]] = [([], False)] * len(cases)
    for label in (schema.ENTITY, schema.ITEM):
        store._execute(cypher.render("bench_resolution_name_index", index=f"bench_{label.lower()}_name", label=label))
    for batch in plan:
        label = cases[batch[0]].label
        rows = [{"i": i, "name": cases[i].name, "id": f"baseline:{i}"} for i in batch]
        for row in store._execute(cypher.render("bench_resolution_exact_merge", label=label), rows=rows):
            ids = sorted(row["ids"])
            results[row["i"]] = (ids, f"baseline:{row['i']}" in ids)
    for label in (schema.ENTITY, schema.ITEM):
        while store._execute(cypher.render("bench_resolution_drop_baseline", label=label), limit=5000)[0]["deleted"]:
            pass
    return results


def run_kgforge(store: GraphStore, cases: list[Case], plan: list[list[int]], encoder: TextEncoder) -> list[tuple[list[str], bool]]:
    results: list[tuple[list[str], bool]] = [([], False)] * len(cases)
    for n, batch in enumerate(plan):
        first = cases[batch[0]]
        resolver = EntityResolver(store, domain=first.domain, label=first.label, encoder=encoder)
        result = resolver.run([Candidate(name=cases[i].name, type=cases[i].type) for i in batch],
                              source="bench", job_id=f"bench-{n}")
        for i, resolution in zip(batch, result.resolutions):
            results[i] = ([resolution.node_id], resolution.created)
        if n % 10 == 0:
            console.print(f"  kgforge batch {n + 1}/{len(plan)}")
    return results


def score(cases: list[Case], plan: list[list[int]], results: list[tuple[list[str], bool]]) -> dict:
    owner: dict[str, str] = {}  # created node -> the entity it was created for
    has_node: set[str] = set()  # entities that have a node (imported or created)
    totals: Counter = Counter()
    by_kind: dict[str, Counter] = defaultdict(Counter)
    by_domain: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list] = defaultdict(list)
    for batch in plan:
        created_now = []
        for i in batch:  # a batch is one job: its new nodes exist for all of its cases
            ids, created = results[i]
            if created:
                created_now.append(i)
        for i in created_now:
            node = results[i][0][0]
            truth = cases[i].truth
            if truth in has_node or not truth.startswith("absent:"):
                outcome = "duplicate"
            else:
                outcome = "correct_new"
                has_node.add(truth)
            owner.setdefault(node, truth)
            totals[outcome] += 1
            by_kind[cases[i].kind][outcome] += 1
            by_domain[cases[i].domain][outcome] += 1
            if outcome == "duplicate" and len(examples["duplicate"]) < 8:
                examples["duplicate"].append([cases[i].domain, cases[i].name, truth])
        for i in batch:
            ids, created = results[i]
            if created:
                continue
            landed = {owner.get(x, x) for x in ids}
            outcome = "correct_merge" if landed == {cases[i].truth} else "wrong_merge"
            totals[outcome] += 1
            by_kind[cases[i].kind][outcome] += 1
            by_domain[cases[i].domain][outcome] += 1
            if outcome == "wrong_merge" and len(examples["wrong_merge"]) < 12:
                examples["wrong_merge"].append([cases[i].domain, cases[i].name, cases[i].type, cases[i].truth,
                                                sorted(ids)[:3]])
    merges = totals["correct_merge"] + totals["wrong_merge"]
    positives = [i for i, c in enumerate(cases) if not c.truth.startswith("absent:")]
    return {
        "cases": len(cases), "variant_cases": len(positives),
        "duplicates": totals["duplicate"],
        "duplicates_on_variants": sum(by_kind[k]["duplicate"] for k in by_kind
                                      if k not in {"hard_negative", "cross_domain", "type_homonym"}),
        "wrong_merges": totals["wrong_merge"], "correct_merges": totals["correct_merge"],
        "correct_new": totals["correct_new"],
        "merge_precision": totals["correct_merge"] / merges if merges else None,
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "by_domain": {k: dict(v) for k, v in sorted(by_domain.items())},
        "examples": dict(examples),
    }


def git_hash() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Settings().data_dir)
    parser.add_argument("--per-domain", type=int, default=400, help="varied entities per KG domain (UMLS: all)")
    parser.add_argument("--items-per-domain", type=int, default=250, help="varied products per item domain")
    parser.add_argument("--batch", type=int, default=100, help="cases per resolver run (one job)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "resolution.json")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.perf_counter()

    datasets, cases, excluded = build(args.data_dir, args.per_domain, args.items_per_domain, rng)
    console.print(f"{len(cases):,} cases ({sum(not c.truth.startswith('absent:') for c in cases):,} variants of "
                  f"imported entities); excluded: {excluded}")
    plan = batches(cases, args.batch, rng)
    timings: dict[str, float] = {}
    encoder = TextEncoder()
    with tempfile.TemporaryDirectory(prefix="kgforge-bench-resolution-") as home:
        settings = Settings(home=Path(home), graph_bolt_port=free_port(), graph_http_port=free_port(),
                            graph_password=None, graph_uri=None)
        db = EmbeddedDatabase(settings)
        db.start()
        try:
            with GraphStore.from_settings(settings) as store:
                store.setup_schema()
                t = time.perf_counter()
                imported = {}
                for name, ds in datasets.items():
                    report = import_dataset(store, ds)
                    imported[name] = report.nodes.get("Entity", 0) + report.nodes.get("Item", 0)
                    console.print(f"  imported {name}: {imported[name]:,} nodes")
                timings["import_s"] = time.perf_counter() - t
                t = time.perf_counter()
                aliases = {name: EntityResolver(store, domain=name, label=schema.ITEM if name in ITEM_DOMAINS
                                                else schema.ENTITY).index_name_aliases() for name in datasets}
                timings["index_aliases_s"] = time.perf_counter() - t
                console.print(f"  aliases the names spell out: {aliases}")
                t = time.perf_counter()
                baseline = run_baseline(store, cases, plan)
                timings["baseline_s"] = time.perf_counter() - t
                t = time.perf_counter()
                kgforge = run_kgforge(store, cases, plan, encoder)
                timings["kgforge_s"] = time.perf_counter() - t
        finally:
            db.stop()

    scores = {"kgforge": score(cases, plan, kgforge), "exact_name_merge": score(cases, plan, baseline)}
    kinds = Counter(c.kind for c in cases)
    report = {
        "benchmark": "resolution", "seed": args.seed, "per_domain": args.per_domain,
        "items_per_domain": args.items_per_domain, "batch": args.batch, "imported_nodes": imported,
        "aliases_indexed": aliases, "excluded": excluded, "cases_by_kind": dict(sorted(kinds.items())),
        "cases_by_domain": dict(sorted(Counter(c.domain for c in cases).items())),
        "results": scores, "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "total_s": round(time.perf_counter() - started, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "git": git_hash(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    table = Table(title=f"entity resolution: {len(cases):,} cases, {report['results']['kgforge']['variant_cases']:,} "
                        "variants of imported entities")
    for col in ("method", "duplicates (variants)", "duplicates (all)", "wrong merges", "correct merges",
                "merge precision", "seconds"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for method, key in (("kgforge EntityResolver", "kgforge"), ("exact-name MERGE", "exact_name_merge")):
        s = scores[key]
        precision = f"{s['merge_precision']:.3f}" if s["merge_precision"] is not None else "-"
        seconds = timings["kgforge_s" if key == "kgforge" else "baseline_s"]
        table.add_row(method, f"{s['duplicates_on_variants']:,}", f"{s['duplicates']:,}", f"{s['wrong_merges']:,}",
                      f"{s['correct_merges']:,}", precision, f"{seconds:.0f}")
    console.print(table)
    kinds_table = Table(title="by kind: duplicates / wrong merges (kgforge | exact-name MERGE)")
    for col in ("kind", "cases", "kgforge dup", "kgforge wrong", "MERGE dup", "MERGE wrong"):
        kinds_table.add_column(col, justify="right" if col != "kind" else "left")
    for kind, n in sorted(kinds.items()):
        a, b = scores["kgforge"]["by_kind"].get(kind, {}), scores["exact_name_merge"]["by_kind"].get(kind, {})
        kinds_table.add_row(kind, f"{n:,}", str(a.get("duplicate", 0)), str(a.get("wrong_merge", 0)),
                            str(b.get("duplicate", 0)), str(b.get("wrong_merge", 0)))
    console.print(kinds_table)
    for example in scores["kgforge"]["examples"].get("wrong_merge", [])[:6]:
        console.print(f"  kgforge wrong merge: {example}")
    console.print(f"saved {args.out} ({report['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
