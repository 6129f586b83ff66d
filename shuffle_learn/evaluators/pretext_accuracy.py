"""Validation of the pretext task: loss and its metric on fixed examples with fixed randomness.

Built like big_vision's evaluators: ``Evaluator(pretext, model, batches,
...)`` once, then ``run(params)`` yields ``(name, value)`` pairs: the loss and
the pretext's metric (``partial_ranks_accuracy`` for the permutation task,
``clip_accuracy`` for the contrastive peers). Batch ``i`` draws its
permutations (or segments and pitch shifts) from ``fold_in(key(seed + 1),
i)`` at every evaluation, so values of different steps compare the same
puzzles.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn import parallel


class Evaluator:
  """Mean loss and metric of a pretext task over fixed batches.

  Args:
    pretext: the task (`shuffle_learn.pretext.Pretext`).
    model: the pretext's network (the CFN, or `SamplingNet` for the peers).
    batches: this process's blocks of the global batches of raw inputs
      (`shuffle_learn.data.sources.eval_batches`), read once; batch ``i`` is
      the same global batch whatever the number of processes.
    seed: the run's seed; the batches' randomness comes from ``seed + 1``.
    mesh: the device mesh the batches are sharded over.
  """

  def __init__(self, pretext, model, batches: Sequence[Mapping[str, np.ndarray]], *, seed: int,
               mesh: jax.sharding.Mesh):
    self.pretext, self.model, self.mesh = pretext, model, mesh
    self._batches = list(batches)
    self._key = jax.random.key(seed + 1)
    replicated = parallel.replicated(mesh)
    self._step = jax.jit(chex.assert_max_traces(self._sums, n=1),
                         in_shardings=(replicated, parallel.batch_sharding(mesh), replicated),
                         out_shardings=replicated)

  def _sums(self, params, batch: Mapping[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
    return self.pretext.eval_sums(self.model, params, batch[self.pretext.input.raw_key], key)

  def run(self, params) -> Iterator[tuple[str, float]]:
    """Yields ``("loss", mean)`` and ``(pretext.metric, mean)`` (e.g. ``partial_ranks_accuracy``) over every example."""
    totals, count = None, 0
    for i, batch in enumerate(self._batches):
      device_batch = parallel.device_batch(self.pretext.input, self.mesh, batch)
      sums = self._step(params, device_batch, jax.random.fold_in(self._key, i))
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
      count += device_batch[self.pretext.input.raw_key].shape[0]
    for name, value in totals.items():
      yield name, float(value) / count
