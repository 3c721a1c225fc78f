"""A batch sampler for sentence-transformers' trainer that keeps composed batches whole.

    from negmine.batching.sampler import grouped_batches

    dataset, sampler = grouped_batches(dataset)    # reads and removes the output's ``batch`` column
    args = SentenceTransformerTrainingArguments(..., per_device_train_batch_size=B, batch_sampler=sampler)

Each epoch yields every batch once, whole, in an order shuffled by the trainer's seed and the epoch.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np


def grouped_batch_sampler(batch_ids: Sequence[int]) -> Callable[..., Any]:
    """A ``batch_sampler`` factory for ``SentenceTransformerTrainingArguments``: the rows with the same batch id
    (``batch_ids[i]`` of row i) form one batch."""
    try:
        from sentence_transformers.base.sampler import DefaultBatchSampler
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.sampler import DefaultBatchSampler  # type: ignore[no-redef]

    groups: dict[int, list[int]] = {}
    for i, b in enumerate(batch_ids):
        groups.setdefault(int(b), []).append(i)
    batches = list(groups.values())

    class GroupedBatchSampler(DefaultBatchSampler):  # type: ignore[misc]
        """Composed batches, whole, in a seeded order per epoch (``drop_last``: without the short ones)."""

        def __init__(self, dataset: Any, batch_size: int, drop_last: bool, valid_label_columns: Any = None,
                     generator: Any = None, seed: int = 0) -> None:
            super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                             valid_label_columns=valid_label_columns, generator=generator, seed=seed)
            if len(dataset) != len(batch_ids):
                raise ValueError(f"grouped_batch_sampler: {len(batch_ids):,} batch ids for a dataset of "
                                 f"{len(dataset):,} rows")
            too_big = max((len(b) for b in batches), default=0)
            if too_big > batch_size:
                raise ValueError(f"grouped_batch_sampler: a batch of {too_big} rows, over the trainer's batch size "
                                 f"{batch_size} (mine with --train-batch-size {batch_size})")
            self.batches = [b for b in batches if len(b) == batch_size or not drop_last]

        def __iter__(self) -> Any:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.batches))
            for i in order:
                yield list(self.batches[i])

        def __len__(self) -> int:
            return len(self.batches)

    return GroupedBatchSampler


def grouped_batches(dataset: Any) -> tuple[Any, Callable[..., Any]]:
    """A ``datasets.Dataset`` written with ``--train-batch-size`` made ready for sentence-transformers' trainer: the
    dataset without its ``batch`` column (the loss reads every other column) and the ``batch_sampler`` factory that
    keeps those batches whole."""
    if "batch" not in dataset.column_names:
        raise ValueError("grouped_batches: the dataset has no 'batch' column (mine with --train-batch-size B)")
    return dataset.remove_columns("batch"), grouped_batch_sampler(dataset["batch"])
