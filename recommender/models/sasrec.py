"""SASRec (Kang & McAuley 2018) as RecBole 1.2 builds it: learned positions, post-LN Transformer
layers with GELU, causal self-attention, CE loss over all items.

Defaults are RecBole's ``SASRec.yaml``: 2 layers, 2 heads, hidden 64, inner 256, dropout 0.5 on
hidden states and attention, ``layer_norm_eps`` 1e-12, normal(0, 0.02) initialisation, history of
at most 50 items. Right padding needs no key-padding mask: the causal mask already keeps every
real position from seeing the padding after it.

Shapes:
    item_id_list [B, L] -> encode [B, L, d] -> forward/hidden [B, d]; full_sort_predict [B, n_items]
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import register
from .base import SequentialRecommender, init_recbole_weights


@register("sasrec")
class SASRec(SequentialRecommender):
    name = "sasrec"

    def __init__(self, n_items: int, *, hidden_size: int = 64, max_len: int = 50, n_layers: int = 2,
                 n_heads: int = 2, inner_size: int = 256, hidden_dropout: float = 0.5, attn_dropout: float = 0.5,
                 layer_norm_eps: float = 1e-12, knowledge: Tensor | None = None, graph_scores: Tensor | None = None):
        super().__init__(n_items, hidden_size=hidden_size, max_len=max_len, knowledge=knowledge,
                         graph_scores=graph_scores)
        self.n_layers, self.n_heads, self.inner_size = n_layers, n_heads, inner_size
        self.hidden_dropout, self.attn_dropout, self.layer_norm_eps = hidden_dropout, attn_dropout, layer_norm_eps
        self.position_embedding = nn.Embedding(max_len, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(hidden_dropout)
        layer = nn.TransformerEncoderLayer(hidden_size, n_heads, dim_feedforward=inner_size, dropout=hidden_dropout,
                                           activation="gelu", layer_norm_eps=layer_norm_eps, batch_first=True)
        for module in layer.modules():  # RecBole drops attention probabilities at attn_dropout
            if isinstance(module, nn.MultiheadAttention):
                module.dropout = attn_dropout
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.apply(init_recbole_weights)
        for module in self.encoder.modules():  # MultiheadAttention keeps raw Parameters
            if isinstance(module, nn.MultiheadAttention):
                nn.init.normal_(module.in_proj_weight, std=0.02)
                nn.init.zeros_(module.in_proj_bias)
        self._add_knowledge_projection()

    def encode(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        length = item_seq.shape[1]
        positions = torch.arange(length, device=item_seq.device).unsqueeze(0).expand_as(item_seq)
        x = self.dropout(self.layer_norm(self.embed_items(item_seq) + self.position_embedding(positions)))
        causal = torch.triu(torch.full((length, length), float("-inf"), device=item_seq.device), diagonal=1)
        return self.encoder(x, mask=causal, is_causal=True)

    def config(self) -> dict:
        return {**super().config(), "n_layers": self.n_layers, "n_heads": self.n_heads, "inner_size": self.inner_size,
                "hidden_dropout": self.hidden_dropout, "attn_dropout": self.attn_dropout,
                "layer_norm_eps": self.layer_norm_eps}
