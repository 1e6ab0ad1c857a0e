"""The result object of a training run (PyKEEN-style): enough to reproduce and to compare runs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kg_builder import __version__


@dataclass
class ModelTrainResult:
    """Seed, config, metrics, timings, losses, version and git hash of one run; the model in memory."""

    model_name: str
    directory: Path
    dataset: str
    seed: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    timings: dict[str, float]
    epoch_losses: list[float]
    stopped_by_budget: bool
    version: str = __version__
    git_hash: str | None = None
    model: Any = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "model"}
        data["directory"] = str(self.directory)
        return data

    def save_to_directory(self, directory: Path | str | None = None) -> Path:
        """Write ``training.json`` into ``directory`` (default: the model folder); returns the file."""
        path = Path(directory or self.directory) / "training.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str))
        return path


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (``resource.getrusage``): the whole
    process, data and models included, not one training run alone."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
