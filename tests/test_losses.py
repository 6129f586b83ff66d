"""Tests for `soft_rank_loss`, `rank_mse_loss` and `partial_ranks_accuracy`.

The references are independent of the library:

* The L2 soft rank P(theta / eps, rho), rho = (n, ..., 1), computed with
  scikit-learn's isotonic regression (Blondel et al. 2020, Proposition 3: sort
  z = theta / eps decreasingly, v = decreasing isotonic fit of z_sorted - rho,
  P = z - v put back in place). Its Jacobian with respect to theta is
  (I - block averaging over the isotonic blocks) / eps.
* The limits of the soft rank: hard ranks as eps -> 0 for separated scores,
  the mean rank (n + 1) / 2 as eps -> infinity (for both regularizations).
* Finite differences (`jax.test_util.check_grads`) in float64.
* Ranks from `scipy.stats.rankdata` (ties share the average rank, as
  `hard_rank` documents) and plain numpy counts.

Calls go through `jax.jit` where possible (eager dispatch compiles every
primitive separately); eager execution is compared with jit explicitly.
"""

import functools

import jax
import jax.numpy as jnp
from jax import test_util
import ml_dtypes
import numpy as np
import pytest
from scipy import stats
from sklearn import isotonic

from shuffle_learn.ranking import partial_ranks_accuracy
from shuffle_learn.ranking import rank_mse_loss
from shuffle_learn.ranking import soft_rank_loss

REGULARIZATIONS = ("l2", "kl")

_soft_rank_loss = jax.jit(soft_rank_loss, static_argnames=("regularization", "axis"))
_rank_mse_loss = jax.jit(rank_mse_loss, static_argnames=("axis",))
_accuracy = jax.jit(partial_ranks_accuracy, static_argnames=("axis",))


# ---------------------------------------------------------------------------
# Independent references.
# ---------------------------------------------------------------------------


def _np_soft_rank_l2(theta, eps):
  """L2 soft rank of a vector and its Jacobian d rank / d theta (float64)."""
  z = np.asarray(theta, np.float64) / eps
  n = z.size
  rho = np.arange(n, 0, -1, dtype=np.float64)
  perm = np.argsort(-z, kind="stable")
  v = isotonic.IsotonicRegression(increasing=False).fit_transform(np.arange(n), z[perm] - rho)
  ranks = np.empty(n)
  ranks[perm] = z[perm] - v
  # v is constant on blocks of the sorted order: dv/dz averages over a block.
  block_of_sorted = np.concatenate([[0], np.cumsum(np.abs(np.diff(v)) > 1e-9)])
  block = np.empty(n, int)
  block[perm] = block_of_sorted
  same = (block[:, None] == block[None, :]).astype(np.float64)
  averaging = same / same.sum(axis=1, keepdims=True)
  return ranks, (np.eye(n) - averaging) / eps


def _np_rank_rows(x, method="average"):
  return stats.rankdata(np.asarray(x, np.float64), method=method, axis=-1)


def _random_permutations(rng, shape):
  """Random permutations of 1..n along the last axis of `shape`."""
  flat = np.stack([rng.permutation(shape[-1]) + 1 for _ in range(int(np.prod(shape[:-1])))])
  return flat.reshape(shape).astype(np.float32)


def _along_axis(fn, x, t, axis):
  """Applies a per-vector numpy reference along `axis`: result has x.shape without axis."""
  xm, tm = np.moveaxis(np.asarray(x, np.float64), axis, -1), np.moveaxis(np.asarray(t, np.float64), axis, -1)
  out = np.array([fn(a, b) for a, b in zip(xm.reshape(-1, xm.shape[-1]), tm.reshape(-1, tm.shape[-1]))])
  return out.reshape(xm.shape[:-1])


def _np_accuracy(x, t):
  return np.mean(_np_rank_rows(x) == t)


SHAPES_AND_AXES = (
    ((6,), -1),
    ((6,), 0),
    ((4, 6), -1),
    ((6, 4), 0),
    ((2, 6, 3), 1),
)


def _inputs(shape, axis, seed):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(shape).astype(np.float32)
  moved = np.moveaxis(np.empty(shape), axis, -1).shape
  t = np.moveaxis(_random_permutations(rng, moved), -1, axis)
  return x, t


def test_soft_rank_reference_is_sound():
  # The oracle itself: it lies in the permutahedron (sum n(n+1)/2), tends to
  # the hard ranks and to the mean, and its Jacobian matches finite differences.
  rng = np.random.default_rng(0)
  theta = rng.standard_normal(7)
  for eps in (0.05, 0.5, 2.0):
    ranks, jac = _np_soft_rank_l2(theta, eps)
    np.testing.assert_allclose(ranks.sum(), 28.0)
    fd = np.stack([(_np_soft_rank_l2(theta + 1e-6 * e, eps)[0] - _np_soft_rank_l2(theta - 1e-6 * e, eps)[0]) / 2e-6
                   for e in np.eye(7)], axis=1)
    np.testing.assert_allclose(jac, fd, atol=1e-5)
  np.testing.assert_allclose(_np_soft_rank_l2(theta * 1e3, 1e-3)[0], _np_rank_rows(theta))
  np.testing.assert_allclose(_np_soft_rank_l2(theta, 1e6)[0], np.full(7, 4.0), atol=1e-5)


# ---------------------------------------------------------------------------
# soft_rank_loss.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape,axis", SHAPES_AND_AXES)
def test_soft_rank_loss_l2_matches_isotonic_reference(shape, axis):
  x, t = _inputs(shape, axis, 1)
  eps = 0.4
  got = _soft_rank_loss(x, t, regularization_strength=eps, axis=axis)
  assert got.shape == tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
  assert got.dtype == jnp.float32
  want = _along_axis(lambda a, b: 0.5 * np.sum((_np_soft_rank_l2(a, eps)[0] - b) ** 2), x, t, axis)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eps", (0.1, 0.7, 3.0))
def test_soft_rank_loss_l2_grad_matches_closed_form_jacobian(eps):
  x, t = _inputs((4, 6), -1, 2)
  got = jax.jit(jax.grad(lambda s, e: jnp.sum(soft_rank_loss(s, t, regularization_strength=e))))(x, eps)
  for row in range(4):
    ranks, jac = _np_soft_rank_l2(x[row], eps)
    np.testing.assert_allclose(np.asarray(got[row]), jac.T @ (ranks - t[row]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
@pytest.mark.parametrize("shape,axis", (((6,), 0), ((4, 6), -1), ((2, 6, 3), 1)))
def test_soft_rank_loss_limits(regularization, shape, axis):
  # Scores at least 1 apart.
  rng = np.random.default_rng(3)
  n = shape[axis]
  moved = np.moveaxis(np.empty(shape), axis, -1).shape
  x = np.moveaxis(_random_permutations(rng, moved) * 2.0 - 5.0, -1, axis)
  _, t = _inputs(shape, axis, 4)
  # Small strength (gaps / strength = 40): the hard ranks. Not smaller: the KL
  # projection works on log-sum-exps of scores / strength, whose float32
  # rounding grows with that ratio (about 1e-3 on these ranks at 1e-3).
  tiny = _soft_rank_loss(x, t, regularization_strength=0.05, regularization=regularization, axis=axis)
  want = _along_axis(lambda a, b: 0.5 * np.sum((_np_rank_rows(a) - b) ** 2), x, t, axis)
  np.testing.assert_allclose(np.asarray(tiny), want, rtol=1e-4, atol=1e-3)
  # Huge strength: every soft rank is the mean rank (n + 1) / 2.
  huge = _soft_rank_loss(x, t, regularization_strength=1e7, regularization=regularization, axis=axis)
  want = _along_axis(lambda a, b: 0.5 * np.sum(((n + 1) / 2 - b) ** 2), x, t, axis)
  np.testing.assert_allclose(np.asarray(huge), want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_soft_rank_loss_is_zero_with_zero_grad_for_separated_scores_in_target_order(regularization):
  t = np.array([[3.0, 1.0, 4.0, 2.0], [1.0, 2.0, 3.0, 4.0]], np.float32)
  loss, grad = jax.jit(jax.value_and_grad(
      lambda s: jnp.sum(soft_rank_loss(s, t, regularization_strength=0.01, regularization=regularization))))(t * 10.0)
  np.testing.assert_allclose(float(loss), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(grad), 0.0, atol=1e-5)


# Regression: with jax_enable_x64 on, every PAV-based op used to fail
# (lax.dynamic_slice with int32 and int64 indices), even for float32 input.
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_soft_rank_loss_check_grads_float64(regularization):
  with jax.enable_x64(True):
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((3, 5)))
    t = jnp.asarray(_random_permutations(rng, (3, 5)), jnp.float64)
    f = jax.jit(lambda s: soft_rank_loss(s, t, regularization_strength=0.5, regularization=regularization))
    value = f(x)
    assert value.dtype == jnp.float64
    test_util.check_grads(f, (x,), order=1, modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)
    as_float32 = f(x.astype(jnp.float32))
    assert as_float32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(as_float32), np.asarray(value), rtol=1e-4)
  if regularization == "l2":
    want = _along_axis(lambda a, b: 0.5 * np.sum((_np_soft_rank_l2(a, 0.5)[0] - b) ** 2), np.asarray(x),
                       np.asarray(t), -1)
    np.testing.assert_allclose(np.asarray(value), want, rtol=1e-10)


def test_x64_setting_is_restored():
  assert jnp.zeros(1).dtype == jnp.float32
  assert not jax.config.read("jax_enable_x64")


@pytest.mark.parametrize("dtype,out_dtype", ((jnp.float32, jnp.float32), (jnp.bfloat16, jnp.bfloat16),
                                             (jnp.int32, jnp.float32)))
def test_soft_rank_loss_dtype(dtype, out_dtype):
  x = jnp.array([[3, -1, 2, 0], [10, 20, 30, -5]]).astype(dtype)
  t = np.array([[4.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]], np.float32)
  got = _soft_rank_loss(x, t, regularization_strength=1e-2)
  assert got.dtype == out_dtype
  assert got.shape == (2,)
  # Hard ranks (4, 1, 3, 2) and (2, 3, 4, 1).
  np.testing.assert_allclose(np.asarray(got, np.float32), [1.0, 6.0], rtol=1e-2)


def test_soft_rank_loss_nan_only_poisons_its_row():
  x, t = _inputs((3, 5), -1, 6)
  x[1, 2] = np.nan
  got = np.asarray(_soft_rank_loss(x, t, regularization_strength=0.5))
  assert np.isnan(got[1])
  want = _along_axis(lambda a, b: 0.5 * np.sum((_np_soft_rank_l2(a, 0.5)[0] - b) ** 2), x[[0, 2]], t[[0, 2]], -1)
  np.testing.assert_allclose(got[[0, 2]], want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# rank_mse_loss.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape,axis", SHAPES_AND_AXES)
def test_rank_mse_loss_matches_numpy(shape, axis):
  x, t = _inputs(shape, axis, 7)
  x = x * 3.0 + 2.0
  got = _rank_mse_loss(x, t, axis=axis)
  want = 0.5 * np.sum((x.astype(np.float64) - t) ** 2, axis=axis)
  assert got.shape == want.shape
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
  grad = jax.jit(jax.grad(lambda s: jnp.sum(rank_mse_loss(s, t, axis=axis))))(x)
  np.testing.assert_allclose(np.asarray(grad), x - t, rtol=1e-6)


def test_rank_mse_loss_check_grads_float64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.standard_normal((3, 5)))
    t = jnp.asarray(_random_permutations(rng, (3, 5)), jnp.float64)
    assert rank_mse_loss(x, t).dtype == jnp.float64
    test_util.check_grads(jax.jit(lambda s, tt: rank_mse_loss(s, tt, axis=0)), (x, t), order=2, modes=("rev",))


@pytest.mark.parametrize("dtype,out_dtype", ((jnp.float32, jnp.float32), (jnp.bfloat16, jnp.bfloat16),
                                             (jnp.int32, jnp.float32)))
def test_rank_mse_loss_dtype(dtype, out_dtype):
  x = jnp.array([[3, -1, 2, 0], [10, 20, 30, -5]]).astype(dtype)
  t = np.array([[4, 1, 2, 3], [1, 2, 3, 4]])
  got = _rank_mse_loss(x, t)
  assert got.dtype == out_dtype
  np.testing.assert_allclose(np.asarray(got, np.float32), [0.5 * (1 + 4 + 0 + 9), 0.5 * (81 + 324 + 729 + 81)],
                             rtol=1e-2)


# ---------------------------------------------------------------------------
# partial_ranks_accuracy.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape,axis", SHAPES_AND_AXES)
def test_partial_ranks_accuracy_matches_numpy_count(shape, axis):
  rng = np.random.default_rng(9)
  # Small integers: many ties (ranked by their average rank, as hard_rank and
  # scipy.stats.rankdata do), and scores that partly follow the target.
  _, t = _inputs(shape, axis, 9)
  x = np.where(rng.random(shape) < 0.5, t, rng.integers(0, 4, shape)).astype(np.float32)
  got = _accuracy(x, t, axis=axis)
  want = _along_axis(_np_accuracy, x, t, axis)
  assert got.shape == want.shape
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_partial_ranks_accuracy_orders():
  t = _random_permutations(np.random.default_rng(10), (4, 7))
  # Scores in the target order, through any increasing map: accuracy 1.
  np.testing.assert_array_equal(np.asarray(_accuracy(np.exp(t / 2.0) - 3.0, t)), np.ones(4))
  # Reversed order: only the middle item of an odd-length vector is right.
  np.testing.assert_allclose(np.asarray(_accuracy(-t, t)), np.full(4, 1.0 / 7.0), rtol=1e-6)
  # One swap: two items wrong.
  swapped = t.copy()
  swapped[:, [0, 1]] = swapped[:, [1, 0]]
  np.testing.assert_allclose(np.asarray(_accuracy(swapped, t)), np.full(4, 5.0 / 7.0), rtol=1e-6)


def test_partial_ranks_accuracy_chance_level():
  # For random scores and an independent uniform random target, the number of
  # items in place is the number of fixed points of a uniform permutation:
  # mean 1 and variance 1, so the accuracy has mean 1/n and standard deviation
  # 1/n per row, and the mean over R rows has standard error 1/(n sqrt R).
  rows, n = 20_000, 5
  rng = np.random.default_rng(11)
  t = _random_permutations(rng, (rows, n))
  x = rng.standard_normal((rows, n)).astype(np.float32)
  got = np.asarray(_accuracy(x, t))
  assert np.all((got >= 0.0) & (got <= 1.0))
  np.testing.assert_allclose(got, np.mean(_np_rank_rows(x) == t, axis=-1), rtol=1e-6)
  assert abs(got.mean() - 1.0 / n) < 5.0 / (n * np.sqrt(rows))


def test_partial_ranks_accuracy_nan_row_does_not_affect_others():
  x, t = _inputs((3, 5), -1, 12)
  x[1, 0] = np.nan
  got = np.asarray(_accuracy(x, t))
  np.testing.assert_allclose(got[[0, 2]], [_np_accuracy(x[0], t[0]), _np_accuracy(x[2], t[2])], rtol=1e-6)


def test_partial_ranks_accuracy_bfloat16_long_vector():
  # Regression: ranks used to be compared in bfloat16, where 256 and 257 are
  # both 256. 300 consecutive bfloat16 numbers from 1.0: distinct and exact.
  scores = (np.arange(300, dtype=np.uint16) + 0x3F80).view(ml_dtypes.bfloat16)
  assert len(np.unique(scores.astype(np.float32))) == 300
  t = np.arange(1.0, 301.0, dtype=np.float32)
  t[[255, 256]] = t[[256, 255]]  # Items of ranks 256 and 257 swapped: both wrong.
  np.testing.assert_allclose(float(_accuracy(jnp.asarray(scores), t)), 298.0 / 300.0, rtol=1e-6)


# ---------------------------------------------------------------------------
# All three: transformations and invalid arguments.
# ---------------------------------------------------------------------------


_OPS = {
    "soft_rank_loss_l2": functools.partial(soft_rank_loss, regularization_strength=0.3),
    "soft_rank_loss_kl": functools.partial(soft_rank_loss, regularization_strength=0.3, regularization="kl"),
    "rank_mse_loss": rank_mse_loss,
    "partial_ranks_accuracy": partial_ranks_accuracy,
}


@pytest.mark.parametrize("name", tuple(_OPS))
def test_eager_equals_jit_and_vmap_equals_loop(name):
  op = _OPS[name]
  jitted = jax.jit(op)
  x, t = _inputs((3, 5), -1, 13)
  eager = np.asarray(op(x, t))
  np.testing.assert_allclose(np.asarray(jitted(x, t)), eager, rtol=1e-6, atol=1e-6)
  loop = np.array([float(jitted(x[i], t[i])) for i in range(3)])
  np.testing.assert_allclose(eager, loop, rtol=1e-6, atol=1e-6)
  # vmap under jit, with the scores computed inside the graph.
  doubled = np.array([float(jitted(2.0 * x[i], t[i])) for i in range(3)])
  np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(lambda s, tt: op(2.0 * s, tt)))(x, t)), doubled,
                             rtol=1e-6, atol=1e-6)


_BAD = (
    ("soft_rank_loss", {"regularization": "l1"}, "regularization"),
    ("soft_rank_loss", {"regularization_strength": 0.0}, "regularization_strength"),
    ("soft_rank_loss", {"regularization_strength": -1.0}, "regularization_strength"),
    ("soft_rank_loss", {"regularization_strength": float("nan")}, "regularization_strength"),
    ("soft_rank_loss", {"axis": 2}, "axis"),
    ("rank_mse_loss", {"axis": 2}, "axis"),
    ("rank_mse_loss", {"axis": -3}, "axis"),
    ("partial_ranks_accuracy", {"axis": 2}, "axis"),
    ("partial_ranks_accuracy", {"axis": 1.0}, "axis"),
)
_FUNCTIONS = {"soft_rank_loss": soft_rank_loss, "rank_mse_loss": rank_mse_loss,
              "partial_ranks_accuracy": partial_ranks_accuracy}


@pytest.mark.parametrize("name,kwargs,match", _BAD)
def test_invalid_arguments_raise_value_error_naming_them(name, kwargs, match):
  with pytest.raises(ValueError, match=match):
    _FUNCTIONS[name](jnp.zeros((2, 4)), jnp.ones((2, 4)), **kwargs)


@pytest.mark.parametrize("name", tuple(_FUNCTIONS))
@pytest.mark.parametrize("target_shape", ((2, 5), (4, 2), (4,), (1, 2, 4)))
def test_target_shape_mismatch_raises(name, target_shape):
  with pytest.raises(ValueError, match="target_ranks"):
    _FUNCTIONS[name](jnp.zeros((2, 4)), jnp.ones(target_shape))


@pytest.mark.parametrize("name", tuple(_FUNCTIONS))
def test_scalar_scores_raise(name):
  with pytest.raises(ValueError, match="axis"):
    _FUNCTIONS[name](jnp.float32(1.0), jnp.float32(1.0))
