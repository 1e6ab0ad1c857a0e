"""Distillation from a teacher into a student, through the trainer's ``extra_loss`` hook.

The teacher is anything with the teacher interface of
:class:`~recommender.teachers.text_teacher.TextTeacher` (same item numbering as the student):
``encode(item_seq, item_seq_len) -> [B, L, D]`` user states at every position,
``item_embeddings() -> [n_items, D]`` semantic item embeddings, ``position_logits(item_seq,
item_seq_len, mask, states) -> [N, n_items]`` its scores at the masked positions (the top-k that
DLLM2Rec distils; :class:`~recommender.teachers.graph_teacher.GraphFusedTeacher` adds the graph's
score there), ``describe()`` what the student's config records about it, and ``temperature``. It runs in
``no_grad`` on each training batch (the same prefixes the student reads), so distillation covers
**every position** of every training sequence, not only the last one.

Methods (``method`` = ``dllm2rec``, ``slmrec`` or ``dllm2rec+slmrec``; weights in :class:`DistillConfig`):

* **DLLM2Rec** (Cui et al., RecSys 2024). *Importance-aware ranking distillation*: at each position
  the teacher's top-``k`` (10) items, history items left out, are targets of a weighted soft
  cross-entropy on the student's softmax over all items,
  ``L_rank = -sum_j w_j log softmax(s)[i_j]``. The weight of the item at rank ``r`` mixes three
  parts, each normalised over the list: **position** ``exp(-r / beta)`` (beta 3), **teacher
  confidence** (the teacher's softmax probability of the item, renormalised over its top-``k``),
  and **teacher-student consistency** (1 where the student's own current top-``k`` also holds
  the item); ``w = (g_p w_p + g_c w_c + g_o w_o) / (g_p + g_c + g_o)`` (each g = 1). The paper
  uses a sigmoid on each score; with students trained by a softmax over all items the softmax
  form is used here (a choice, not measured against the paper's). *Collaborative embedding
  distillation*: a learned projection ``P: D -> d`` (two layers) maps the teacher's semantic item
  embeddings into the student's space, and the student's item table rows of the batch's items
  (targets and teacher top-``k``) are aligned with them by an in-batch InfoNCE loss (temperature
  0.1; a cosine-only loss would let ``P`` collapse). ``L = lambda_rank L_rank + lambda_emb L_emb``.
* **SLMRec** (Xu et al., ICLR 2025). *Feature distillation*: the student's hidden state at every
  position, through a learned projection ``Q: d -> D``, is matched to the teacher's user state by a
  cosine term and an L2 term (``1 - cos(Q h, t)`` + ``||Q h - t||^2``). *Extra supervision*: the
  projected state must also predict the next item among the teacher's item embeddings (CE over
  all items in the teacher's space), and, for students with several layers (SASRec), every
  intermediate layer's output predicts the next item through the student's own item table
  (SLMRec's multiple supervision signals).

The distiller's own parts (``P``, ``Q``) are ``extra_modules`` of the trainer: trained with the
student, never saved with it. A distilled student is an ordinary student (same class, same
weights file), so serving it costs exactly what the plain student costs.

**REKI/KAR** (:class:`HybridExpertAdapter`, :func:`kar_prepare`, :func:`freeze_kar`): the item
knowledge vectors of several sources (the teacher's semantic item embeddings, MiniLM title vectors,
graph embeddings) are concatenated as the student's knowledge matrix, and the student's knowledge
projection is replaced by a hybrid-expert adapter (shared experts on all sources, dedicated experts
per source, a softmax gate over all of them), trained jointly with the student. After training the
adapter's outputs are computed once (:func:`freeze_kar`) and become the knowledge matrix of a plain
student with an identity projection, so the saved model is a plain student. User-side knowledge
(rationale or teacher user vectors) is condensed by the same kind of adapter in
:func:`augment_user_vectors` and stored beside the model; the students as built take item
histories only, so they do not consume the user vectors (see the README's "not done").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kg_builder.errors import InvalidInputError

from .models.base import ITEM_SEQ, ITEM_SEQ_LEN, TARGET_SEQ, SequentialRecommender

METHODS = ("dllm2rec", "slmrec", "dllm2rec+slmrec")
PLANS = ("none", "dllm2rec", "slmrec", "kar", "dllm2rec+slmrec", "kar+dllm2rec+slmrec")


@dataclass
class DistillConfig:
    """Weights and sizes of the distillation terms (the defaults are the ones measured)."""

    top_k: int = 10
    rank_form: str = "softmax"
    beta: float = 3.0
    gamma_position: float = 1.0
    gamma_confidence: float = 1.0
    gamma_consistency: float = 1.0
    lambda_rank: float = 0.5
    lambda_emb: float = 0.1
    emb_temperature: float = 0.1
    lambda_cos: float = 1.0
    lambda_l2: float = 0.1
    lambda_teacher_space: float = 0.2
    lambda_intermediate: float = 0.2


def parse_method(method: str) -> tuple[bool, bool]:
    """``(dllm2rec, slmrec)`` flags of a method name (``+`` joins; order does not matter)."""
    parts = {p.strip().lower() for p in method.split("+") if p.strip()}
    unknown = parts - {"dllm2rec", "slmrec"}
    if not parts or unknown:
        raise InvalidInputError("method", f"unknown distillation method {method!r}; choose one of: {', '.join(METHODS)}")
    return "dllm2rec" in parts, "slmrec" in parts


def parse_plan(method: str) -> set[str]:
    """The parts of a ``kgforge rec distill --method`` value: any of dllm2rec, slmrec, kar (``+`` joins)."""
    parts = {p.strip().lower() for p in method.split("+") if p.strip()}
    if parts == {"none"}:
        return set()
    unknown = parts - {"dllm2rec", "slmrec", "kar"}
    if not parts or unknown:
        raise InvalidInputError("method", f"unknown method {method!r}: dllm2rec, slmrec, kar joined by '+' "
                                          f"(e.g. {', '.join(PLANS[1:])})")
    return parts


def distill_student(*, data, model: str, teacher: nn.Module | None, method: str, knowledge_blocks=None,
                    knowledge_spec: str = "none", config: DistillConfig | None = None, seed: int = 0,
                    **train_kwargs):
    """Train ``model`` on ``data`` with the parts of ``method`` (see the module docstring).

    ``knowledge_blocks`` are the item knowledge parts (:func:`recommender.knowledge.build_knowledge_blocks`):
    concatenated as the usual supplement, or, with ``kar``, condensed by the hybrid-expert adapter
    (one dedicated expert per block) and frozen into a plain student after training.
    Returns the trainer's :class:`~recommender.train.TrainResult` (its config records the method).

    Raises:
        InvalidInputError: an unknown method, no teacher for dllm2rec/slmrec, or kar without knowledge.
    """
    import numpy as np

    from .train import train_student

    parts = parse_plan(method)
    blocks = [np.asarray(b, dtype=np.float32) for b in (knowledge_blocks or [])]
    knowledge = np.concatenate(blocks, axis=1) if blocks else None
    extra = {}
    distiller = None
    if parts & {"dllm2rec", "slmrec"}:
        if teacher is None:
            raise InvalidInputError("teacher", f"method {method!r} needs a teacher")
        hidden = int((train_kwargs.get("model_kwargs") or {}).get("hidden_size", 64))
        distiller = Distiller(teacher, student_dim=hidden, method="+".join(sorted(parts - {"kar"})), config=config)
        extra.update(extra_loss=distiller, extra_modules=[distiller])
    if "kar" in parts:
        if not blocks:
            raise InvalidInputError("knowledge", "kar needs knowledge parts to condense (e.g. text+teacher:<name>)")
        extra["prepare"] = kar_prepare([b.shape[1] for b in blocks])
    result = train_student(data=data, model=model, knowledge=knowledge, knowledge_spec=knowledge_spec, seed=seed,
                           **train_kwargs, **extra)
    if "kar" in parts:
        result.model = freeze_kar(result.model)
        result.config["kar"] = {"sources": [b.shape[1] for b in blocks], "frozen_dim": result.model.hidden_size,
                                "adapter": "2 shared + 1 dedicated expert per source, softmax gate"}
    result.config["method"] = "+".join(p for p in ("kar", "dllm2rec", "slmrec") if p in parts) or "none"
    if distiller is not None:
        result.config["distillation"] = distiller.describe()
        result.metrics["last_distill_terms"] = {k: round(v, 4) for k, v in distiller.last_terms.items()}
    return result


def importance_weights(ranks: Tensor, teacher_probs: Tensor, consistent: Tensor, config: DistillConfig) -> Tensor:
    """DLLM2Rec's weights ``[N, k]`` of each teacher top-k list (rows sum to 1).

    Args:
        ranks: ``[k]`` 0-based positions in the teacher's list.
        teacher_probs: ``[N, k]`` the teacher's softmax probabilities of the listed items.
        consistent: ``[N, k]`` bool, True where the student's own top-k holds the item.
    """
    position = torch.exp(-ranks.float() / config.beta)
    position = (position / position.sum()).expand_as(teacher_probs)
    confidence = teacher_probs / teacher_probs.sum(-1, keepdim=True).clamp(min=1e-12)
    agreement = consistent.float()
    agreement = agreement / agreement.sum(-1, keepdim=True).clamp(min=1.0)
    total = config.gamma_position + config.gamma_confidence + config.gamma_consistency
    weights = (config.gamma_position * position + config.gamma_confidence * confidence
               + config.gamma_consistency * agreement) / total
    return weights / weights.sum(-1, keepdim=True).clamp(min=1e-12)


def student_layers(model: SequentialRecommender, item_seq: Tensor, item_seq_len: Tensor) -> list[Tensor]:
    """The output ``[B, L, d]`` of each of the student's layers (last = :meth:`encode`'s output).

    SASRec's layers are run one by one (the same computation as its ``encode``); other students
    give their ``encode`` output only."""
    from .models.sasrec import SASRec

    if not isinstance(model, SASRec):
        return [model.encode(item_seq, item_seq_len)]
    length = item_seq.shape[1]
    positions = torch.arange(length, device=item_seq.device).unsqueeze(0).expand_as(item_seq)
    x = model.dropout(model.layer_norm(model.embed_items(item_seq) + model.position_embedding(positions)))
    causal = torch.triu(torch.full((length, length), float("-inf"), device=item_seq.device), diagonal=1)
    outputs = []
    for layer in model.encoder.layers:
        x = layer(x, src_mask=causal, is_causal=True)
        outputs.append(x)
    return outputs


class Distiller(nn.Module):
    """``extra_loss`` for :func:`recommender.train.train_student`: DLLM2Rec and/or SLMRec terms.

    Args:
        teacher: the teacher (see the module docstring); frozen, run without gradients.
        student_dim: the student's hidden size ``d``.
        method: ``dllm2rec``, ``slmrec`` or ``dllm2rec+slmrec``.
    """

    def __init__(self, teacher: nn.Module, *, student_dim: int, method: str = "dllm2rec+slmrec",
                 config: DistillConfig | None = None):
        super().__init__()
        self.use_dllm2rec, self.use_slmrec = parse_method(method)
        if config is not None and config.rank_form not in ("softmax", "sigmoid"):
            raise InvalidInputError("rank_form", f"softmax or sigmoid, got {config.rank_form!r}")
        self.method = method
        self.config = config or DistillConfig()
        object.__setattr__(self, "teacher", teacher)  # not a submodule: never trained, never saved here
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher_dim = int(teacher.item_embeddings().shape[1])
        self.item_projection = nn.Sequential(nn.Linear(teacher_dim, student_dim), nn.GELU(),
                                             nn.Linear(student_dim, student_dim)) if self.use_dllm2rec else None
        self.hidden_projection = nn.Linear(student_dim, teacher_dim) if self.use_slmrec else None
        self.last_terms: dict[str, float] = {}

    def forward(self, model: SequentialRecommender, interaction: dict[str, Tensor], loss: Tensor | None = None
                ) -> Tensor:
        return self.loss(model, interaction)

    def loss(self, model: SequentialRecommender, interaction: dict[str, Tensor]) -> Tensor:
        item_seq, item_seq_len = interaction[ITEM_SEQ], interaction[ITEM_SEQ_LEN]
        targets = interaction.get(TARGET_SEQ)
        if targets is None:  # one target per row: the last position only
            mask = torch.zeros_like(item_seq, dtype=torch.bool)
            mask[torch.arange(len(item_seq_len)), (item_seq_len - 1).clamp(min=0)] = True
            targets = torch.zeros_like(item_seq)
            targets[mask] = interaction["item_id"]
        mask = targets > 0
        cfg = self.config
        with torch.no_grad():
            teacher_states = self.teacher.encode(item_seq, item_seq_len)[mask]  # [N, D]
            teacher_items = self.teacher.item_embeddings()
        layers = student_layers(model, item_seq, item_seq_len)
        hidden = layers[-1][mask]  # [N, d]
        table = model.item_embeddings()
        graph = model.graph_score_logits(item_seq, mask)  # the student's graph-score term, when it has one
        total = hidden.new_zeros(())
        terms: dict[str, float] = {}
        if self.use_dllm2rec:
            with torch.no_grad():
                teacher_logits = self.teacher.position_logits(item_seq, item_seq_len, mask, teacher_states)
                teacher_logits = _mask_history(teacher_logits, item_seq, mask)
                top = torch.topk(teacher_logits, min(cfg.top_k, teacher_logits.shape[1]))
                probs = torch.softmax(teacher_logits, -1).gather(1, top.indices)
            student_logits = hidden @ table.T
            if graph is not None:
                student_logits = student_logits + graph
            with torch.no_grad():
                student_top = torch.topk(student_logits.detach(), top.indices.shape[1]).indices
                consistent = (top.indices.unsqueeze(-1) == student_top.unsqueeze(1)).any(-1)
                weights = importance_weights(torch.arange(top.indices.shape[1]), probs, consistent, cfg)
            if cfg.rank_form == "sigmoid":  # the paper's pointwise form
                log_probs = nn.functional.logsigmoid(student_logits.gather(1, top.indices))
            else:
                log_probs = torch.log_softmax(student_logits, -1).gather(1, top.indices)
            rank = -(weights * log_probs).sum(-1).mean()
            items = torch.unique(torch.cat([top.indices.flatten(), targets[mask] - 1]))
            student_items = nn.functional.normalize(table[items], dim=-1)
            teacher_proj = nn.functional.normalize(self.item_projection(teacher_items[items]), dim=-1)
            logits = student_items @ teacher_proj.T / cfg.emb_temperature
            labels = torch.arange(len(items))
            emb = 0.5 * (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.T, labels))
            total = total + cfg.lambda_rank * rank + cfg.lambda_emb * emb
            terms.update(rank=float(rank.detach()), emb=float(emb.detach()))
        if self.use_slmrec:
            projected = self.hidden_projection(hidden)
            cos = (1.0 - nn.functional.cosine_similarity(projected, teacher_states, dim=-1)).mean()
            l2 = (projected - teacher_states).pow(2).sum(-1).mean()
            teacher_space = nn.functional.normalize(projected, dim=-1) @ teacher_items.T / self.teacher.temperature
            supervised = nn.functional.cross_entropy(teacher_space, targets[mask] - 1)
            total = total + cfg.lambda_cos * cos + cfg.lambda_l2 * l2 + cfg.lambda_teacher_space * supervised
            terms.update(cos=float(cos.detach()), l2=float(l2.detach()), teacher_space=float(supervised.detach()))
            if len(layers) > 1:
                inter = sum(nn.functional.cross_entropy(layer[mask] @ table.T + (0 if graph is None else graph),
                                                        targets[mask] - 1)
                            for layer in layers[:-1]) / (len(layers) - 1)
                total = total + cfg.lambda_intermediate * inter
                terms["intermediate"] = float(inter.detach())
        self.last_terms = terms
        return total

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, **asdict(self.config), **self.teacher.describe()}


def _mask_history(logits: Tensor, item_seq: Tensor, mask: Tensor) -> Tensor:
    """Set, for each selected position (b, t), the items of ``item_seq[b, :t+1]`` to -inf."""
    b_index, t_index = mask.nonzero(as_tuple=True)
    history = item_seq[b_index]  # [N, L]
    seen = (torch.arange(item_seq.shape[1]).unsqueeze(0) <= t_index.unsqueeze(1)) & (history > 0)
    rows = torch.arange(len(b_index)).unsqueeze(1).expand_as(history)[seen]
    logits = logits.clone()
    logits[rows, history[seen] - 1] = float("-inf")
    return logits


# --- REKI / KAR ------------------------------------------------------------------------------------
class HybridExpertAdapter(nn.Module):
    """KAR's hybrid-expert adaptor: knowledge sources -> one augmented vector.

    ``n_shared`` experts read every source (concatenated); each source has ``n_dedicated`` experts
    of its own; a gate (softmax over all experts, from the concatenated input) mixes their outputs.
    Experts are 2-layer MLPs ``in -> hidden -> out``.

    Args:
        source_dims: the width of each source, in the order they are concatenated in the input.
        out_dim: the augmented vector's width (the student's hidden size).
    """

    def __init__(self, source_dims: list[int], out_dim: int, *, n_shared: int = 2, n_dedicated: int = 1,
                 hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        if not source_dims or any(d < 1 for d in source_dims):
            raise InvalidInputError("source_dims", f"need at least one positive width, got {source_dims}")
        self.source_dims, self.out_dim = list(source_dims), out_dim
        self.n_shared, self.n_dedicated, self.hidden = n_shared, n_dedicated, hidden
        total = sum(source_dims)

        def expert(width: int) -> nn.Module:
            return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))

        self.shared = nn.ModuleList(expert(total) for _ in range(n_shared))
        self.dedicated = nn.ModuleList(nn.ModuleList(expert(d) for _ in range(n_dedicated)) for d in source_dims)
        self.gate = nn.Linear(total, n_shared + n_dedicated * len(source_dims))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, knowledge: Tensor) -> Tensor:
        """``[..., sum(source_dims)] -> [..., out_dim]``."""
        if knowledge.shape[-1] != sum(self.source_dims):
            raise InvalidInputError("knowledge", f"width {knowledge.shape[-1]} != sources {self.source_dims}")
        parts = torch.split(knowledge, self.source_dims, dim=-1)
        outputs = [e(knowledge) for e in self.shared]
        for part, experts in zip(parts, self.dedicated):
            outputs.extend(e(part) for e in experts)
        stacked = torch.stack(outputs, dim=-2)  # [..., E, out]
        gate = torch.softmax(self.gate(knowledge), dim=-1).unsqueeze(-1)
        return (gate * stacked).sum(-2)

    def gate_weights(self, knowledge: Tensor) -> Tensor:
        return torch.softmax(self.gate(knowledge), dim=-1)


def kar_prepare(source_dims: list[int], **adapter_kwargs):
    """A ``prepare`` hook for :func:`recommender.train.train_student`: the student's knowledge
    projection becomes a :class:`HybridExpertAdapter` over the knowledge matrix's sources (drawn
    from a forked generator, so the rest of the student's randomness is that of the plain model)."""

    def prepare(model: SequentialRecommender) -> None:
        if model.knowledge is None:
            raise InvalidInputError("knowledge", "REKI/KAR needs a knowledge matrix (the sources to condense)")
        if model.knowledge.shape[1] != sum(source_dims):
            raise InvalidInputError("knowledge", f"width {model.knowledge.shape[1]} != sources {source_dims}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch.initial_seed() + 2)
            model.knowledge_projection = HybridExpertAdapter(source_dims, model.hidden_size, **adapter_kwargs)

    return prepare


@torch.no_grad()
def freeze_kar(model: SequentialRecommender) -> SequentialRecommender:
    """The KAR-trained student as a plain student: the adapter's outputs for every item, computed
    once, become its knowledge matrix ``[n_items, d]`` behind an identity projection. Scores are
    unchanged (eval mode); serving costs what the plain student with a ``d``-wide supplement costs."""
    from .models import get

    if not isinstance(model.knowledge_projection, HybridExpertAdapter):
        raise InvalidInputError("model", "not a KAR-trained student (its knowledge projection is no adapter)")
    model.eval()
    augmented = model.knowledge_projection(model.knowledge[1:])
    graph_scores = None if model.graph_score_vectors is None else model.graph_score_vectors.clone()
    plain = get(model.name)(**model.config(), knowledge=augmented, graph_scores=graph_scores)
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith("knowledge_projection.") and k != "knowledge"}
    missing, unexpected = plain.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"knowledge", "knowledge_projection.weight"}:
        raise RuntimeError(f"KAR freeze: unexpected state keys {unexpected} / missing {missing}")
    plain.knowledge_projection.weight.copy_(torch.eye(model.hidden_size))
    plain.eval()
    return plain


@torch.no_grad()
def augment_user_vectors(user_knowledge: Tensor, adapter: HybridExpertAdapter) -> Tensor:
    """User knowledge ``[U, sum(source_dims)]`` -> augmented user vectors ``[U, out]`` (computed
    once and stored; see the module docstring)."""
    adapter.eval()
    return adapter(user_knowledge)


def budget_note(seconds: float) -> str:
    return f"{math.floor(seconds / 60)} min {seconds % 60:.0f} s"


__all__ = ["METHODS", "PLANS", "DistillConfig", "Distiller", "distill_student", "parse_plan", "HybridExpertAdapter", "augment_user_vectors", "freeze_kar",
           "importance_weights", "kar_prepare", "parse_method", "student_layers"]
