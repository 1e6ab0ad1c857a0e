"""Dataset loaders: typed records for every real dataset of the shared data folder.

``load_dataset(name, data_dir)`` reads ``data_dir/<kind folder>/<name>`` (``data_dir`` is the data
*root*, the folder holding ``kg/``, ``rec/``, ``corpus/``, ``kgrec/``) and returns a
:class:`Dataset`. ``DATASETS`` maps each name to its callable loader; ``dataset_path`` and
``available_datasets`` locate folders without loading. Each loader module's docstring states the
parsing choices made for its datasets.
"""

from .records import (
    Dataset,
    DatasetKind,
    DocumentRecord,
    EntityRecord,
    InteractionRecord,
    ItemLinkRecord,
    ItemRecord,
    RelationRecord,
    TripleRecord,
)
from .registry import DATASETS, DatasetLoader, available_datasets, dataset_path, get_loader, load_dataset

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetKind",
    "DatasetLoader",
    "DocumentRecord",
    "EntityRecord",
    "InteractionRecord",
    "ItemLinkRecord",
    "ItemRecord",
    "RelationRecord",
    "TripleRecord",
    "available_datasets",
    "dataset_path",
    "get_loader",
    "load_dataset",
]
