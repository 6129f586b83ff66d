"""Permutations of patches and their ranking targets.

The pretext task shuffles the ``n`` patches of each example with a permutation
``perm`` (slot ``j`` of the shuffled input holds original patch ``perm[j]``) and
trains a network to output one score per slot whose ascending ranks are
``perm + 1``: sorting the slots by score then puts the patches back in their
original order.

References:
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021.
  Noroozi, Favaro. Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles. ECCV 2016, Section 3.2 and Algorithm 1: permutation sets of
  maximal minimum Hamming distance.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn import _checks

# Up to this n, hamming_permutation_set searches all n! permutations by default.
MAX_EXHAUSTIVE_N = 9
DEFAULT_NUM_CANDIDATES = 100_000


def _check_permutations(permutations) -> jax.Array:
  permutations = jnp.asarray(permutations)
  if not jnp.issubdtype(permutations.dtype, jnp.integer):
    raise ValueError(f"permutations must be an integer array, got dtype {permutations.dtype}.")
  if permutations.ndim == 0:
    raise ValueError("permutations must have shape (..., n), got a scalar.")
  return permutations


def sample_permutations(key: jax.Array, batch_size: int, n: int) -> jax.Array:
  """Independent permutations of ``0 .. n - 1``, uniform over all ``n!``.

  Runs on the device; under ``jit``, ``batch_size`` and ``n`` must be static
  (``jax.jit(sample_permutations, static_argnums=(1, 2))``).

  Args:
    key: a JAX PRNG key.
    batch_size: number of permutations, >= 1.
    n: permutation length, >= 1.

  Returns:
    int32 ``(batch_size, n)``; each row is a permutation.

  Example:
    >>> sample_permutations(jax.random.key(0), 2, 4).shape
    (2, 4)
  """
  batch_size = _checks.check_int("batch_size", batch_size, 1)
  n = _checks.check_int("n", n, 1)
  identity = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (batch_size, n))
  # `jax.random.permutation` sorts by random keys in several rounds, so ties
  # (which would bias an argsort of uniforms) are negligible.
  return jax.random.permutation(key, identity, axis=1, independent=True)


def shuffle_patches(patches: jax.typing.ArrayLike, permutations: jax.typing.ArrayLike) -> jax.Array:
  """Reorders patches: ``shuffled[b, j] = patches[b, permutations[b, j]]``.

  Args:
    patches: ``batch_shape + (n,) + patch_shape``: the patch axis follows the
      batch axes (axis 1 for one batch axis).
    permutations: integer ``batch_shape + (n,)``, each row a permutation of
      ``0 .. n - 1`` (not checked: out-of-range indices are clamped).

  Returns:
    The shuffled patches, shape and dtype of ``patches``.
  """
  patches = jnp.asarray(patches)
  permutations = _check_permutations(permutations)
  if patches.shape[:permutations.ndim] != permutations.shape:
    raise ValueError(
        f"patches must start with the shape of permutations {permutations.shape}, got {patches.shape}.")
  axis = permutations.ndim - 1
  index = permutations.reshape(permutations.shape + (1,) * (patches.ndim - permutations.ndim))
  return jnp.take_along_axis(patches, index, axis=axis, mode="clip")


def invert_permutations(permutations: jax.typing.ArrayLike) -> jax.Array:
  """The inverse permutations: ``inverse[..., permutations[..., j]] = j``.

  Args:
    permutations: integer ``(..., n)``, each row a permutation.

  Returns:
    int32 ``(..., n)``.
  """
  permutations = _check_permutations(permutations)
  return jnp.argsort(permutations, axis=-1).astype(jnp.int32)


def unshuffle_patches(shuffled: jax.typing.ArrayLike, permutations: jax.typing.ArrayLike) -> jax.Array:
  """Undoes `shuffle_patches`: ``unshuffle_patches(shuffle_patches(p, perm), perm) == p``.

  Args:
    shuffled: ``batch_shape + (n,) + patch_shape``.
    permutations: the permutations ``batch_shape + (n,)`` that shuffled them.

  Returns:
    The patches in their original order.
  """
  return shuffle_patches(shuffled, invert_permutations(permutations))


def permutation_ranks(permutations: jax.typing.ArrayLike) -> jax.Array:
  """Target ranks of the pretext task: ``permutations + 1``, as float32.

  Slot ``j`` of the shuffled input holds original patch ``permutations[j]``, so
  if a network scores each slot by the original position of its patch, the
  ascending 1-based rank of slot ``j``'s score is ``permutations[j] + 1``:
  ``shuffle_learn.ranking.hard_rank(scores) == permutation_ranks(permutations)``
  and ``partial_ranks_accuracy(scores, permutation_ranks(permutations)) == 1``.
  These are the ``target_ranks`` of the ranking losses.

  Args:
    permutations: integer ``(..., n)``, each row a permutation of ``0 .. n - 1``.

  Returns:
    float32 ``(..., n)`` ranks in ``1 .. n``.
  """
  permutations = _check_permutations(permutations)
  return permutations.astype(jnp.float32) + 1.0


def _all_permutations(n: int) -> np.ndarray:
  """All n! permutations in lexicographic order, int8 (n!, n).

  Built from those of ``range(m - 1)``: first element ``i``, then a permutation
  of the remaining values, index ``r`` standing for ``r + (r >= i)``.
  """
  perms = np.zeros((1, 0), np.int8)
  for m in range(1, n + 1):
    first = np.repeat(np.arange(m, dtype=np.int8), len(perms))[:, None]
    rest = np.tile(perms, (m, 1))
    perms = np.concatenate([first, rest + (rest >= first)], axis=1).astype(np.int8)
  return perms


def _random_permutations(rng: np.random.Generator, count: int, n: int, minimum: int) -> np.ndarray:
  """Distinct uniform permutations, in the order drawn: ``count`` draws less duplicates, at least ``minimum``."""
  dtype = np.int8 if n <= 127 else np.int16
  found = np.empty((0, n), dtype)
  while len(found) < minimum:
    draws = rng.permuted(np.tile(np.arange(n, dtype=dtype), (count, 1)), axis=1)
    merged = np.concatenate([found, draws])
    _, first = np.unique(merged, axis=0, return_index=True)
    found = merged[np.sort(first)]
  return found


def hamming_permutation_set(n: int, k: int, *, seed: int = 0, num_candidates: int | None = None) -> np.ndarray:
  """A fixed set of ``k`` permutations with a large minimum Hamming distance.

  The greedy selection of Noroozi & Favaro 2016 (Algorithm 1, "maximal"
  minimum distance): start from a random candidate, then repeatedly add the
  candidate whose minimum Hamming distance (number of positions that differ) to
  the permutations chosen so far is largest, ties going to the first candidate.
  Candidates are all ``n!`` permutations in lexicographic order when ``n <= 9``
  (``num_candidates=None``) or when ``num_candidates >= n!``; otherwise about
  ``num_candidates`` (default 100,000) distinct uniformly random permutations.
  Vectorised NumPy: O(k * candidates * n) time, under a second for ``n=9`` or
  ``n=10`` with ``k=100``.

  Args:
    n: permutation length, >= 2.
    k: number of permutations, 1 <= k <= n!.
    seed: the result is a deterministic function of ``(n, k, seed,
      num_candidates)``.
    num_candidates: size of the random candidate pool, >= k; ``None`` for all
      permutations up to ``n = 9`` and 100,000 above.

  Returns:
    NumPy int32 ``(k, n)``: distinct permutations of ``0 .. n - 1``, in the order
    chosen (row 0 is the random start).
  """
  n = _checks.check_int("n", n, 2)
  k = _checks.check_int("k", k, 1)
  _checks.check_int("seed", seed)
  total = math.factorial(n)
  if k > total:
    raise ValueError(f"k must be <= n! = {total} for n={n}, got {k}.")
  if num_candidates is not None:
    num_candidates = _checks.check_int("num_candidates", num_candidates, 1)
    if num_candidates < k:
      raise ValueError(f"num_candidates must be >= k={k}, got {num_candidates}.")
  rng = np.random.default_rng(seed)
  exhaustive = n <= MAX_EXHAUSTIVE_N if num_candidates is None else num_candidates >= total
  if exhaustive:
    candidates = _all_permutations(n)
  else:
    candidates = _random_permutations(rng, num_candidates or DEFAULT_NUM_CANDIDATES, n, k)
  # One row per position: comparing rows of contiguous values is much faster
  # than counting along the short axis of (candidates, n).
  by_position = np.ascontiguousarray(candidates.T)
  chosen = np.empty(k, np.int64)
  chosen[0] = rng.integers(len(candidates))
  min_distance = np.full(len(candidates), n, np.int32)
  distance = np.empty(len(candidates), np.int32)
  for i in range(1, k):
    last = candidates[chosen[i - 1]]
    distance[:] = 0
    for position in range(n):
      distance += by_position[position] != last[position]
    np.minimum(min_distance, distance, out=min_distance)
    min_distance[chosen[i - 1]] = -1  # Never chosen again.
    chosen[i] = np.argmax(min_distance)
  return candidates[chosen].astype(np.int32)
