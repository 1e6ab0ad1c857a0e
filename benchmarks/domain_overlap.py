"""How much of the transfer target could shared brand nodes reach? (issue 11, a measurement, not a benchmark)

Cross-domain transfer through the graph needs nodes the domains share. The exported graphs
(:mod:`gnn.export`) share none: Games has titles only (no brand, no category), Office has numeric
brand and category ids (the brand *name* is only the tail of its text), and Scientific has brand
names and category paths. This script counts the Scientific brand names that also occur in Office's
item texts, as whole words after the graph's own name normalisation
(:func:`kg_builder.graphdb.schema.normalize_name`; a loose, generous match: it also counts
``generic`` and ``unknown``), and the Scientific items those brands cover: the most that shared brand nodes
could link to a source domain.

    python benchmarks/domain_overlap.py --data-dir ../shared/data   # prints a table, writes results/domain_overlap.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from kg_builder.datasets import load_dataset
from kg_builder.graphdb.schema import normalize_name

RESULTS = Path(__file__).parent / "results" / "domain_overlap.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    target = load_dataset("amazon18_scientific", data_dir=args.data_dir)
    office = load_dataset("amazon14_office", data_dir=args.data_dir)
    games = load_dataset("amazon18_games", data_dir=args.data_dir)
    brands = Counter(name for item in target.items if item.brand and (name := normalize_name(item.brand)))
    office_text = "".join(f" {normalize_name(item.title or '')} " for item in office.items)
    shared = {brand: n for brand, n in brands.items() if len(brand) > 2 and f" {brand} " in office_text}
    result = {
        "target": {"dataset": "amazon18_scientific", "items": len(target.items), "brand_names": len(brands),
                   "items_with_brand": sum(brands.values())},
        "office": {"items": len(office.items), "brand_names_given": False,
                   "note": "brand and category are numeric ids; the name is only inside the item text"},
        "games": {"items": len(games.items), "items_with_brand": sum(1 for i in games.items if i.brand),
                  "items_with_category": sum(1 for i in games.items if i.categories or i.category_ids)},
        "shared_with_office": {"brand_names": len(shared), "target_items_covered": sum(shared.values()),
                               "target_item_share": round(sum(shared.values()) / len(target.items), 4),
                               "top": sorted(shared.items(), key=lambda kv: -kv[1])[:15]},
        "match": "Scientific brand name (normalize_name, > 2 characters) found as whole words in an Office item text (normalize_name)",
    }
    print(f"Scientific: {len(target.items)} items, {len(brands)} brand names")
    print(f"Games: {result['games']['items_with_brand']} items with a brand, "
          f"{result['games']['items_with_category']} with a category")
    print(f"Shared with Office's texts: {len(shared)} brand names covering {sum(shared.values())} Scientific items "
          f"({result['shared_with_office']['target_item_share']:.1%})")
    for brand, n in result["shared_with_office"]["top"]:
        print(f"  {brand:<32} {n}")
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
