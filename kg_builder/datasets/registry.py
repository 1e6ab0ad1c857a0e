"""The dataset registry: name -> loader, where each loader takes the data *root* folder.

The root is the folder that holds ``kg/``, ``rec/``, ``corpus/`` and ``kgrec/`` (``KGFORGE_DATA_DIR``,
``--data-dir``, or ``../shared/data`` beside a checkout). Each :class:`DatasetLoader` knows its
sub-folder and kind, so callers can list and locate datasets without loading them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from kg_builder.errors import DatasetError

from . import amazon, corpus, kg, lastfm, movielens
from .records import Dataset, DatasetKind
from .text import missing_path_error


@dataclass(frozen=True, slots=True)
class DatasetLoader:
    """Callable registry entry: ``DATASETS["umls"](data_dir)`` loads ``data_dir / "kg/umls"``."""

    name: str
    kind: DatasetKind
    folder: str
    load_folder: Callable[[Path], Dataset]
    summary: str

    def path(self, data_dir: Path | str) -> Path:
        return Path(data_dir) / self.folder

    def __call__(self, data_dir: Path | str) -> Dataset:
        folder = self.path(data_dir)
        if not folder.is_dir():
            raise missing_path_error(folder, f"dataset folder for {self.name!r}")
        return self.load_folder(folder)


_LOADERS = (
    DatasetLoader("umls", "kg", "kg/umls", kg.load_umls, "UMLS KG completion benchmark"),
    DatasetLoader("wn18rr", "kg", "kg/wn18rr", kg.load_wn18rr, "WN18RR (WordNet), test held out"),
    DatasetLoader("fb15k237", "kg", "kg/fb15k237", kg.load_fb15k237, "FB15k-237 (Freebase), test held out"),
    DatasetLoader(
        "amazon18_scientific",
        "rec",
        "rec/amazon18_scientific",
        amazon.load_scientific,
        "Amazon 2018 Industrial & Scientific (UniSRec), test held out",
    ),
    DatasetLoader(
        "amazon18_games", "rec", "rec/amazon18_games", amazon.load_games, "Amazon 2018 Video Games"
    ),
    DatasetLoader(
        "amazon14_office",
        "rec",
        "rec/amazon14_office",
        amazon.load_office,
        "Amazon 2014 Office Products 5-core (ReChorus) with item-item links",
    ),
    DatasetLoader(
        "amazon18_product_text",
        "corpus",
        "corpus/amazon18_product_text",
        corpus.load_product_text,
        "Amazon 2018 Office and Scientific product text",
    ),
    DatasetLoader(
        "ml_latest_small", "rec", "rec/ml_latest_small", movielens.load_movielens, "MovieLens latest-small"
    ),
    DatasetLoader(
        "lastfm_kgcn", "kgrec", "kgrec/lastfm_kgcn", lastfm.load_lastfm, "Last.FM with the KGCN Freebase KG"
    ),
)

DATASETS: Mapping[str, DatasetLoader] = MappingProxyType({loader.name: loader for loader in _LOADERS})


def get_loader(name: str) -> DatasetLoader:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}") from None


def dataset_path(name: str, data_dir: Path | str) -> Path:
    """The dataset's folder under the data root (whether or not it exists)."""
    return get_loader(name).path(data_dir)


def available_datasets(data_dir: Path | str) -> list[str]:
    """Names of the registered datasets whose folder exists under ``data_dir``, in registry order."""
    return [name for name, loader in DATASETS.items() if loader.path(data_dir).is_dir()]


def load_dataset(name: str, data_dir: Path | str) -> Dataset:
    """Load a dataset by name from the data root; unknown names and missing files raise DatasetError."""
    return get_loader(name)(data_dir)
