"""GRU4Rec (Hidasi et al. 2016; Tan et al. 2016's improvements) as RecBole 1.2 builds it.

Defaults are RecBole's ``GRU4Rec.yaml``: embedding 64, one GRU layer of 128 units without bias,
dropout 0.3 on the item embeddings, a dense layer back to 64, CE loss over all items. The GRU is
causal by construction, so position ``t``'s output sees only items ``<= t``.

Shapes:
    item_id_list [B, L] -> encode [B, L, d] -> forward/hidden [B, d]; full_sort_predict [B, n_items]
"""

from __future__ import annotations

from torch import Tensor, nn

from . import register
from .base import SequentialRecommender, init_recbole_weights


@register("gru4rec")
class GRU4Rec(SequentialRecommender):
    name = "gru4rec"

    def __init__(self, n_items: int, *, hidden_size: int = 64, max_len: int = 50, gru_size: int = 128,
                 num_layers: int = 1, dropout: float = 0.3, knowledge: Tensor | None = None, graph_scores: Tensor | None = None):
        super().__init__(n_items, hidden_size=hidden_size, max_len=max_len, knowledge=knowledge,
                         graph_scores=graph_scores)
        self.gru_size, self.num_layers, self.dropout_prob = gru_size, num_layers, dropout
        self.emb_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden_size, gru_size, num_layers=num_layers, bias=False, batch_first=True)
        self.dense = nn.Linear(gru_size, hidden_size)
        self.apply(init_recbole_weights)
        for name, weight in self.gru.named_parameters():  # RecBole: xavier for the GRU's matrices
            if "weight" in name:
                nn.init.xavier_uniform_(weight)
        self._add_knowledge_projection()

    def encode(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        output, _ = self.gru(self.emb_dropout(self.embed_items(item_seq)))
        return self.dense(output)

    def config(self) -> dict:
        return {**super().config(), "gru_size": self.gru_size, "num_layers": self.num_layers,
                "dropout": self.dropout_prob}
