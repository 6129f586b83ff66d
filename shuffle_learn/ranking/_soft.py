"""Soft ranks and soft sorts by projection onto the permutahedron, and hard ranks.

References:
  Blondel, Teboul, Berthet, Djolonga. Fast Differentiable Sorting and Ranking.
  ICML 2020 (arXiv:2002.08871), Section 3: soft sort
  s(theta) = P(rho / eps, theta) and soft rank r(theta) = P(theta / eps, rho),
  with rho = (n, n - 1, ..., 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from shuffle_learn.ranking import _checks
from shuffle_learn.ranking import _dense
from shuffle_learn.ranking import _paths
from shuffle_learn.ranking import _pav
from shuffle_learn.ranking import _sorting


def _check(regularization, regularization_strength, direction):
  _checks.check_choice("regularization", regularization, _checks.REGULARIZATIONS)
  _checks.check_positive("regularization_strength", regularization_strength)
  _checks.check_choice("direction", direction, _checks.DIRECTIONS)


def soft_rank(values: jax.typing.ArrayLike, *, regularization_strength: float = 1.0, regularization: str = "l2",
              direction: str = "ascending", axis: int = -1) -> jax.Array:
  r"""Differentiable 1-based ranks along an axis.

  The soft rank is the regularized argmax over the permutahedron
  :math:`\mathcal{P}(\rho)`, :math:`\rho = (n, \dots, 1)`:
  ``"l2"`` gives :math:`P_Q(\pm\theta/\varepsilon, \rho)` and ``"kl"`` gives
  :math:`\exp P_E(\pm\theta/\varepsilon, \log \rho)` (Blondel et al. 2020, Eq. 8).
  Both lie in the permutahedron, so a vector's soft ranks sum to n(n+1)/2.
  As the strength goes to 0 they become the hard ranks; as it grows they go to
  the mean rank (n+1)/2. Exact ties get exactly equal ranks. O(n log n) forward,
  O(n) backward.

  Args:
    values: scores, any shape. bfloat16 and float16 are computed in float32.
    regularization_strength: epsilon > 0. Ranks move from hard to soft around the
      gaps between the values: scale it with them.
    regularization: ``"l2"`` (quadratic) or ``"kl"`` (entropic).
    direction: ``"ascending"`` (smallest value gets rank ~1) or ``"descending"``.
    axis: the axis to rank along.

  Returns:
    Soft ranks, same shape and dtype as ``values``. A vector containing a
    non-finite value gives NaN in that vector only.

  Example:
    >>> soft_rank(jnp.array([3.0, 1.0, 2.0]), regularization_strength=0.1)
    Array([3., 1., 2.], dtype=float32)
    >>> soft_rank(jnp.array([3.0, 1.0, 2.0]), regularization_strength=2.0)  # Halfway to the mean rank 2.
    Array([2.5, 1.5, 2. ], dtype=float32)

  References:
    Blondel et al. Fast Differentiable Sorting and Ranking. ICML 2020.
  """
  _check(regularization, regularization_strength, direction)
  kl = regularization == "kl"
  sign = 1.0 if direction == "ascending" else -1.0

  def one(x):
    n = x.shape[0]
    rho = jnp.arange(n, 0, -1, dtype=x.dtype)
    if not kl:
      return _checks.nan_rows_like(_pav.project_l2_rescaled(x, sign / regularization_strength, rho, 1.0, True), x)
    z = x * (sign / regularization_strength)
    finite_max = jnp.finfo(x.dtype).max
    out = jnp.exp(_pav.project_vector(jnp.clip(z, -finite_max, finite_max), jnp.log(rho), kl=True, w_descending=True))
    return _checks.nan_rows_like(out, x)

  out = _checks.along_axis(one, axis, values)
  if not kl:
    return out
  # Where x / strength overflows in a finite vector, x is farther than n * strength from
  # every other value, so its soft rank is its hard rank; the rest are
  # unaffected. The hard ranks (a sort) are computed only when that happens.
  x = jnp.asarray(values)
  x = x.astype(_checks.compute_dtype(x.dtype))
  finite_rows = jnp.all(jnp.isfinite(x), axis=_checks.check_axis(axis, x.ndim), keepdims=True)
  overflow = jnp.isinf(x * (sign / regularization_strength)) & finite_rows
  return lax.cond(jnp.any(overflow),
                  lambda: jnp.where(overflow, hard_rank(x, direction=direction, axis=axis).astype(out.dtype), out),
                  lambda: out)


def soft_sort(values: jax.typing.ArrayLike, *, regularization_strength: float = 1.0, regularization: str = "l2",
              direction: str = "ascending", axis: int = -1) -> jax.Array:
  r"""Differentiable sort along an axis.

  ``"l2"`` gives :math:`P_Q(\rho/\varepsilon, \theta)` and ``"kl"`` gives
  :math:`P_E(\rho/\varepsilon, \theta)` (Blondel et al. 2020, Eq. 7), with
  :math:`\rho` ordered as the requested direction. The output is in the
  permutahedron of ``values``: it keeps their sum, is sorted in ``direction``,
  tends to the hard sort as the strength goes to 0 and to the mean (L2) as it
  grows.

  Args:
    values, regularization_strength, regularization: as in `soft_rank`.
    direction: ``"ascending"`` or ``"descending"``, the order of the output.
    axis: the axis to sort along.

  Returns:
    Soft-sorted values, same shape and dtype as ``values``.

  Example:
    >>> soft_sort(jnp.array([3.0, 1.0, 2.0]), regularization_strength=0.1)
    Array([1., 2., 3.], dtype=float32)

  References:
    Blondel et al. Fast Differentiable Sorting and Ranking. ICML 2020.
  """
  _check(regularization, regularization_strength, direction)

  def one(x):
    n = x.shape[0]
    if direction == "ascending":
      rho = jnp.arange(1, n + 1, dtype=x.dtype)
    else:
      rho = jnp.arange(n, 0, -1, dtype=x.dtype)
    if regularization == "kl":
      out = _pav.project_vector(rho / regularization_strength, x, kl=True)
    else:
      out = _pav.project_l2_rescaled(rho, 1.0 / regularization_strength, x, 1.0)
    return _checks.nan_rows_like(out, x)

  return _checks.along_axis(one, axis, values)


def hard_rank(values: jax.typing.ArrayLike, *, direction: str = "ascending", axis: int = -1) -> jax.Array:
  """1-based ranks along an axis (not differentiable).

  Tied values share the average of their ranks (as `scipy.stats.rankdata`'s
  default), so the ranks always sum to n(n+1)/2: without ties they are the
  vertex of the permutahedron that maximises ``<y, values>`` (ascending), with
  ties the barycentre of the maximising face.

  Args:
    values: any shape.
    direction: ``"ascending"`` (smallest value gets 1) or ``"descending"``.
    axis: the axis to rank along.

  Returns:
    Ranks as floats in the dtype of ``values`` (float32 for integer input). A
    vector containing NaN gives NaN in that vector only.

  Example:
    >>> hard_rank(jnp.array([3.0, 1.0, 2.0, 1.0]))
    Array([4. , 1.5, 3. , 1.5], dtype=float32)
  """
  _checks.check_choice("direction", direction, _checks.DIRECTIONS)

  def one(x):
    return jnp.where(jnp.any(jnp.isnan(x)), jnp.nan, _hard_rank_vector(x, direction))

  return lax.stop_gradient(_checks.along_axis(one, axis, values))


def _hard_rank_vector(x: jax.Array, direction: str) -> jax.Array:
  """Hard ranks of one vector; tied values share the mean of their positions."""
  n = x.shape[0]
  if _paths.dense(n):
    descending = _dense.hard_rank_descending(x)
  else:
    s, place = _sorting.sort_descending(x)
    positions = jnp.arange(1, n + 1, dtype=x.dtype)
    descending = _sorting.tie_mean(positions, s)[place]
  return descending if direction == "descending" else (n + 1) - descending
