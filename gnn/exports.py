"""Export an embedding set for other tools: ``.npy`` + ids, Parquet, RecBole atomic files.

=================  ===========================================================================
``npy``            ``<stem>.npy`` (float32 ``[n, d]``, ``numpy.load``) and ``<stem>.ids.txt``
                   (one node id per line, row order; ids never hold tabs or line breaks)
``parquet``        ``<stem>.parquet``: ``node_id`` (string) and ``vector``
                   (``fixed_size_list<float32>[d]``), the set's metadata as JSON under the
                   schema metadata key ``kgforge``
``recbole``        ``<dataset>/<dataset>.ent`` and ``<dataset>/<dataset>.link``, plus
                   ``<dataset>/kgforge-recbole.yaml`` with the settings that load them
=================  ===========================================================================

RecBole format (checked against the documentation of **RecBole 1.2.1**,
``docs/source/user_guide/data/atomic_files.rst`` "Additional Atomic Files", and the GRU4RecKG
model page; **loaded by RecBole 1.2.1's CKE and KGCN** in the benchmark environment
``benchmarks/.venv-rec`` (``benchmarks/rec_env.sh``): a small exported set plus a tiny ``.inter`` and
``.kg``, all 49 preloaded vectors equal to the exported ones, one training batch with a finite loss;
KGAT could not be tried, it needs ``dgl``, which has no release for torch 2.13):

- Atomic files are tab-separated with one header row of ``name:type`` fields; ``float_seq``
  values are separated by single spaces (RecBole's default ``seq_separator``).
- ``<dataset>.ent``: ``ent_id:token<TAB>ent_emb:float_seq``, one row per node of the set; the
  entity token is the kgforge node id (``umls:virus``, ``amazon:B00TNNWMXI``); floats are written
  with 9 significant digits, so float32 values read back exactly.
- ``<dataset>.link``: ``item_id:token<TAB>entity_id:token``, one row per *item* node of the set
  (``schema.label_for_key`` says Item), linking the recommender's item token to the entity. The
  item token is the native id by default (the ASIN of ``amazon:<ASIN>``, the id of
  ``<dataset>:item:<id>``); pass ``item_tokens`` (e.g. :func:`item_tokens_from_file` on a
  ``Scientific.item2index``) when the ``.inter`` files use other tokens.
- RecBole loads the embeddings with ``additional_feat_suffix: [ent]``,
  ``load_col: {ent: [ent_id, ent_emb]}``, ``alias_of_entity_id: [ent_id]`` and
  ``preload_weight: {ent_id: ent_emb}`` (what ``kgforge-recbole.yaml`` holds). A knowledge-aware
  model (KGAT, CKE, KGCN, ...) also needs the dataset's ``.inter`` and ``.kg`` files, which this
  export does not write (they are the recommender's data and the graph's triples).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gnn.store import EmbeddingSet
from kg_builder.errors import InvalidInputError

EXPORT_FORMATS = ("npy", "parquet", "recbole")
RECBOLE_VERSION = "1.2.1"
ENT_HEADER = "ent_id:token\tent_emb:float_seq"
LINK_HEADER = "item_id:token\tentity_id:token"


def default_stem(embedding_set: EmbeddingSet) -> str:
    return f"{embedding_set.name}.v{embedding_set.version}"


def export_npy(embedding_set: EmbeddingSet, out_dir: Path, *, stem: str | None = None) -> list[Path]:
    """Write ``<stem>.npy`` and ``<stem>.ids.txt``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or default_stem(embedding_set)
    vectors_path, ids_path = out_dir / f"{stem}.npy", out_dir / f"{stem}.ids.txt"
    np.save(vectors_path, np.asarray(embedding_set.vectors, dtype=np.float32))
    ids_path.write_text("".join(f"{node}\n" for node in embedding_set.node_ids), encoding="utf-8")
    return [vectors_path, ids_path]


def export_parquet(embedding_set: EmbeddingSet, out_dir: Path, *, stem: str | None = None) -> list[Path]:
    """Write ``<stem>.parquet`` (``node_id``, ``vector`` as a fixed-size float32 list)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem or default_stem(embedding_set)}.parquet"
    vectors = np.ascontiguousarray(embedding_set.vectors, dtype=np.float32)
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    column = pa.FixedSizeListArray.from_arrays(flat, embedding_set.dimension)
    table = pa.table({"node_id": pa.array(embedding_set.node_ids, type=pa.string()), "vector": column})
    table = table.replace_schema_metadata({"kgforge": embedding_set.meta.model_dump_json()})
    pq.write_table(table, path)
    return [path]


def read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    """The node ids and float32 ``[n, d]`` vectors of a Parquet export."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    column = table.column("vector").combine_chunks()
    dimension = column.type.list_size
    vectors = column.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dimension)
    return table.column("node_id").to_pylist(), vectors


def default_item_token(node_id: str) -> str | None:
    """The recommender's item token of an item node (ASIN, or the dataset's item id), else None."""
    from kg_builder.graphdb import schema

    if schema.label_for_key(node_id) != schema.ITEM:
        return None
    if node_id.startswith("amazon:"):
        return node_id.removeprefix("amazon:")
    return node_id.split(":", 2)[2]


def item_tokens_from_file(path: Path, *, node_prefix: str = "amazon:") -> dict[str, str]:
    """Node id -> item token from a ``KEY<TAB>TOKEN`` file such as ``Scientific.item2index``
    (``B00TNNWMXI<TAB>0`` maps ``amazon:B00TNNWMXI`` to ``0``). A header row with ``:token`` is skipped."""
    tokens: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or (number == 1 and ":token" in line):
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise InvalidInputError("item_tokens", f"{path}:{number} is not KEY<TAB>TOKEN: {line[:80]!r}")
        tokens[node_prefix + parts[0].strip()] = parts[1].strip()
    return tokens


def export_recbole(embedding_set: EmbeddingSet, out_dir: Path, *, dataset: str,
                   item_tokens: Mapping[str, str] | None = None) -> list[Path]:
    """Write ``<out_dir>/<dataset>/<dataset>.ent``, ``.link`` and ``kgforge-recbole.yaml``.

    Args:
        dataset: RecBole's dataset name (the folder and file stem), e.g. ``Scientific``.
        item_tokens: node id -> item token for the ``.link`` file; default :func:`default_item_token`
            for every item node. Nodes without a token get no link row.
    """
    if not dataset or any(c in dataset for c in "/\\\t\n") or dataset.startswith("."):
        raise InvalidInputError("dataset", f"{dataset!r} is not a RecBole dataset name (a plain folder name)")
    folder = Path(out_dir) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    ent, link, config = folder / f"{dataset}.ent", folder / f"{dataset}.link", folder / "kgforge-recbole.yaml"
    vectors = np.asarray(embedding_set.vectors, dtype=np.float32)
    with ent.open("w", encoding="utf-8", newline="\n") as out:
        out.write(ENT_HEADER + "\n")
        for node, row in zip(embedding_set.node_ids, vectors):
            out.write(node + "\t" + " ".join(f"{v:.9g}" for v in row.tolist()) + "\n")
    linked = 0
    with link.open("w", encoding="utf-8", newline="\n") as out:
        out.write(LINK_HEADER + "\n")
        for node in embedding_set.node_ids:
            token = item_tokens.get(node) if item_tokens is not None else default_item_token(node)
            if token is None:
                continue
            if not token or any(c in token for c in "\t\r\n"):
                raise InvalidInputError("item_tokens", f"{token!r} (for {node!r}) is not a RecBole token")
            out.write(f"{token}\t{node}\n")
            linked += 1
    config.write_text(
        f"# Load the kgforge embedding set {embedding_set.name!r} v{embedding_set.version} "
        f"({embedding_set.dimension} dims, {len(embedding_set)} entities, {linked} linked items) in "
        f"RecBole {RECBOLE_VERSION}.\n"
        "# Merge with the dataset's own settings (.inter and .kg files, load_col for them).\n"
        "additional_feat_suffix: [ent]\n"
        "load_col:\n"
        "  link: [item_id, entity_id]\n"
        "  ent: [ent_id, ent_emb]\n"
        "alias_of_entity_id: [ent_id]\n"
        "preload_weight:\n"
        "  ent_id: ent_emb\n"
        f"# kgforge: {json.dumps({'set': embedding_set.name, 'version': embedding_set.version})}\n",
        encoding="utf-8",
    )
    return [ent, link, config]


def read_recbole_ent(path: Path) -> tuple[list[str], np.ndarray]:
    """The entity tokens and float32 vectors of a ``.ent`` file (the header must be :data:`ENT_HEADER`)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != ENT_HEADER:
        raise InvalidInputError("path", f"{path} does not start with the header {ENT_HEADER!r}")
    ids, rows = [], []
    for line in lines[1:]:
        node, floats = line.split("\t")
        ids.append(node)
        rows.append(np.array(floats.split(" "), dtype=np.float32))
    return ids, np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def export_set(embedding_set: EmbeddingSet, fmt: str, out_dir: Path, *, dataset: str | None = None,
               item_tokens: Mapping[str, str] | None = None) -> list[Path]:
    """Export in ``fmt`` (one of :data:`EXPORT_FORMATS`); returns the files written.

    ``dataset`` (RecBole only) defaults to the set's domain, else its name.
    """
    if fmt == "npy":
        return export_npy(embedding_set, out_dir)
    if fmt == "parquet":
        return export_parquet(embedding_set, out_dir)
    if fmt == "recbole":
        return export_recbole(embedding_set, out_dir, dataset=dataset or embedding_set.meta.domain or embedding_set.name,
                              item_tokens=item_tokens)
    raise InvalidInputError("format", f"{fmt!r} is not an export format; use one of {', '.join(EXPORT_FORMATS)}")


__all__ = [
    "ENT_HEADER", "EXPORT_FORMATS", "LINK_HEADER", "RECBOLE_VERSION", "default_item_token", "export_npy",
    "export_parquet", "export_recbole", "export_set", "item_tokens_from_file", "read_parquet", "read_recbole_ent",
]
