"""Sorting helpers shared by the projections and the hard ranks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def sort_descending(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Sorts a vector in decreasing order.

  One sort carries the values and their indices together, so the place of each
  element is exact. (Searching each value in a sorted copy is faster on CPU, but
  XLA may compute a fused producer of x twice with different rounding, and the
  search then misses.)

  Returns:
    (sorted (n,), place (n,)): x in decreasing order (ties in index order), and
    the position of each element of x in it.
  """
  n = x.shape[0]
  iota = jnp.arange(n, dtype=jnp.int32)
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
