"""Saved models are folders: ``config.json`` + ``model.safetensors`` (+ optional extra files).

Folders live under ``KGFORGE_HOME/models/<name>`` and are loaded by name. ``config.json`` always
records ``kind`` (the model class), ``version`` (kgforge's), ``created`` and whatever the model
needs to rebuild itself (dataset, hyper-parameters, metrics, training seconds).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch import Tensor

from kg_builder import __version__
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.settings import Settings

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ModelNotTrainedError(KGForgeError):
    """A model folder does not exist yet; the message names the command that trains it."""


def models_dir(settings: Settings) -> Path:
    return settings.home / "models"


def model_dir(settings: Settings, name: str) -> Path:
    """``KGFORGE_HOME/models/<name>`` (the name is checked: letters, digits, ``_ . -``)."""
    if not _NAME.match(name):
        raise InvalidInputError("model", f"{name!r} is not a valid model name (letters, digits, _ . -)")
    return models_dir(settings) / name


def resolve_folder(name_or_dir: str | Path, settings: Settings, prefix: str) -> tuple[Path, str | None]:
    """The folder of a model given by name (under ``KGFORGE_HOME/models``) or by path, and the
    dataset its standard name ``<prefix><dataset>`` implies (None for other names)."""
    is_path = isinstance(name_or_dir, Path) or "/" in str(name_or_dir)
    directory = Path(name_or_dir) if is_path else model_dir(settings, str(name_or_dir))
    dataset = directory.name[len(prefix):] if directory.name.startswith(prefix) else None
    return directory, dataset


def save_folder(directory: Path, *, kind: str, config: dict[str, Any], state: dict[str, Tensor]) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created; files replaced)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    meta = {"kind": kind, "version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **config}
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(directory / WEIGHTS))
    (directory / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory


def load_folder(directory: Path, *, kind: str, train_hint: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read a folder written by :func:`save_folder`; ``train_hint`` is the command to run when it is missing."""
    from safetensors.torch import load_file

    if not (directory / CONFIG).exists() or not (directory / WEIGHTS).exists():
        raise ModelNotTrainedError(f"no trained model in {directory}; train it with `{train_hint}`")
    config = json.loads((directory / CONFIG).read_text())
    if config.get("kind") != kind:
        raise KGForgeError(f"{directory} holds a {config.get('kind')!r} model, not a {kind!r} model")
    return config, load_file(str(directory / WEIGHTS))
