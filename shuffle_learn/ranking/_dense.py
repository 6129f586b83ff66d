"""Permutahedron projections and isotonic regression of short rows, without a sort or a loop.

For rows of n <= `_paths.DENSE_N` the ops compute on all n^2 pairs of a row at
once, which costs more arithmetic than a sort and PAV but only a few dozen
small XLA kernels, with no loop:

* the descending order of a row by counting, for each element, the elements
  that come before it (pairwise comparisons, ties in index order): a
  permutation matrix, applied by masked sums, which are exact;
* the blocks of the decreasing isotonic regression from the min-max
  characterisation of its solution, v_i = min_{j <= i} max_{k >= i} v(j..k)
  with v(j..k) the value of the block j..k (Robertson, Wright, Dykstra. Order
  Restricted Statistical Inference, 1988, Theorem 1.4.4; it holds for the KL
  block values too, which are Cauchy means): elements k and k + 1 are in
  different blocks iff every block value ending at k exceeds every block value
  starting at k + 1. These are PAV's blocks, which pool equal values;
* block sums as masked sums over the block-membership matrix.

The results and VJPs are those of `_pav` (Blondel, Teboul, Berthet, Djolonga.
Fast Differentiable Sorting and Ranking. ICML 2020, Section 5), in the same
formulas, so that the paths agree to rounding.

Arrays are batch-last, (n, *batch), so that XLA vectorises over the batch;
`jax.vmap` moves its axis last (`_batch_last`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from shuffle_learn.ranking import _sorting


def _batch_last(fn):
  """`fn` on (n, *batch) arrays, vmapped by moving the mapped axis last.

  An argument that is not mapped gets a trailing axis of size 1, so that it
  broadcasts (and XLA can fold what depends on it alone, such as rho); outputs
  that depend on such arguments only come back unmapped.
  """

  @jax.custom_batching.custom_vmap
  def batched(*args):
    return fn(*args)

  @batched.def_vmap
  def rule(axis_size, in_batched, *args):
    moved = [jnp.moveaxis(a, 0, -1) if b else a[..., None] for a, b in zip(args, in_batched)]
    outs = batched(*moved)
    mapped = jax.tree.map(lambda o: axis_size == 1 or o.shape[-1] != 1, outs)
    outs = jax.tree.map(lambda o, m: jnp.moveaxis(o, -1, 0) if m else o[..., 0], outs, mapped)
    return outs, mapped

  return batched


def _iota(n: int, ndim: int, axis: int) -> jax.Array:
  shape = [1] * ndim
  shape[axis] = n
  return lax.broadcasted_iota(jnp.int32, tuple(shape), axis)


def _order(x: jax.Array) -> jax.Array:
  """P (n, n, *b): P[p, i] iff x_i is at place p of x sorted descending (ties in index order)."""
  return _sorting.places(x)[None, :] == _iota(x.shape[0], x.ndim + 1, 0)


def _sort(order: jax.Array, x: jax.Array) -> jax.Array:
  return jnp.sum(jnp.where(order, x[None, :], 0), axis=1)


def _unsort(order: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.sum(jnp.where(order, y[:, None], 0), axis=0)


def _block_sum(same: jax.Array, x: jax.Array) -> jax.Array:
  """Sum of x over each element's block, (n, *b)."""
  return jnp.sum(jnp.where(same, x[None, :], 0), axis=1)


def _block_lse(same: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(m, log sum exp(x - m)) over each element's block, m the block's largest value."""
  top = jnp.max(jnp.where(same, x[None, :], -jnp.inf), axis=1)
  return top, jnp.log(jnp.sum(jnp.where(same, jnp.exp(x[None, :] - top[:, None]), 0), axis=1))


def _prefix(m: jax.Array, op) -> jax.Array:
  """Inclusive scan with `op` along axis 1 of (n, n, *b), unrolled (n is small)."""
  out = [m[:, 0]]
  for k in range(1, m.shape[1]):
    out.append(op(out[-1], m[:, k]))
  return jnp.stack(out, axis=1)


def _boundaries(y: jax.Array, w: jax.Array, kl: bool, decreasing_inputs: bool):
  """Where the blocks of the decreasing isotonic regression of y against w end.

  The block values v(j..k) are computed relative to y_j and w_j, so that ties and
  singletons compare exactly however large |y| is. With `decreasing_inputs`
  (y and w sorted descending) the KL sums start from their largest term.

  Returns:
    (n - 1, *b): whether elements k and k + 1 are in different blocks (see the
    module docstring), and for KL the (n, n, *b) matrices log sum_{l=j..k}
    exp(x_l - x_j) of y and of w.
  """
  n = y.shape[0]
  j, k = _iota(n, y.ndim + 1, 0), _iota(n, y.ndim + 1, 1)
  upper = k >= j  # [j, k]: the block j..k.

  def centered(x):
    return jnp.where(upper, x[None, :] - x[:, None], 0 if not kl else -jnp.inf)

  if kl:
    if decreasing_inputs:  # Terms <= 1: exp, sum, log.
      lse = lambda x: jnp.log(_prefix(jnp.exp(centered(x)), jnp.add))
    else:
      lse = lambda x: _prefix(centered(x), jnp.logaddexp)
    y_lse, w_lse = lse(y), lse(w)
    v = (y[:, None] + y_lse) - (w[:, None] + w_lse)
  else:
    count = (k - j + 1).astype(y.dtype)
    # One sum: mean(y_j..y_k) - mean(w_j..w_k) = (y_j - w_j) + mean((y_l - y_j) - (w_l - w_j)).
    v = (y - w)[:, None] + _prefix(centered(y) - centered(w), jnp.add) / count
  ending = jnp.min(jnp.where(upper, v, jnp.inf), axis=0)  # min over j <= k of v(j..k), at k.
  starting = jnp.max(jnp.where(upper, v, -jnp.inf), axis=1)  # max over l >= j of v(j..l), at j.
  return ending[:-1] > starting[1:], ((y_lse, w_lse) if kl else None)


def _membership(boundary: jax.Array) -> jax.Array:
  """same (n, n, *b): whether p and l are in one block."""
  block = jnp.cumsum(boundary.astype(jnp.int32), axis=0)
  block = jnp.concatenate([jnp.zeros((1,) + block.shape[1:], jnp.int32), block])
  return block[:, None] == block[None, :]


def _block_lse_from(same: jax.Array, x: jax.Array, prefix_lse: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(x_first, log sum exp(x - x_first)) over each element's block, read from `_boundaries`' matrix."""
  n = same.shape[0]
  l = _iota(n, same.ndim, 1)
  first = jnp.min(jnp.where(same, l, n), axis=1)
  last = jnp.max(jnp.where(same, l, -1), axis=1)
  x_first = jnp.take_along_axis(jnp.broadcast_to(x, first.shape), first, axis=0)
  flat = prefix_lse.reshape((n * n,) + prefix_lse.shape[2:])
  return x_first, jnp.take_along_axis(jnp.broadcast_to(flat, (n * n,) + first.shape[1:]), first * n + last, axis=0)


def _sum_to(x: jax.Array, shape) -> jax.Array:
  """Sums the axes that broadcasting gave x beyond `shape` (size 1 there): the
  gradient of an argument that the batch shares."""
  axes = tuple(a for a in range(x.ndim) if shape[a] == 1 and x.shape[a] != 1)
  return jnp.sum(x, axis=axes, keepdims=True) if axes else x


# ---------------------------------------------------------------------------
# Projection onto the permutahedron: mu = z - v(sorted z, sorted w).
# ---------------------------------------------------------------------------


def _project_fwd_cols(kl, w_descending, z, w):
  z_order = _order(z)
  s = _sort(z_order, z)
  w_order = None if w_descending else _order(w)
  ws = w if w_descending else _sort(w_order, w)
  # Equal sorted values always pool (w is sorted descending too); exact for ties.
  boundary, prefix_lse = _boundaries(s, ws, kl, True)
  same = _membership(boundary & (s[:-1] != s[1:]))
  if kl:
    top, s_part = _block_lse_from(same, s, prefix_lse[0])
    w_top, w_rest = _block_lse_from(same, ws, prefix_lse[1])
    w_part = w_top + w_rest
    mu = (s - top) - s_part + w_part
    s_weight = jnp.exp((s - top) - s_part)  # The block softmaxes of s and of w.
    w_weight = jnp.exp(ws - w_part)
  else:
    count = jnp.sum(same, axis=1).astype(s.dtype)
    mu = jnp.sum(jnp.where(same, (s[:, None] - s[None, :]) + ws[None, :], 0), axis=1) / count
    s_weight = w_weight = 1 / count
  residuals = (z_order, same, s_weight, w_weight, ws) + (() if w_descending else (w_order,))
  return _unsort(z_order, mu), residuals


def _project_bwd_cols(z_order, same, s_weight, w_weight, ws, *w_order_and_g):
  *w_order, g = w_order_and_g
  g_sorted = _sort(z_order, g)
  total = _block_sum(same, g_sorted)
  grad_z = g_sorted - s_weight * total
  grad_w = w_weight * total
  tie = ws[:, None] == ws[None, :]  # Tied entries of w share their gradient equally.
  grad_w = jnp.sum(jnp.where(tie, grad_w[None, :], 0), axis=1) / jnp.sum(tie, axis=1)
  if w_order:
    grad_w = _unsort(w_order[0], grad_w)
  return _sum_to(_unsort(z_order, grad_z), z_order.shape[1:]), _sum_to(grad_w, ws.shape)


_PROJECT_FWD = {(kl, w_descending): _batch_last(functools.partial(_project_fwd_cols, kl, w_descending))
                for kl in (False, True) for w_descending in (False, True)}
_PROJECT_BWD = _batch_last(_project_bwd_cols)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def project(z: jax.Array, w: jax.Array, kl: bool, w_descending: bool = False) -> jax.Array:
  """Projection of z (n,) onto the permutahedron of w, as `_pav.project_vector`."""
  return _PROJECT_FWD[kl, w_descending](z, w)[0]


def _project_fwd(z, w, kl, w_descending):
  return _PROJECT_FWD[kl, w_descending](z, w)


def _project_bwd(kl, w_descending, residuals, g):
  del w_descending  # The residuals say.
  return _PROJECT_BWD(*residuals, g)


project.defvjp(_project_fwd, _project_bwd)


# ---------------------------------------------------------------------------
# Decreasing isotonic regression.
# ---------------------------------------------------------------------------


def _isotonic_fwd_cols(kl, y, w):
  same = _membership(_boundaries(y, w, kl, False)[0])
  if kl:
    y_top, y_rest = _block_lse(same, y)
    w_top, w_rest = _block_lse(same, w)
    y_part, w_part = y_top + y_rest, w_top + w_rest
    v = y_part - w_part
    y_weight, w_weight = jnp.exp(y - y_part), jnp.exp(w - w_part)
  else:
    count = jnp.sum(same, axis=1).astype(y.dtype)
    v = _block_sum(same, y) / count - _block_sum(same, w) / count
    y_weight = w_weight = 1 / count
  return v, (same, y_weight, w_weight, y, w)


def _isotonic_bwd_cols(same, y_weight, w_weight, y, w, g):
  total = _block_sum(same, g)
  return _sum_to(y_weight * total, y.shape), _sum_to(-w_weight * total, w.shape)


_ISOTONIC_FWD = {kl: _batch_last(functools.partial(_isotonic_fwd_cols, kl)) for kl in (False, True)}
_ISOTONIC_BWD = _batch_last(_isotonic_bwd_cols)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def isotonic_decreasing(y: jax.Array, w: jax.Array, kl: bool) -> jax.Array:
  """Decreasing isotonic regression of one vector, as `_pav._isotonic_decreasing`."""
  return _ISOTONIC_FWD[kl](y, w)[0]


isotonic_decreasing.defvjp(lambda y, w, kl: _ISOTONIC_FWD[kl](y, w),
                           lambda kl, residuals, g: _ISOTONIC_BWD(*residuals, g))


def hard_rank_descending(x: jax.Array) -> jax.Array:
  """1-based descending ranks of one vector, tied values sharing the mean of their places."""
  x = _sorting.materialized(x)
  above = jnp.sum(x[None, :] > x[:, None], axis=1)
  tied = jnp.sum(x[None, :] == x[:, None], axis=1)
  return (above + (tied + 1) / 2).astype(x.dtype)
