"""Graph encoders for kgforge's product graphs, looked up by name (``MODELS``, :func:`build_model`).

Every encoder maps a ``HeteroData`` batch (:mod:`gnn.sampling`: ``n_id`` per node type, ``x`` for
items, ``edge_index`` per edge type) to embeddings of every node type, ``dim`` = 64 by default.

Input layer (shared by all): ``x0[item] = Linear(text features) + ID embedding``; other node types
(users, categories, brands) have no text, so their input is the ID embedding alone. The ID
embeddings start small (std 0.01) so that they supplement the text projection rather than replace
it. The text projection and the convolutions are the **shared** weights (:meth:`GraphEncoder.shared_state_dict`)
that transfer between domains; ID embeddings are per graph and are re-created for a new target.

Output: the mean of the layer outputs ``[x0, x1, ..., xL]`` (LightGCN's layer combination), for
every model, so a model never loses the text signal of ``x0``.

Registered encoders (each was checked to run forward and backward without ``torch-sparse`` /
``pyg-lib``: PyG falls back to torch scatter):

* ``hetero_sage``: per edge type a ``SAGEConv`` (mean aggregation), summed per destination type
  (``HeteroConv``), ReLU between layers.
* ``rgcn``: the graph flattened to one node set, ``RGCNConv`` with one weight per edge type (basis
  decomposition with ``num_bases`` = 4), mean aggregation, ReLU between layers.
* ``lightgcn``: parameter-free ``LGConv`` propagation (symmetric normalisation) over all edge
  types as one graph; only the input layer learns. The only encoder that reads edge weights
  (``edge_weight`` on an edge type: generated triples weighted by their confidence,
  :func:`gnn.export.add_generated_edges`); ``hetero_sage`` and ``rgcn`` use such edges unweighted.

Dev comparison (Scientific valid NDCG@10, scratch, random text projection, 45 s of training, seed
0, one thread): ``hetero_sage`` 0.0475 (lr 0.005) / 0.0516 (lr 0.02), ``lightgcn`` 0.0558
(0.0596 with L2-normalised embeddings); ``lightgcn`` is :mod:`gnn.evaluate`'s default. ``rgcn`` was
not measured on real data (it runs; the tests cover it).

Shapes:
    forward(batch) -> dict[node_type, Tensor [batch[node_type].num_nodes, dim]]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, LGConv, RGCNConv, SAGEConv

from kg_builder.errors import InvalidInputError, KGForgeError

from .export import EDGE_TYPES, NODE_TYPES

MODELS: dict[str, type[GraphEncoder]] = {}
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make an encoder available under ``name``."""
    def wrap(cls: type) -> type:
        MODELS[name] = cls
        cls.name = name
        return cls
    return wrap


def build_model(name: str, **kwargs: Any) -> GraphEncoder:
    """The encoder registered as ``name``; on a miss the error lists the valid names."""
    if name not in MODELS:
        raise InvalidInputError("model", f"unknown GNN model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name](**kwargs)


class GraphEncoder(nn.Module):
    """Base class: the input layer, layer combination, shared weights and save/load.

    Args:
        num_nodes: nodes per node type of the graph the ID embeddings are for.
        text_dim: width of ``data["item"].x`` (0: no text features).
        dim: embedding width.
        num_layers: message-passing layers.
    """

    name = "base"

    def __init__(self, num_nodes: dict[str, int], *, text_dim: int = 384, dim: int = 64, num_layers: int = 2,
                 text_hidden: int = 0):
        super().__init__()
        if dim < 1 or num_layers < 0:
            raise InvalidInputError("dim", f"dim must be >= 1 and num_layers >= 0, got {dim}, {num_layers}")
        if text_hidden < 0:
            raise InvalidInputError("text_hidden", f"must be >= 0, got {text_hidden}")
        self.num_nodes = {nt: int(num_nodes.get(nt, 0)) for nt in NODE_TYPES}
        self.text_dim, self.dim, self.num_layers = int(text_dim), int(dim), int(num_layers)
        self.text_hidden = int(text_hidden) if text_dim > 0 else 0
        self.text_proj = nn.Linear(text_dim, dim) if text_dim > 0 else None
        # Optional non-linear text tower beside the linear projection (its output layer starts at 0, so
        # step 0 is the linear/whitened input): more shared capacity for pretraining to transfer.
        self.text_mlp = nn.Sequential(nn.Linear(text_dim, self.text_hidden), nn.GELU(),
                                      nn.Linear(self.text_hidden, dim)) if self.text_hidden else None
        self.id_emb = nn.ModuleDict({nt: nn.Embedding(max(n, 1), dim) for nt, n in self.num_nodes.items()})
        self.build_layers()
        self.reset_parameters()

    # --- subclasses ------------------------------------------------------------------------------
    def build_layers(self) -> None:
        raise NotImplementedError

    def propagate(self, x: dict[str, Tensor], edge_index: dict[tuple[str, str, str], Tensor],
                  edge_weight: dict[tuple[str, str, str], Tensor] | None = None) -> list[dict[str, Tensor]]:
        """The outputs of each layer after the input (``num_layers`` dicts). ``edge_weight``: per-edge
        weights of some edge types (the others weigh 1); a model that cannot weigh edges ignores it."""
        raise NotImplementedError

    # --- common ----------------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        if self.text_proj is not None:
            self.text_proj.reset_parameters()
        if self.text_mlp is not None:
            self.text_mlp[0].reset_parameters()
            nn.init.zeros_(self.text_mlp[2].weight)
            nn.init.zeros_(self.text_mlp[2].bias)
        self.reset_id_embeddings()
        for module in self.modules():
            if module is not self and module is not self.text_proj and hasattr(module, "reset_parameters") \
                    and not isinstance(module, nn.Embedding | nn.Linear):
                module.reset_parameters()

    @torch.no_grad()
    def init_text_projection(self, features: Tensor) -> None:
        """Start the text projection as BERT-whitening of ``features`` to ``dim`` dims, scaled by
        ``1/sqrt(dim)`` (rows of norm about 1): at step 0 the item input is already the best text
        geometry of issue 10 instead of a random projection. Fitted on item texts only, no
        interactions, so nothing of a target leaks in."""
        from kg_builder.products.titles import Whitening

        if self.text_proj is None or features.shape[0] <= self.dim or self.text_dim < self.dim \
                or not torch.isfinite(features).all():
            return  # too few items or dims to whiten, or bad input that training's NaN guard reports
        whitening = Whitening(self.dim).fit(features.detach().cpu().numpy())
        scale = float(1.0 / np.sqrt(self.dim))
        W = torch.from_numpy(whitening.W * scale)                      # [text_dim, dim]
        self.text_proj.weight.copy_(W.t())
        self.text_proj.bias.copy_(-(torch.from_numpy(whitening.mu) @ W).squeeze(0))

    def reset_id_embeddings(self) -> None:
        for emb in self.id_emb.values():
            nn.init.normal_(emb.weight, std=0.01)

    def inputs(self, batch: HeteroData) -> dict[str, Tensor]:
        x = {}
        for nt in NODE_TYPES:
            if nt not in batch.node_types or batch[nt].num_nodes == 0:
                continue
            x[nt] = self.id_emb[nt](batch[nt].n_id)
        if self.text_proj is not None and "item" in x:
            x["item"] = x["item"] + self.text_proj(batch["item"].x)
            if self.text_mlp is not None:
                x["item"] = x["item"] + self.text_mlp(batch["item"].x)
        return x

    def forward(self, batch: HeteroData) -> dict[str, Tensor]:
        x0 = self.inputs(batch)
        edge_index = {et: batch[et].edge_index for et in batch.edge_types
                      if et in EDGE_TYPES and batch[et].edge_index.shape[1] > 0 and et[0] in x0 and et[2] in x0}
        # Per-edge weights where the graph has them (generated triples weighted by their confidence,
        # gnn.export.add_generated_edges); only LightGCN's propagation reads them.
        edge_weight = {et: batch[et].edge_weight for et in edge_index if "edge_weight" in batch[et]}
        layers = self.propagate(x0, edge_index, edge_weight)
        out = {}
        for nt, h in x0.items():
            stack = [h] + [layer.get(nt, h) for layer in layers]
            out[nt] = torch.stack(stack).mean(0)
        return out

    def shared_state_dict(self) -> dict[str, Tensor]:
        """The weights that transfer across domains: everything except the ID embeddings."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("id_emb.")}

    def load_shared(self, state: dict[str, Tensor]) -> None:
        """Copy shared weights (text projection, convolutions) from another model of this kind."""
        shared = {k: v for k, v in state.items() if not k.startswith("id_emb.")}
        missing, unexpected = self.load_state_dict(shared, strict=False)
        missing = [k for k in missing if not k.startswith("id_emb.")]
        if missing or unexpected:
            raise InvalidInputError("pretrained_state", f"does not fit {self.name}: missing {missing}, "
                                    f"unexpected {unexpected} (pretrain with the same model, dim and layers)")

    @property
    def config(self) -> dict[str, Any]:
        return {"model": self.name, "num_nodes": self.num_nodes, "text_dim": self.text_dim, "dim": self.dim,
                "num_layers": self.num_layers, "text_hidden": self.text_hidden}

    def save(self, folder: Path | str) -> Path:
        """``config.json`` + ``model.safetensors`` in ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(self.config, indent=2))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> GraphEncoder:
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / CONFIG_FILE).exists():
            raise KGForgeError(f"no {CONFIG_FILE} in {folder}: not a saved GNN model folder")
        config = json.loads((folder / CONFIG_FILE).read_text())
        model = build_model(config.pop("model"), **config)
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return model


def _homogeneous_weights(edge_index: dict[tuple[str, str, str], Tensor],
                         weights: dict[tuple[str, str, str], Tensor]) -> Tensor | None:
    """The edge weights in :func:`_homogeneous`'s edge order (1.0 where an edge type has none), or
    None when no edge type has weights (the unweighted propagation, bit for bit)."""
    if not any(et in weights for et in edge_index):
        return None
    return torch.cat([weights[et].float() if et in weights else torch.ones(ei.shape[1])
                      for et, ei in edge_index.items()])


def _homogeneous(x: dict[str, Tensor], edge_index: dict[tuple[str, str, str], Tensor]):
    """Node-type dicts as one node set: (x [N, d], edge_index [2, E], edge_type [E], offsets)."""
    offsets, start = {}, 0
    for nt in NODE_TYPES:
        if nt in x:
            offsets[nt] = start
            start += x[nt].shape[0]
    xs = torch.cat([x[nt] for nt in offsets])
    parts, types = [], []
    for et, ei in edge_index.items():
        parts.append(ei + torch.tensor([[offsets[et[0]]], [offsets[et[2]]]]))
        types.append(torch.full((ei.shape[1],), EDGE_TYPES.index(et), dtype=torch.long))
    if parts:
        return xs, torch.cat(parts, 1), torch.cat(types), offsets
    return xs, torch.empty((2, 0), dtype=torch.long), torch.empty(0, dtype=torch.long), offsets


def _split(h: Tensor, x: dict[str, Tensor], offsets: dict[str, int]) -> dict[str, Tensor]:
    return {nt: h[start:start + x[nt].shape[0]] for nt, start in offsets.items()}


@register("hetero_sage")
class HeteroSAGE(GraphEncoder):
    """GraphSAGE per edge type (``HeteroConv`` of ``SAGEConv``), summed per destination type."""

    def build_layers(self) -> None:
        self.convs = nn.ModuleList(
            HeteroConv({et: SAGEConv((self.dim, self.dim), self.dim, aggr="mean") for et in EDGE_TYPES}, aggr="sum")
            for _ in range(self.num_layers))

    def propagate(self, x, edge_index, edge_weight=None):  # SAGEConv/RGCNConv take no edge weights
        layers = []
        for i, conv in enumerate(self.convs):
            out = conv(x, edge_index)
            x = {nt: (torch.relu(out[nt]) if i < self.num_layers - 1 else out[nt]) if nt in out else h
                 for nt, h in x.items()}
            layers.append(x)
        return layers


@register("rgcn")
class RGCN(GraphEncoder):
    """R-GCN (``RGCNConv``) over the flattened graph, one relation per edge type, 4 bases."""

    def build_layers(self) -> None:
        self.convs = nn.ModuleList(RGCNConv(self.dim, self.dim, num_relations=len(EDGE_TYPES), num_bases=4,
                                            aggr="mean") for _ in range(self.num_layers))

    def propagate(self, x, edge_index, edge_weight=None):  # SAGEConv/RGCNConv take no edge weights
        h, ei, et, offsets = _homogeneous(x, edge_index)
        layers = []
        for i, conv in enumerate(self.convs):
            h = conv(h, ei, et)
            if i < self.num_layers - 1:
                h = torch.relu(h)
            layers.append(_split(h, x, offsets))
        return layers


@register("lightgcn")
class LightGCN(GraphEncoder):
    """LightGCN propagation (``LGConv``, no weights, no non-linearity) over all edge types as one graph."""

    def build_layers(self) -> None:
        self.convs = nn.ModuleList(LGConv() for _ in range(self.num_layers))

    def propagate(self, x, edge_index, edge_weight=None):
        h, ei, _, offsets = _homogeneous(x, edge_index)
        weight = _homogeneous_weights(edge_index, edge_weight or {})
        layers = []
        for conv in self.convs:
            h = conv(h, ei, weight)
            layers.append(_split(h, x, offsets))
        return layers


__all__ = ["GraphEncoder", "HeteroSAGE", "LightGCN", "MODELS", "RGCN", "build_model", "register"]
