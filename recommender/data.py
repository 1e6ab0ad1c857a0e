"""Sequences for the sequential recommenders (issue 12, first step): training, holdout and evaluation.

Item numbering: an item's **index** is its row in ``dataset.items`` (0 .. n-1, the order of
``Scientific.item2index``, the same index :func:`kg_builder.evaluation.titles.user_sequences` uses).
Inside the models an item is ``index + 1``; 0 is padding (RecBole's ``[PAD]``).

Choices (``amazon18_scientific``, RecBole atomic files):

* **Training data = ``Scientific.train.inter`` only.** Its rows are RecBole's augmented
  prefix -> next-item examples (``0 1 2 -> 3``, ``0 1 -> 2``, ...). They are folded back into one
  sequence per user (the rows are checked to be windows of that sequence; a row that is not is a
  :class:`~kg_builder.errors.DatasetError`), and a model predicts the next item at **every
  position** of the sequence with a causal encoder: position ``t`` of the whole sequence sees
  exactly the prefix that the file's row ending at ``t`` gives, so one epoch sees every row of the
  file once, at a quarter of the cost. The 3 users whose train sequence is longer than
  ``max_len + 1`` are cut into consecutive windows (their early targets see a shorter context than
  RecBole's sliding rows).
* **Early stopping never looks at ``valid``.** :func:`holdout_split` takes the last train item of
  a seeded 10 % of the users (with at least 3 train items) as a train-only holdout; those users
  train on their sequence without it.
* **Evaluation sequences** come from :func:`kg_builder.evaluation.titles.user_sequences`
  (``valid``: history = the user's train items, target = the valid item). ``test`` takes the
  dataset's ``test`` interactions where the loader has them; for Scientific, whose loader reads
  only ``Scientific.valid.inter``, ``Scientific.test.inter`` is read here when it is on disk
  (history = its ``item_id_list``, i.e. train + valid items; target = its item). Without a test
  file the error names the split and the folder (the test split is held out in the shared data).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kg_builder.datasets.records import Dataset
from kg_builder.errors import DatasetError, InvalidInputError
from kg_builder.evaluation.titles import Sequences, user_sequences

PAD = 0
DEFAULT_MAX_LEN = 50
HOLDOUT_FRACTION = 0.1
HOLDOUT_MIN_ITEMS = 3

# dataset name -> (sub-folder of the data root, RecBole atomic-file prefix)
RECBOLE_FILES = {"amazon18_scientific": ("rec/amazon18_scientific", "Scientific")}


@dataclass
class RecData:
    """One dataset prepared for the recommenders.

    Attributes:
        dataset: the loaded records (items, interactions).
        item_ids: the dataset's item ids, row = item index.
        train: per-user training sequences (item indices, oldest first), keyed by user id.
    """

    dataset: Dataset
    item_ids: list[str]
    train: dict[str, list[int]]
    data_dir: Path | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}

    def evaluation(self, split: str) -> Sequences:
        """History + target of every user for ``valid`` or ``test`` (see the module docstring).

        Raises:
            DatasetError: the split is not on disk.
        """
        return evaluation_sequences(self.dataset, split, self.data_dir)

    def popularity(self) -> np.ndarray:
        """Train interaction count per item index (float32 ``[n_items]``)."""
        counts = np.zeros(self.n_items, dtype=np.float32)
        for sequence in self.train.values():
            np.add.at(counts, sequence, 1.0)
        return counts


def load_rec_data(name: str, data_dir: Path | str) -> RecData:
    """Load a sequence dataset and its training sequences.

    Raises:
        DatasetError: an unknown dataset, a missing folder or train file, or rows that do not fold
            into one sequence per user.
    """
    from kg_builder.datasets import load_dataset

    dataset = load_dataset(name, data_dir)
    item_ids = [item.id for item in dataset.items]
    index = {item: i for i, item in enumerate(item_ids)}
    if name in RECBOLE_FILES:
        folder, prefix = RECBOLE_FILES[name]
        train = train_sequences_from_file(Path(data_dir) / folder / f"{prefix}.train.inter", index)
    else:
        train = train_sequences_from_dataset(dataset, index)
    if not train:
        raise DatasetError(f"{name} has no training sequence (no user with two train items)")
    return RecData(dataset=dataset, item_ids=item_ids, train=train, data_dir=Path(data_dir))


def train_sequences_from_file(path: Path, index: dict[str, int]) -> dict[str, list[int]]:
    """Fold RecBole's augmented rows (``user``, ``item_id_list``, ``item_id``) back into one
    sequence per user. Rows of one user may come in any order; each row's list must be the items
    just before its target in the folded sequence."""
    from kg_builder.datasets.amazon import read_sequences

    if not path.is_file():
        raise DatasetError(f"training file {path} is missing (the recommenders train on it)")
    rows: dict[str, list[list[str]]] = {}
    for user, items in read_sequences(path):
        rows.setdefault(user, []).append(items)
    sequences: dict[str, list[int]] = {}
    for user, user_rows in rows.items():
        # The shortest row starts the sequence; every other row adds its target. Rows are sorted by
        # where their target falls: a row's list ends where the previous target ended.
        user_rows.sort(key=len)
        first = user_rows[0]
        sequence = list(first)
        for row in user_rows[1:]:
            context, target = row[:-1], row[-1]
            if sequence[len(sequence) - len(context):] != context:
                # Long histories are windows: append in file order of the window ends instead.
                sequence = _fold_windows(user_rows, path, user)
                break
            sequence.append(target)
        unknown = [item for item in sequence if item not in index]
        if unknown:
            raise DatasetError(f"{path}: user {user} has items missing from the item index: {unknown[:5]}")
        sequences[user] = [index[item] for item in sequence]
    return sequences


def _fold_windows(user_rows: list[list[str]], path: Path, user: str) -> list[str]:
    """Fold sliding-window rows (all of the same maximal length once the history is cut): every
    row shifts the window by one, so the sequence is the first window + each next target."""
    ordered = sorted(user_rows, key=len)
    sequence = list(ordered[0])
    pending = ordered[1:]
    while pending:
        for i, row in enumerate(pending):
            context, target = row[:-1], row[-1]
            if len(context) <= len(sequence) and sequence[len(sequence) - len(context):] == context:
                sequence.append(target)
                del pending[i]
                break
        else:
            raise DatasetError(f"{path}: the rows of user {user} are not prefixes or windows of one sequence")
    return sequence


def train_sequences_from_dataset(dataset: Dataset, index: dict[str, int]) -> dict[str, list[int]]:
    """``train`` interactions per user in position order (datasets without RecBole train files)."""
    by_user: dict[str, list[tuple[int, int]]] = {}
    for record in dataset.interactions:
        if record.split == "train" and record.item in index:
            by_user.setdefault(record.user, []).append((record.position or 0, index[record.item]))
    return {u: [i for _, i in sorted(rows)] for u, rows in by_user.items() if len(rows) >= 2}


def evaluation_sequences(dataset: Dataset, split: str, data_dir: Path | None) -> Sequences:
    """See :meth:`RecData.evaluation`."""
    if split not in ("valid", "test"):
        raise InvalidInputError("split", f"{split!r} is not an evaluation split: valid or test")
    if split == "test" and dataset.name in RECBOLE_FILES and not any(
            r.split == "test" for r in dataset.interactions):
        folder, prefix = RECBOLE_FILES[dataset.name]
        path = Path(data_dir or ".") / folder / f"{prefix}.test.inter"
        if not path.is_file():
            raise DatasetError(f"split 'test' is held out: {path} is not on disk; evaluate on 'valid' or pass a "
                               "--data-dir that holds the test file")
        return _sequences_from_file(path, [item.id for item in dataset.items])
    return user_sequences(dataset, split)


def _sequences_from_file(path: Path, item_ids: list[str]) -> Sequences:
    from kg_builder.datasets.amazon import read_sequences

    index = {item: i for i, item in enumerate(item_ids)}
    rows = []
    for user, items in read_sequences(path):
        unknown = [item for item in items if item not in index]
        if unknown:
            raise DatasetError(f"{path}: user {user} has items missing from the item index: {unknown[:5]}")
        if len(items) >= 2:
            rows.append((user, [index[i] for i in items]))
    rows.sort()
    return Sequences(users=[u for u, _ in rows], histories=[s[:-1] for _, s in rows],
                     targets=np.array([s[-1] for _, s in rows], dtype=np.int64))


@dataclass
class Holdout:
    """Train-only holdout for early stopping: training sequences without the held-out items, and
    the held-out users' (history, target) as :class:`Sequences`."""

    train: dict[str, list[int]]
    holdout: Sequences


def holdout_split(train: dict[str, list[int]], *, fraction: float = HOLDOUT_FRACTION, seed: int = 0,
                  min_items: int = HOLDOUT_MIN_ITEMS) -> Holdout:
    """Hold out the last train item of a seeded ``fraction`` of users with >= ``min_items`` items."""
    if not 0.0 <= fraction < 1.0:
        raise InvalidInputError("holdout_fraction", f"must be in [0, 1), got {fraction}")
    eligible = sorted(u for u, s in train.items() if len(s) >= min_items)
    rng = np.random.default_rng(seed)
    count = int(round(fraction * len(eligible)))
    chosen = sorted(rng.choice(len(eligible), size=count, replace=False).tolist()) if count else []
    held = [eligible[i] for i in chosen]
    held_set = set(held)
    remaining = {u: (s[:-1] if u in held_set else list(s)) for u, s in train.items()}
    holdout = Sequences(users=held, histories=[train[u][:-1] for u in held],
                        targets=np.array([train[u][-1] for u in held], dtype=np.int64))
    return Holdout(train=remaining, holdout=holdout)


def training_windows(sequences: dict[str, list[int]], max_len: int = DEFAULT_MAX_LEN) -> list[list[int]]:
    """Every user's sequence as windows of at most ``max_len + 1`` items (inputs = all but the last,
    targets = all but the first); consecutive windows share one item so every target is predicted
    exactly once. Sequences with fewer than 2 items give nothing."""
    windows = []
    for user in sorted(sequences):
        sequence = sequences[user]
        start = 0
        while len(sequence) - start >= 2:
            windows.append(sequence[start:start + max_len + 1])
            start += max_len
    return windows


def pad_batch(windows: list[list[int]], max_len: int) -> dict[str, np.ndarray]:
    """Right-padded model inputs (item index + 1, 0 = padding), as RecBole pads, as wide as the
    batch's longest window (at most ``max_len``; right padding leaves every real position's output
    unchanged under the causal encoders):
    ``item_id_list`` ``[B, L]``, ``item_length`` ``[B]``, ``target_seq`` ``[B, L]`` (0 = no target)
    and ``item_id`` ``[B]`` (the last target, the model's item numbering)."""
    batch = len(windows)
    width = min(max_len, max(len(w) for w in windows) - 1)
    inputs = np.zeros((batch, width), dtype=np.int64)
    targets = np.zeros((batch, width), dtype=np.int64)
    lengths = np.zeros(batch, dtype=np.int64)
    last = np.zeros(batch, dtype=np.int64)
    for row, window in enumerate(windows):
        items = np.asarray(window, dtype=np.int64) + 1
        n = len(items) - 1
        inputs[row, :n] = items[:-1]
        targets[row, :n] = items[1:]
        lengths[row] = n
        last[row] = items[-1]
    return {"item_id_list": inputs, "item_length": lengths, "target_seq": targets, "item_id": last}


def history_batch(histories: list[list[int]], max_len: int) -> dict[str, np.ndarray]:
    """Model inputs for ranking: each history's last ``max_len`` items, right-padded (index + 1)."""
    batch = len(histories)
    if any(not h for h in histories):
        raise InvalidInputError("history", "an empty history cannot be ranked from")
    width = min(max_len, max(len(h) for h in histories))
    inputs = np.zeros((batch, width), dtype=np.int64)
    lengths = np.zeros(batch, dtype=np.int64)
    for row, history in enumerate(histories):
        if not history:
            raise InvalidInputError("history", "an empty history cannot be ranked from")
        recent = np.asarray(history[-max_len:], dtype=np.int64) + 1
        inputs[row, :len(recent)] = recent
        lengths[row] = len(recent)
    return {"item_id_list": inputs, "item_length": lengths}


def length_batches(windows: list[list[int]], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Indices of ``windows`` in batches of similar length, batches in random order.

    Windows are sorted by length with random tie-breaking and cut into batches, so a batch pads
    to ~its own length instead of 50 (most Scientific sequences have 2-10 items: ~4x less work on
    one thread); which windows share a batch and the batch order change every epoch."""
    lengths = np.fromiter((len(w) for w in windows), dtype=np.int64, count=len(windows))
    order = np.lexsort((rng.random(len(windows)), lengths))
    batches = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


__all__ = ["length_batches", "Holdout", "RecData", "evaluation_sequences", "history_batch", "holdout_split", "load_rec_data",
           "pad_batch", "train_sequences_from_file", "training_windows"]
