"""Validation of the pretext task: loss and partial-ranks accuracy on fixed examples with fixed permutations.

Built like big_vision's evaluators: ``Evaluator(pretext, model, batches,
...)`` once, then ``run(params)`` yields ``(name, value)`` pairs. Batch ``i``
is shuffled with the permutations of ``fold_in(key(seed + 1), i)`` at every
evaluation, so values of different steps compare the same puzzles.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn import parallel


class Evaluator:
  """Mean loss and partial-ranks accuracy of a pretext task over fixed batches.

  Args:
    pretext: the task (`shuffle_learn.pretext.Pretext`).
    model: the CFN.
    batches: host batches of raw inputs, read once.
    seed: the run's seed; the permutations come from ``seed + 1``.
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
    perm_key, loss_key = jax.random.split(key)
    shuffled, labels = self.pretext.shuffle(perm_key, self.pretext.patches(batch[self.pretext.input.raw_key]))
    outputs = self.model.apply(params, shuffled, train=False)
    return {"loss": jnp.sum(self.pretext.loss(loss_key, outputs, labels)),
            "partial_ranks_accuracy": jnp.sum(self.pretext.accuracy(outputs, labels))}

  def run(self, params) -> Iterator[tuple[str, float]]:
    """Yields ``("loss", mean)`` and ``("partial_ranks_accuracy", mean)`` over every example."""
    totals, count = None, 0
    for i, batch in enumerate(self._batches):
      device_batch = parallel.device_batch(self.pretext.input, self.mesh, batch)
      sums = self._step(params, device_batch, jax.random.fold_in(self._key, i))
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
      count += device_batch[self.pretext.input.raw_key].shape[0]
    for name, value in totals.items():
      yield name, float(value) / count
