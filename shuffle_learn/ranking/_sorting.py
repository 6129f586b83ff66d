"""Sorting helpers shared by the projections and the hard ranks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from shuffle_learn.ranking import _paths


def materialized(x: jax.Array) -> jax.Array:
  """x, computed once before its pairwise comparisons.

  XLA fuses cheap producers of x into the comparisons and computes them twice,
  for the rows and for the columns, and the two copies may round differently
  (one vectorised, with FMAs, one not): the comparisons then disagree and the
  counts are not a permutation (seen with normal noise under `jit`; see
  test_ranks_of_a_fused_noisy_input_are_permutations). XLA does not duplicate
  a division, so x is divided by ones that it cannot fold (2^0 from x's
  exponents), which is exact for every x. (`lax.optimization_barrier` is
  removed before fusion on CPU.)
  """
  exponent = jnp.frexp(x)[1]
  return x / jnp.ldexp(jnp.ones_like(x), jnp.clip(exponent - 4096, 0, 1))


def places(x: jax.Array) -> jax.Array:
  """The place of each x_i in x sorted descending (ties in index order), by counting.

  Counts, for each element, the elements before it: O(n^2) pairwise
  comparisons, vectorised. Along axis 0; further axes are a batch.
  """
  n = x.shape[0]
  x = materialized(x)
  xi, xj = x[:, None], x[None, :]
  i = lax.broadcasted_iota(jnp.int32, (n, n) + (1,) * (x.ndim - 1), 0)
  j = lax.broadcasted_iota(jnp.int32, (n, n) + (1,) * (x.ndim - 1), 1)
  return jnp.sum((xj > xi) | ((xj == xi) & (j < i)), axis=1, dtype=jnp.int32)


def sort_descending(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Sorts a vector in decreasing order.

  For short rows (`_paths.counting_sort`) the places come from `places`;
  otherwise one XLA sort carries the values and their indices together.
  Either way the places are a permutation for any input without NaN.

  Returns:
    (sorted (n,), place (n,)): x in decreasing order (ties in index order), and
    the position of each element of x in it.
  """
  n = x.shape[0]
  iota = jnp.arange(n, dtype=jnp.int32)
  if _paths.counting_sort(n):
    place = places(x)
    return jnp.zeros_like(x).at[place].set(x, unique_indices=True), place
  negated, order = lax.sort((-x, iota), num_keys=1)
  place = jnp.zeros(n, jnp.int32).at[order].set(iota, unique_indices=True)
  return -negated, place


def tie_groups(sorted_values: jax.Array) -> jax.Array:
  """Group index (n,) of each run of equal values in a sorted vector."""
  changes = (sorted_values[1:] != sorted_values[:-1]).astype(jnp.int32)
  return jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(changes)])


def tie_mean(x: jax.Array, sorted_values: jax.Array) -> jax.Array:
  """Mean of x over each run of equal sorted_values, broadcast back."""
  group = tie_groups(sorted_values)
  n = x.shape[0]
  total = jax.ops.segment_sum(x, group, n, indices_are_sorted=True)
  count = jax.ops.segment_sum(jnp.ones_like(x), group, n, indices_are_sorted=True)
  return (total / count)[group]
