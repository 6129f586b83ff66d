"""Tests for `perturbed_ranks` and `fenchel_young_loss`.

The references are independent of the library:

* Closed forms. By linearity of expectation the expected rank of item i under
  i.i.d. noise is E[rank_i(theta + sigma Z)] = 1 + sum_{j != i}
  P(theta_i + sigma Z_i > theta_j + sigma Z_j). The difference of two standard
  normals is N(0, 2) and the difference of two standard Gumbels is standard
  logistic, so the probabilities are Phi((theta_i - theta_j) / (sigma sqrt 2))
  and sigmoid((theta_i - theta_j) / sigma), and the Jacobian follows in closed
  form.
* Monte-Carlo estimates drawn with numpy's own generator, ranks from a stable
  double argsort (`scipy.stats.rankdata(method="ordinal")`), and the maximum of
  <y, v> over the permutations y of (1, ..., n) from the rearrangement
  inequality: <(1, ..., n), sort(v)>.

Monte-Carlo tolerances are 5 standard errors, the per-sample standard deviation
being measured on an independent numpy simulation of the same estimator: each
comparison then fails by chance with probability below 1e-6 (and the keys are
fixed, so a passing test stays passing).

Most calls go through `jax.jit` with static options: eager dispatch of these ops
compiles every primitive separately and is several times slower to compile.
Eager execution is checked against jit explicitly.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy import stats

from shuffle_learn.ranking import fenchel_young_loss
from shuffle_learn.ranking import perturbed_ranks

NOISES = ("normal", "gumbel")
NUM_SE = 5.0  # Two-sided normal tail beyond 5 SE: 5.7e-7.
EULER_GAMMA = 0.5772156649015329  # Mean of the standard Gumbel distribution.
_STATIC = ("num_perturbations", "sigma", "noise", "axis")

_ranks = jax.jit(perturbed_ranks, static_argnames=_STATIC)
_fy = jax.jit(fenchel_young_loss, static_argnames=_STATIC)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _ranks_and_vjp(key, values, cotangent, *, num_perturbations, sigma, noise="normal", axis=-1):
  """perturbed_ranks and its VJP with `cotangent`, in one compiled function."""
  ranks, vjp_fn = jax.vjp(
      lambda v: perturbed_ranks(key, v, num_perturbations=num_perturbations, sigma=sigma, noise=noise, axis=axis), values)
  return ranks, vjp_fn(cotangent)[0]


@functools.partial(jax.jit, static_argnames=_STATIC)
def _fy_value_and_vjp(key, scores, target, cotangent, *, num_perturbations, sigma, noise="normal", axis=-1):
  loss, vjp_fn = jax.vjp(
      lambda s, t: fenchel_young_loss(key, s, t, num_perturbations=num_perturbations, sigma=sigma, noise=noise, axis=axis),
      scores, target)
  return (loss,) + vjp_fn(cotangent)


# ---------------------------------------------------------------------------
# Independent references.
# ---------------------------------------------------------------------------


def _np_ranks(x):
  """1-based ascending ranks along the last axis, ties broken by position."""
  x = np.asarray(x)
  return np.argsort(np.argsort(x, axis=-1, kind="stable"), axis=-1).astype(np.float64) + 1.0


def _np_noise(rng, shape, noise):
  if noise == "normal":
    return rng.standard_normal(shape)
  return rng.gumbel(size=shape)


def _np_grad_nu(z, noise):
  """Gradient of -log density: z for N(0, 1), 1 - exp(-z) for Gumbel(0, 1)."""
  return z if noise == "normal" else 1.0 - np.exp(-z)


def _pairwise_win_probability(theta, sigma, noise):
  """P[i, j] = P(theta_i + sigma Z_i > theta_j + sigma Z_j)."""
  d = theta[:, None] - theta[None, :]
  if noise == "normal":
    return stats.norm.cdf(d / (sigma * np.sqrt(2.0)))
  return special.expit(d / sigma)


def _closed_form_ranks(theta, sigma, noise):
  p = _pairwise_win_probability(theta, sigma, noise)
  np.fill_diagonal(p, 0.0)
  return 1.0 + p.sum(axis=1)


def _closed_form_jacobian(theta, sigma, noise):
  """J[i, k] = d E[rank_i] / d theta_k."""
  d = theta[:, None] - theta[None, :]
  if noise == "normal":
    scale = sigma * np.sqrt(2.0)
    w = stats.norm.pdf(d / scale) / scale
  else:
    p = special.expit(d / sigma)
    w = p * (1.0 - p) / sigma
  np.fill_diagonal(w, 0.0)
  jac = -w
  jac[np.diag_indices_from(jac)] = w.sum(axis=1)
  return jac


def _np_max_over_permutations(v):
  """max_y <y, v> over permutations y of (1, ..., n), along the last axis."""
  n = v.shape[-1]
  return np.sum(np.sort(v, axis=-1) * np.arange(1, n + 1), axis=-1)


def _random_permutations(rng, batch, n):
  return np.stack([rng.permutation(n) + 1 for _ in range(batch)]).astype(np.float32)


def _target_for(shape, axis, seed):
  n = shape[axis]
  perms = _random_permutations(np.random.default_rng(seed), int(np.prod(shape)) // n, n)
  moved_shape = tuple(np.moveaxis(np.empty(shape), axis, -1).shape)
  return np.moveaxis(perms.reshape(moved_shape), -1, axis)


def _rank_sample_se(rng, theta, sigma, noise, num_perturbations):
  """Standard error of the mean of num_perturbations ranks, per item.

  The per-sample standard deviation is measured on a numpy simulation. When a
  rank is nearly deterministic the simulation may see no variation at all while
  the library's samples hit a rare swap, so the variance is floored at
  sum_j p_ij (1 - p_ij), the variance of rank_i if its pairwise wins were
  independent (p_ij from the closed form).

  Returns:
    (standard error (n,), the simulated ranks (50000, n)).
  """
  samples = _np_ranks(theta + sigma * _np_noise(rng, (50_000, theta.size), noise))
  p = _pairwise_win_probability(theta, sigma, noise)
  np.fill_diagonal(p, 0.0)
  var = np.maximum(samples.var(axis=0), np.sum(p * (1.0 - p), axis=1))
  return np.sqrt(var / num_perturbations), samples


def _vjp_sample_se(rng, theta, g, sigma, noise, num_perturbations):
  """Standard error of the VJP estimator <y*(theta + sigma Z), g> grad nu(Z) / sigma."""
  z = _np_noise(rng, (100_000, theta.size), noise)
  per_sample = (_np_ranks(theta + sigma * z) @ g)[:, None] * _np_grad_nu(z, noise) / sigma
  return per_sample.std(axis=0) / np.sqrt(num_perturbations)


# Rows of a (3, 5) batch: generic, small gaps, and an exact tie.
THETAS = np.array([
    [0.3, -0.4, 0.9, 0.1, -1.2],
    [0.0, 0.25, -0.25, 0.5, 0.1],
    [0.2, 0.2, -0.6, 1.0, -0.1],
])


def test_closed_form_reference_agrees_with_numpy_simulation():
  # Validates the oracle itself before it is used against the library.
  rng = np.random.default_rng(0)
  for noise in NOISES:
    for theta in THETAS:
      se, samples = _rank_sample_se(rng, theta, 0.5, noise, 50_000)
      np.testing.assert_array_less(np.abs(samples.mean(axis=0) - _closed_form_ranks(theta, 0.5, noise)), NUM_SE * se)
      g = rng.standard_normal(theta.size)
      z = _np_noise(rng, (200_000, theta.size), noise)
      per_sample = (_np_ranks(theta + 0.5 * z) @ g)[:, None] * _np_grad_nu(z, noise) / 0.5
      se = per_sample.std(axis=0) / np.sqrt(z.shape[0])
      want = _closed_form_jacobian(theta, 0.5, noise).T @ g
      np.testing.assert_array_less(np.abs(per_sample.mean(axis=0) - want), NUM_SE * se)


# ---------------------------------------------------------------------------
# perturbed_ranks: values.
# ---------------------------------------------------------------------------


# One compiled call checks both the forward and the custom VJP (whose estimator
# has the larger variance, hence 100k samples). sigma != 1 so that a wrong power
# of sigma cannot go unnoticed.
@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("sigma", (0.5, 1.5))
def test_perturbed_ranks_and_vjp_match_closed_form(noise, sigma):
  num_perturbations = 100_000
  rng = np.random.default_rng(11)
  g = rng.standard_normal(THETAS.shape)
  ranks, vjp = _ranks_and_vjp(jax.random.key(5), jnp.asarray(THETAS, jnp.float32), jnp.asarray(g, jnp.float32),
                              num_perturbations=num_perturbations, sigma=sigma, noise=noise)
  assert ranks.shape == vjp.shape == THETAS.shape
  ranks, vjp = np.asarray(ranks, np.float64), np.asarray(vjp, np.float64)
  for row, theta in enumerate(THETAS):
    se, _ = _rank_sample_se(rng, theta, sigma, noise, num_perturbations)
    np.testing.assert_array_less(np.abs(ranks[row] - _closed_form_ranks(theta, sigma, noise)), NUM_SE * se)
    se = _vjp_sample_se(rng, theta, g[row], sigma, noise, num_perturbations)
    want = _closed_form_jacobian(theta, sigma, noise).T @ g[row]
    np.testing.assert_array_less(np.abs(vjp[row] - want), NUM_SE * se)


def test_perturbed_ranks_and_vjp_along_axis0_match_closed_form():
  # The vectors are the columns of a (5, 3) array, ranked along axis 0.
  sigma, num_perturbations, noise = 0.5, 100_000, "gumbel"
  rng = np.random.default_rng(12)
  g = rng.standard_normal(THETAS.T.shape)
  ranks, vjp = _ranks_and_vjp(jax.random.key(9), jnp.asarray(THETAS.T, jnp.float32), jnp.asarray(g, jnp.float32),
                              num_perturbations=num_perturbations, sigma=sigma, noise=noise, axis=0)
  assert ranks.shape == vjp.shape == THETAS.T.shape
  ranks, vjp = np.asarray(ranks, np.float64), np.asarray(vjp, np.float64)
  for col, theta in enumerate(THETAS):
    se, _ = _rank_sample_se(rng, theta, sigma, noise, num_perturbations)
    np.testing.assert_array_less(np.abs(ranks[:, col] - _closed_form_ranks(theta, sigma, noise)), NUM_SE * se)
    se = _vjp_sample_se(rng, theta, g[:, col], sigma, noise, num_perturbations)
    want = _closed_form_jacobian(theta, sigma, noise).T @ g[:, col]
    np.testing.assert_array_less(np.abs(vjp[:, col] - want), NUM_SE * se)


@pytest.mark.parametrize("noise,num_perturbations", (("normal", 7), ("gumbel", 1)))
def test_perturbed_ranks_is_an_average_of_permutations(noise, num_perturbations):
  values = jax.random.normal(jax.random.key(3), (3, 5))
  n = values.shape[-1]
  got = np.asarray(_ranks(jax.random.key(4), values, num_perturbations=num_perturbations, sigma=2.0, noise=noise), np.float64)
  np.testing.assert_allclose(got.sum(axis=-1), n * (n + 1) / 2, rtol=1e-6)
  assert np.all(got >= 1.0) and np.all(got <= n)
  # Each entry is a mean of num_perturbations integer ranks.
  np.testing.assert_allclose(got * num_perturbations, np.round(got * num_perturbations), atol=1e-4)
  if num_perturbations == 1:
    np.testing.assert_array_equal(np.sort(got, axis=-1), np.tile(np.arange(1.0, n + 1), (3, 1)))


# ---------------------------------------------------------------------------
# perturbed_ranks: shapes, dtypes and transformations.
# ---------------------------------------------------------------------------

# The small calls below share one configuration so that compilations are reused.
SMALL = dict(num_perturbations=8, sigma=0.7)


@pytest.mark.parametrize("shape,axis,noise", (((5, 3), 0, "normal"), ((2, 5, 3), 1, "gumbel")))
def test_shape_axis_layout_and_fenchel_young_grad(shape, axis, noise):
  key = jax.random.key(0)
  x = jax.random.normal(jax.random.key(1), shape)
  kwargs = dict(noise=noise, **SMALL)
  ranks = _ranks(key, x, axis=axis, **kwargs)
  assert ranks.shape == shape
  # Each vector along `axis` is ranked on its own: its ranks sum to n(n+1)/2.
  n = shape[axis]
  np.testing.assert_allclose(np.asarray(ranks).sum(axis=axis), n * (n + 1) / 2, rtol=1e-6)
  # The axis is a layout choice: the same key on the transposed array gives the
  # transposed result.
  if len(shape) == 2:
    moved = _ranks(key, jnp.moveaxis(x, axis, -1), axis=-1, **kwargs)
    np.testing.assert_array_equal(np.asarray(ranks), np.asarray(jnp.moveaxis(moved, -1, axis)))

  # fenchel_young_loss: one loss per vector, and the gradient with respect to
  # the scores is exactly perturbed_ranks(same key, same args) - target. The
  # cotangent differs per vector, so this also checks which loss is which.
  target = _target_for(shape, axis, 6)
  loss_shape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
  cotangent = jax.random.normal(jax.random.key(7), loss_shape)
  loss, grad, _ = _fy_value_and_vjp(key, x, target, cotangent, axis=axis, **kwargs)
  assert loss.shape == loss_shape
  want = np.expand_dims(np.asarray(cotangent), axis) * (np.asarray(ranks) - target)
  np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-6, atol=1e-6)


# Distinct integers, exact in every dtype, at least 1 apart: with sigma = 1e-3
# the perturbations never reorder them.
_INTEGER_SCORES = np.array([[3, -1, 2, 0, 7], [10, 20, 30, -5, 1], [0, 1, 2, 3, 4]])


@pytest.mark.parametrize("dtype,out_dtype,noise", (
    (jnp.float32, jnp.float32, "normal"),
    (jnp.bfloat16, jnp.bfloat16, "gumbel"),
    (jnp.int32, jnp.float32, "normal"),
))
def test_dtype_and_tiny_sigma_gives_hard_ranks(dtype, out_dtype, noise):
  x = jnp.asarray(_INTEGER_SCORES).astype(dtype)
  hard = stats.rankdata(_INTEGER_SCORES, method="ordinal", axis=-1)
  got = _ranks(jax.random.key(0), x, num_perturbations=16, sigma=1e-3, noise=noise)
  assert got.dtype == out_dtype
  assert got.shape == x.shape
  np.testing.assert_array_equal(np.asarray(got, np.float32), hard)
  # Fenchel-Young at tiny sigma: max_y <y, theta> - <theta, target>, by the
  # rearrangement inequality; zero where the target is the hard ranking.
  target = np.array([[4, 1, 3, 2, 5], [3, 4, 5, 1, 2], [5, 4, 3, 2, 1]])
  np.testing.assert_array_equal(target[:2], hard[:2])
  if dtype == jnp.int32:
    return  # The loss takes the same dtype path as the ranks.
  loss = _fy(jax.random.key(0), x, target, num_perturbations=16, sigma=1e-3, noise=noise)
  assert loss.dtype == out_dtype
  assert loss.shape == (3,)
  theta = _INTEGER_SCORES.astype(np.float64)
  want = _np_max_over_permutations(theta) - np.sum(theta * target, axis=-1)
  np.testing.assert_array_equal(want, [0.0, 0.0, 20.0])
  # Gumbel noise has mean gamma: the loss also carries sigma gamma n(n+1)/2 ~ 9e-3.
  np.testing.assert_allclose(np.asarray(loss, np.float64), want, rtol=1e-2, atol=0.02)
  if dtype == jnp.bfloat16:
    _, g = _ranks_and_vjp(jax.random.key(0), x, jnp.ones_like(x).at[:, 2:].set(0), num_perturbations=4, sigma=1.0)
    assert g.dtype == jnp.bfloat16
    assert np.all(np.isfinite(np.asarray(g, np.float32)))


def test_perturbed_ranks_float64():
  with jax.enable_x64(True):
    theta = jnp.asarray(THETAS, jnp.float64)
    got, g = _ranks_and_vjp(jax.random.key(0), theta, jnp.ones_like(theta), num_perturbations=20_000, sigma=0.5)
    assert got.dtype == g.dtype == jnp.float64
  # Ranks lie in [1, 5]: their standard deviation is at most 2.
  for row, theta in enumerate(THETAS):
    np.testing.assert_array_less(np.abs(np.asarray(got[row]) - _closed_form_ranks(theta, 0.5, "normal")),
                                 NUM_SE * 2.0 / np.sqrt(20_000))


def test_eager_equals_jit_and_is_deterministic():
  key, x = jax.random.key(3), jnp.asarray(THETAS, jnp.float32)
  g = jnp.arange(15.0).reshape(3, 5)
  f = functools.partial(perturbed_ranks, **SMALL)
  eager = np.asarray(f(key, x))
  np.testing.assert_array_equal(eager, np.asarray(f(key, x)))
  jitted, jitted_vjp = _ranks_and_vjp(key, x, g, **SMALL)
  np.testing.assert_allclose(np.asarray(jitted), eager, rtol=1e-6)
  _, vjp_fn = jax.vjp(lambda v: f(key, v), x)
  eager_vjp = np.asarray(vjp_fn(g)[0])
  np.testing.assert_array_equal(eager_vjp, np.asarray(vjp_fn(g)[0]))
  np.testing.assert_allclose(np.asarray(jitted_vjp), eager_vjp, rtol=1e-5, atol=1e-5)

  t = _random_permutations(np.random.default_rng(3), 3, 5)
  loss = fenchel_young_loss(key, x, t, **SMALL)
  jit_loss, _, _ = _fy_value_and_vjp(key, x, t, jnp.ones(3), **SMALL)
  np.testing.assert_allclose(np.asarray(jit_loss), np.asarray(loss), rtol=1e-5, atol=1e-5)


def test_vmap_equals_loop():
  # The contract: vmap over (key, vector) pairs is the loop over the pairs; with
  # one key shared by the rows (in_axes None), each row sees the noise that the
  # unbatched call with that key sees. The loop runs the jitted single-vector
  # ops (jit equals eager is checked separately). Regression: an earlier
  # hard_rank (binary search of each value in a sorted copy) returned
  # non-permutation ranks under jit(vmap), because XLA recomputed the fused
  # input with different rounding and the search missed.
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(jax.random.key(1), (3, 5))
  t = jnp.asarray(_random_permutations(np.random.default_rng(0), 3, 5))
  f = functools.partial(perturbed_ranks, **SMALL)
  per_row = np.asarray(jax.jit(jax.vmap(f))(keys, x))
  shared = np.asarray(jax.jit(jax.vmap(f, in_axes=(None, 0)))(keys[0], x))
  np.testing.assert_allclose(per_row.sum(axis=-1), 15.0, rtol=1e-6)
  np.testing.assert_allclose(shared.sum(axis=-1), 15.0, rtol=1e-6)
  np.testing.assert_allclose(per_row, np.stack([np.asarray(_ranks(keys[i], x[i], **SMALL)) for i in range(3)]),
                             rtol=1e-6)
  np.testing.assert_allclose(shared, np.stack([np.asarray(_ranks(keys[0], x[i], **SMALL)) for i in range(3)]),
                             rtol=1e-6)

  fy = jax.value_and_grad(functools.partial(fenchel_young_loss, **SMALL), argnums=1)
  loss, grad = jax.jit(jax.vmap(fy))(keys, x, t)
  for i in range(3):
    want_loss, want_grad, _ = _fy_value_and_vjp(keys[i], x[i], t[i], jnp.float32(1.0), **SMALL)
    np.testing.assert_allclose(float(loss[i]), float(want_loss), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grad[i]), np.asarray(want_grad), rtol=1e-6)


def test_perturbed_ranks_batched_call_draws_independent_noise_per_row():
  # A batched call is not the vmap with a shared key: identical rows get
  # independent perturbations (otherwise the rows of a batch would be
  # correlated).
  got = np.asarray(_ranks(jax.random.key(0), jnp.zeros((3, 5)), **SMALL))
  assert not np.array_equal(got[0], got[1])
  assert not np.array_equal(got[1], got[2])


def test_perturbed_ranks_deterministic_given_key_and_keys_differ():
  x = jnp.asarray(THETAS, jnp.float32)
  a, b, c = (_ranks(jax.random.key(k), x, **SMALL) for k in (0, 0, 1))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("noise", NOISES)
def test_perturbed_ranks_nan_only_poisons_its_row(noise):
  clean = np.array(jax.random.normal(jax.random.key(1), (3, 5)))
  x = clean.copy()
  x[1, 3] = np.nan
  key = jax.random.key(0)
  got = np.asarray(_ranks(key, x, noise=noise, **SMALL))
  assert np.all(np.isnan(got[1]))
  others = [0, 2]
  assert np.all(np.isfinite(got[others]))
  # The other rows are unaffected by the NaN: same noise, same values.
  want = np.asarray(_ranks(key, clean, noise=noise, **SMALL))
  np.testing.assert_array_equal(got[others], want[others])


@pytest.mark.parametrize("fn", ("perturbed_ranks", "fenchel_young_loss"))
def test_traced_sigma_under_jit(fn):
  # sigma may be traced (check_positive lets tracers through), e.g. for a
  # schedule. Regression: sigma used to be a nondiff_argnum of the custom VJP,
  # and a traced sigma raised UnexpectedTracerError.
  key, x = jax.random.key(0), jnp.asarray(THETAS, jnp.float32)
  t = _random_permutations(np.random.default_rng(0), 3, 5)
  num_perturbations, sigma = SMALL["num_perturbations"], SMALL["sigma"]
  if fn == "perturbed_ranks":
    w = jnp.arange(15.0).reshape(3, 5)
    value, grad = jax.jit(jax.value_and_grad(
        lambda v, s: jnp.sum(w * perturbed_ranks(key, v, sigma=s, num_perturbations=num_perturbations))))(x, sigma)
    ranks, want_grad = _ranks_and_vjp(key, x, w, **SMALL)
    want_value = jnp.sum(w * ranks)
  else:
    value, grad = jax.jit(jax.value_and_grad(
        lambda v, s: jnp.sum(fenchel_young_loss(key, v, t, sigma=s, num_perturbations=num_perturbations))))(x, sigma)
    loss, want_grad, _ = _fy_value_and_vjp(key, x, t, jnp.ones(3), **SMALL)
    want_value = jnp.sum(loss)
  np.testing.assert_allclose(float(value), float(want_value), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grad), np.asarray(want_grad), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Invalid arguments, for both ops.
# ---------------------------------------------------------------------------


def _call_perturbed(values, **kwargs):
  return perturbed_ranks(jax.random.key(0), values, **kwargs)


def _call_fenchel_young(values, **kwargs):
  values = jnp.asarray(values)
  target = jnp.broadcast_to(jnp.arange(1.0, values.shape[-1] + 1), values.shape) if values.ndim else values
  return fenchel_young_loss(jax.random.key(0), values, target, **kwargs)


BAD_ARGUMENTS = (
    ({"noise": "uniform"}, "noise"),
    ({"noise": "Normal"}, "noise"),
    ({"noise": None}, "noise"),
    ({"sigma": 0.0}, "sigma"),
    ({"sigma": -0.1}, "sigma"),
    ({"sigma": float("nan")}, "sigma"),
    ({"sigma": float("inf")}, "sigma"),
    ({"sigma": "0.1"}, "sigma"),
    ({"num_perturbations": 0}, "num_perturbations"),
    ({"num_perturbations": -1}, "num_perturbations"),
    ({"num_perturbations": 2.5}, "num_perturbations"),
    ({"num_perturbations": True}, "num_perturbations"),
    ({"axis": 2}, "axis"),
    ({"axis": -3}, "axis"),
    ({"axis": 1.0}, "axis"),
)


@pytest.mark.parametrize("fn", (_call_perturbed, _call_fenchel_young), ids=("perturbed_ranks", "fenchel_young_loss"))
@pytest.mark.parametrize("kwargs,name", BAD_ARGUMENTS)
def test_invalid_arguments_raise_value_error_naming_them(fn, kwargs, name):
  with pytest.raises(ValueError, match=name):
    fn(jnp.zeros((2, 4)), **kwargs)


@pytest.mark.parametrize("fn", (_call_perturbed, _call_fenchel_young), ids=("perturbed_ranks", "fenchel_young_loss"))
def test_scalar_values_raise_value_error(fn):
  with pytest.raises(ValueError, match="axis"):
    fn(jnp.float32(1.0))


@pytest.mark.parametrize("target_shape", ((2, 5), (4, 2), (4,), (1, 2, 4)))
def test_fenchel_young_target_shape_mismatch_raises(target_shape):
  with pytest.raises(ValueError, match="target_ranks"):
    fenchel_young_loss(jax.random.key(0), jnp.zeros((2, 4)), jnp.ones(target_shape))


def test_numpy_scalar_arguments_are_accepted():
  got = _ranks(jax.random.key(0), jnp.zeros((3, 5)), num_perturbations=np.int64(8), sigma=np.float32(0.7))
  assert got.shape == (3, 5)


# ---------------------------------------------------------------------------
# fenchel_young_loss: values.
# ---------------------------------------------------------------------------


def _np_fenchel_young_samples(rng, theta, target, sigma, noise, num_perturbations):
  """Per-sample max_y <y, theta + sigma Z> - <theta, target>, shape (num_perturbations, ...)."""
  v = theta + sigma * _np_noise(rng, (num_perturbations,) + theta.shape, noise)
  return _np_max_over_permutations(v) - np.sum(theta * target, axis=-1)


# Rows whose scores are 100 x their target: far apart and in the target order.
_ALONG_TARGET = np.array([[3.0, 1.0, 5.0, 2.0, 4.0], [1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0]],
                         np.float32)


@pytest.mark.parametrize("noise,sigma", (("normal", 0.3), ("gumbel", 1.0)))
def test_fenchel_young_value_and_grad_match_independent_references(noise, sigma):
  rng = np.random.default_rng(21)
  random_rows = np.concatenate([THETAS, rng.standard_normal((5, 5))])
  theta = np.concatenate([random_rows, 100.0 * _ALONG_TARGET])
  target = np.concatenate([_random_permutations(rng, random_rows.shape[0], 5), _ALONG_TARGET])
  batch = theta.shape[0]
  num_perturbations = 40_000
  loss, grad, grad_target = _fy_value_and_vjp(
      jax.random.key(21), jnp.asarray(theta, jnp.float32), target, jnp.ones(batch),
      num_perturbations=num_perturbations, sigma=sigma, noise=noise)
  assert loss.shape == (batch,)
  loss = np.asarray(loss, np.float64)
  # Value: an independent numpy estimate of E[max_y <y, theta + sigma Z>] - <theta, target>.
  samples = _np_fenchel_young_samples(rng, theta, target, sigma, noise, 200_000)
  var = samples.var(axis=0)
  tol = NUM_SE * np.sqrt(var / num_perturbations + var / samples.shape[0])
  # 1e-3: float32 cancellation in max - <theta, target> (both ~5500) on the last rows.
  np.testing.assert_array_less(np.abs(loss - samples.mean(axis=0)), tol + 1e-3)
  # Gradients: closed-form expected ranks - target, and -theta for the target.
  for row in range(batch):
    se, _ = _rank_sample_se(rng, theta[row], sigma, noise, num_perturbations)
    want = _closed_form_ranks(theta[row], sigma, noise) - target[row]
    np.testing.assert_array_less(np.abs(np.asarray(grad[row], np.float64) - want), NUM_SE * se + 1e-6)
  np.testing.assert_allclose(np.asarray(grad_target), -theta, rtol=1e-6)

  # Scores far apart in the target order: every perturbed argmax is the target,
  # so the gradient (expected ranks - target) is zero and the loss is
  # sigma <target, mean Z>: mean 0 for normal noise (the loss vanishes) and
  # sigma gamma n(n+1)/2 for Gumbel noise (whose mean is gamma).
  along = slice(random_rows.shape[0], None)
  np.testing.assert_allclose(np.asarray(grad[along]), 0.0, atol=1e-6)
  mean = 0.0 if noise == "normal" else sigma * EULER_GAMMA * 15.0
  var_z = 1.0 if noise == "normal" else np.pi ** 2 / 6
  se = sigma * np.sqrt(var_z * np.sum(_ALONG_TARGET.astype(np.float64) ** 2, axis=-1) / num_perturbations)
  np.testing.assert_array_less(np.abs(loss[along] - mean), NUM_SE * se + 1e-3)

  if noise == "normal":
    # Non-negative in expectation, and more: E[max_y <y, theta + sigma Z>] >=
    # max_y <y, theta> >= <theta, target> (Jensen).
    lower = _np_max_over_permutations(theta) - np.sum(theta * target, axis=-1)
    assert np.all(lower >= 0.0)
    np.testing.assert_array_less(lower - NUM_SE * np.sqrt(var / num_perturbations) - 1e-3, loss)


# ---------------------------------------------------------------------------
# fenchel_young_loss: gradients, shapes, dtypes and transformations.
# ---------------------------------------------------------------------------


def test_fenchel_young_deterministic_given_key_and_keys_differ():
  s = jnp.asarray(THETAS, jnp.float32)
  t = _random_permutations(np.random.default_rng(0), 3, 5)
  a, b, c = (_fy(jax.random.key(k), s, t, **SMALL) for k in (0, 0, 1))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_fenchel_young_nan_only_poisons_its_row():
  s = np.array(jax.random.normal(jax.random.key(1), (3, 5)))
  s[1, 0] = np.nan
  t = _random_permutations(np.random.default_rng(0), 3, 5)
  got = np.asarray(_fy(jax.random.key(0), s, t, **SMALL))
  assert np.isnan(got[1])
  assert np.all(np.isfinite(got[[0, 2]]))
