"""Ranking losses of the permutation pretext task and its metric.

References:
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021,
  Section 2 and Table I: "Fast Soft Ranking", "MSE" and partial ranks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shuffle_learn.ranking import _checks
from shuffle_learn.ranking import _soft


def _moved(scores, target_ranks, axis):
  """Checks the arguments; returns them in the compute dtype, and the output dtype.

  Losses are computed in float32 at least: bfloat16 cannot hold ranks above 256.
  """
  scores = jnp.asarray(scores)
  target_ranks = jnp.asarray(target_ranks)
  if target_ranks.shape != scores.shape:
    raise ValueError(f"target_ranks must have the shape of scores {scores.shape}, got {target_ranks.shape}.")
  axis = _checks.check_axis(axis, scores.ndim)
  dtype = _checks.compute_dtype(scores.dtype)
  return scores.astype(dtype), target_ranks.astype(dtype), axis, _checks.output_dtype(scores.dtype)


def soft_rank_loss(
    scores: jax.typing.ArrayLike,
    target_ranks: jax.typing.ArrayLike,
    *,
    regularization_strength: float = 1.0,
    regularization: str = "l2",
    axis: int = -1,
) -> jax.Array:
  """The paper's "Fast Soft Ranking" loss: 1/2 ||soft_rank(scores) - target||^2.

  Args:
    scores: any shape.
    target_ranks: 1-based ascending ranks, same shape.
    regularization_strength: epsilon of `soft_rank` (> 0).
    regularization: ``"l2"`` or ``"kl"``.
    axis: the axis holding the items.

  Returns:
    One loss per vector: ``scores.shape`` without ``axis``.
  """
  scores, target_ranks, axis, dtype = _moved(scores, target_ranks, axis)
  ranks = _soft.soft_rank(
      scores, regularization_strength=regularization_strength, regularization=regularization, axis=axis)
  return (0.5 * jnp.sum(jnp.square(ranks - target_ranks), axis=axis)).astype(dtype)


def rank_mse_loss(scores: jax.typing.ArrayLike, target_ranks: jax.typing.ArrayLike, *, axis: int = -1) -> jax.Array:
  """The paper's "MSE" baseline: 1/2 ||scores - target||^2, regressing the ranks directly.

  Returns:
    One loss per vector: ``scores.shape`` without ``axis``.
  """
  scores, target_ranks, axis, dtype = _moved(scores, target_ranks, axis)
  return (0.5 * jnp.sum(jnp.square(scores - target_ranks), axis=axis)).astype(dtype)


def partial_ranks_accuracy(
    scores: jax.typing.ArrayLike, target_ranks: jax.typing.ArrayLike, *, axis: int = -1) -> jax.Array:
  """Fraction of items whose hard rank of ``scores`` equals the target rank.

  The paper's pretext metric ("partial ranks": items put in the correct
  position). Chance level for uniform random permutations is 1/n.

  Returns:
    One float32 accuracy in [0, 1] per vector: ``scores.shape`` without
    ``axis``. Ties and NaN scores count as wrong positions.
  """
  scores, target_ranks, axis, _ = _moved(scores, target_ranks, axis)
  ranks = _soft.hard_rank(scores, axis=axis)
  return jnp.mean((ranks == target_ranks).astype(jnp.float32), axis=axis)
