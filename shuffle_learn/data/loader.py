"""Batches of notes with grain: shuffling, batching, each process's rows of every batch, prefetch.

The pipeline delivers unshuffled patches' raw material (audio and labels); the
spectrogram and the permutation are computed on the device inside the jitted
step. Iteration is deterministic given the seed, and the iterator's state
(`get_state` / `set_state`) is saved with the model so that a resumed run reads
exactly the batches an uninterrupted one would.

Every process builds the same shuffled sequence of global batches and reads
its own block of rows of each, so the global batches, and a run, are the same
whatever the number of processes; the iterator's state (the number of global
batches read) is the same in every process.
"""

from __future__ import annotations

from typing import Sequence

from absl import flags
import grain
import jax
import numpy as np


class Subset:
  """The first ``num_examples`` examples of a source, after a seeded shuffle (or none).

  A random-access source itself (picklable if ``source`` is), so a fixed subset
  is the same in every epoch and every worker.
  """

  def __init__(self, source: Sequence[dict], num_examples: int, seed: int | None):
    order = np.arange(len(source)) if seed is None else np.random.default_rng(seed).permutation(len(source))
    self._source = source
    self._indices = order[:num_examples]

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> dict:
    return self._source[int(self._indices[index])]


def note_batches(
    source: Sequence[dict],
    *,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    num_epochs: int | None = None,
    drop_remainder: bool = True,
    shard_index: int | None = None,
    shard_count: int | None = None,
    num_threads: int = 1,
    prefetch_buffer_size: int = 4,
    worker_count: int = 0,
    num_examples: int | None = None,
) -> grain.IterDataset:
  """A grain pipeline over a random-access note source.

  Args:
    source: anything with `__len__` and `__getitem__` returning flat dicts of
      arrays (`NSynthSource`, `GMNotesSource`).
    batch_size: examples per batch in this process; a global batch holds
      ``batch_size * shard_count``.
    seed: the shuffle seed; each epoch is shuffled differently.
    shuffle: whether to shuffle (evaluation reads in order).
    num_epochs: passes over the data; None repeats forever.
    drop_remainder: drop a last incomplete batch.
    shard_index, shard_count: this process's block of every global batch;
      default `jax.process_index()` and `jax.process_count()`. Process i reads
      rows ``[i * batch_size, (i + 1) * batch_size)`` of every global batch (the
      rows its devices hold in `shuffle_learn.parallel.make_mesh`'s mesh), so
      the processes' blocks together are the one-process batches.
    num_threads, prefetch_buffer_size: grain's read threads and prefetch depth;
      the defaults are the default config's.
    worker_count: processes for `mp_prefetch` (0: none). The source must then
      be picklable, and absl flags parsed (grain reads its options from them).
    num_examples: use only this many examples of the source, a subset fixed
      by ``seed`` (the first ones after one seeded shuffle; the first ones when
      not shuffling); None for all.

  Returns:
    A `grain.IterDataset` of batches: dicts of arrays with a leading batch axis.

  Raises:
    ValueError: for a non-positive batch size, a shard outside [0, count), an
      empty source or one shorter than a global batch with `drop_remainder`,
      or more than one shard without `drop_remainder`.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  shard_index = jax.process_index() if shard_index is None else shard_index
  shard_count = jax.process_count() if shard_count is None else shard_count
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"shard_index must be in [0, shard_count={shard_count}), got {shard_index}.")
  if shard_count > 1 and not drop_remainder:
    raise ValueError(f"{shard_count} shards need drop_remainder (a last, partial batch would not split evenly).")
  if num_epochs is not None and num_epochs < 1:
    raise ValueError(f"num_epochs must be >= 1 or None, got {num_epochs}.")
  if num_examples is not None:
    if num_examples < 1:
      raise ValueError(f"num_examples must be >= 1 or None, got {num_examples}.")
    source = Subset(source, num_examples, seed if shuffle else None)
  dataset = grain.MapDataset.source(source)
  if len(dataset) == 0:
    raise ValueError("the source has no examples.")
  if drop_remainder and len(dataset) < batch_size * shard_count:
    raise ValueError(f"batch_size {batch_size} exceeds the {len(dataset) // shard_count} examples of each of "
                     f"{shard_count} shard(s).")
  if shuffle:
    dataset = dataset.shuffle(seed=seed)
  dataset = dataset.repeat(num_epochs).batch(batch_size, drop_remainder=drop_remainder)
  # Blocks g * count + i, i < count, form global batch g; this process reads block i of each whole one.
  dataset = dataset[shard_index:len(dataset) - len(dataset) % shard_count:shard_count]
  iterable = dataset.to_iter_dataset(
      grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch_buffer_size))
  if worker_count > 0:
    # grain's worker processes read their options from absl flags; the library
    # leaves flags to the program (`shuffle_learn.cli` parses them).
    if not flags.FLAGS.is_parsed():
      raise ValueError(
          "worker_count > 0 needs absl flags parsed (grain reads its worker options from them): run through a "
          "command-line entry point, or call absl.flags.FLAGS.mark_as_parsed() first.")
    iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return iterable
