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
_STATIC = ("num_samples", "sigma", "noise", "axis")

_ranks = jax.jit(perturbed_ranks, static_argnames=_STATIC)
_fy = jax.jit(fenchel_young_loss, static_argnames=_STATIC)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _ranks_vjp(key, values, cotangent, *, num_samples, sigma, noise="normal", axis=-1):
  _, vjp_fn = jax.vjp(
      lambda v: perturbed_ranks(key, v, num_samples=num_samples, sigma=sigma, noise=noise, axis=axis), values)
  return vjp_fn(cotangent)[0]


@functools.partial(jax.jit, static_argnames=_STATIC)
def _fy_value_and_vjp(key, scores, target, cotangent, *, num_samples, sigma, noise="normal", axis=-1):
  loss, vjp_fn = jax.vjp(
      lambda s, t: fenchel_young_loss(key, s, t, num_samples=num_samples, sigma=sigma, noise=noise, axis=axis),
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


def _closed_form_ranks(theta, sigma, noise):
  d = theta[:, None] - theta[None, :]
  if noise == "normal":
    p = stats.norm.cdf(d / (sigma * np.sqrt(2.0)))
  else:
    p = special.expit(d / sigma)
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


def _rank_sample_se(rng, theta, sigma, noise, num_samples):
  """Standard error of the mean of num_samples ranks, per item (numpy simulation)."""
  samples = _np_ranks(theta + sigma * _np_noise(rng, (50_000, theta.size), noise))
  return samples.std(axis=0) / np.sqrt(num_samples), samples


def _vjp_sample_se(rng, theta, g, sigma, noise, num_samples):
  """Standard error of the VJP estimator <y*(theta + sigma Z), g> grad nu(Z) / sigma."""
  z = _np_noise(rng, (100_000, theta.size), noise)
  per_sample = (_np_ranks(theta + sigma * z) @ g)[:, None] * _np_grad_nu(z, noise) / sigma
  return per_sample.std(axis=0) / np.sqrt(num_samples)


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


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("sigma", (0.5, 1.0))
def test_perturbed_ranks_matches_closed_form(noise, sigma):
  num_samples = 40_000
  got = np.asarray(_ranks(jax.random.key(1), jnp.asarray(THETAS, jnp.float32),
                          num_samples=num_samples, sigma=sigma, noise=noise), np.float64)
  assert got.shape == THETAS.shape
  rng = np.random.default_rng(1)
  for row, theta in enumerate(THETAS):
    se, _ = _rank_sample_se(rng, theta, sigma, noise, num_samples)
    np.testing.assert_array_less(np.abs(got[row] - _closed_form_ranks(theta, sigma, noise)), NUM_SE * se)


@pytest.mark.parametrize("noise", NOISES)
def test_perturbed_ranks_along_axis0_matches_closed_form(noise):
  # The vectors are the columns of a (5, 3) array, ranked along axis 0.
  sigma, num_samples = 0.5, 40_000
  got = np.asarray(_ranks(jax.random.key(7), jnp.asarray(THETAS.T, jnp.float32), num_samples=num_samples,
                          sigma=sigma, noise=noise, axis=0), np.float64)
  assert got.shape == THETAS.T.shape
  rng = np.random.default_rng(7)
  for col, theta in enumerate(THETAS):
    se, _ = _rank_sample_se(rng, theta, sigma, noise, num_samples)
    np.testing.assert_array_less(np.abs(got[:, col] - _closed_form_ranks(theta, sigma, noise)), NUM_SE * se)


@pytest.mark.parametrize("noise", NOISES)
def test_perturbed_ranks_tiny_sigma_gives_hard_ranks(noise):
  values = np.array([[3.0, -1.0, 2.0, 0.0, 7.0], [10.0, 20.0, 30.0, -5.0, 1.0], [0.0, 1.0, 2.0, 3.0, 4.0]],
                    np.float32)
  got = _ranks(jax.random.key(0), values, num_samples=64, sigma=1e-3, noise=noise)
  np.testing.assert_array_equal(np.asarray(got), _np_ranks(values))
  np.testing.assert_array_equal(_np_ranks(values), stats.rankdata(values, method="ordinal", axis=-1))


@pytest.mark.parametrize("noise", NOISES)
def test_perturbed_ranks_is_an_average_of_permutations(noise):
  num_samples = 7
  values = jax.random.normal(jax.random.key(3), (3, 5))
  got = np.asarray(_ranks(jax.random.key(4), values, num_samples=num_samples, sigma=2.0, noise=noise), np.float64)
  n = values.shape[-1]
  np.testing.assert_allclose(got.sum(axis=-1), n * (n + 1) / 2, rtol=1e-6)
  assert np.all(got >= 1.0) and np.all(got <= n)
  # Each entry is a mean of num_samples integer ranks.
  np.testing.assert_allclose(got * num_samples, np.round(got * num_samples), atol=1e-4)
  single = np.asarray(_ranks(jax.random.key(4), values, num_samples=1, sigma=2.0, noise=noise))
  np.testing.assert_array_equal(np.sort(single, axis=-1), np.tile(np.arange(1.0, n + 1), (3, 1)))


# ---------------------------------------------------------------------------
# perturbed_ranks: the custom VJP.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("sigma", (0.5, 1.0))
def test_perturbed_ranks_vjp_matches_closed_form_jacobian(noise, sigma):
  num_samples = 100_000
  rng = np.random.default_rng(11)
  g = rng.standard_normal(THETAS.shape)
  got = np.asarray(_ranks_vjp(jax.random.key(5), jnp.asarray(THETAS, jnp.float32), jnp.asarray(g, jnp.float32),
                              num_samples=num_samples, sigma=sigma, noise=noise), np.float64)
  assert got.shape == THETAS.shape
  for row, theta in enumerate(THETAS):
    want = _closed_form_jacobian(theta, sigma, noise).T @ g[row]
    se = _vjp_sample_se(rng, theta, g[row], sigma, noise, num_samples)
    np.testing.assert_array_less(np.abs(got[row] - want), NUM_SE * se)


def test_perturbed_ranks_vjp_along_axis0_matches_closed_form():
  sigma, num_samples, noise = 0.5, 100_000, "gumbel"
  rng = np.random.default_rng(12)
  g = rng.standard_normal(THETAS.T.shape)
  got = np.asarray(_ranks_vjp(jax.random.key(9), jnp.asarray(THETAS.T, jnp.float32), jnp.asarray(g, jnp.float32),
                              num_samples=num_samples, sigma=sigma, noise=noise, axis=0), np.float64)
  assert got.shape == THETAS.T.shape
  for col, theta in enumerate(THETAS):
    want = _closed_form_jacobian(theta, sigma, noise).T @ g[:, col]
    se = _vjp_sample_se(rng, theta, g[:, col], sigma, noise, num_samples)
    np.testing.assert_array_less(np.abs(got[:, col] - want), NUM_SE * se)


def test_perturbed_ranks_grad_eager_equals_jit_and_is_deterministic():
  def f(v):
    return jnp.sum(jnp.arange(5.0) * perturbed_ranks(jax.random.key(2), v, num_samples=50, sigma=0.5))

  x = jnp.asarray(THETAS[0], jnp.float32)
  eager = np.asarray(jax.grad(f)(x))
  np.testing.assert_array_equal(eager, np.asarray(jax.grad(f)(x)))
  np.testing.assert_allclose(np.asarray(jax.jit(jax.grad(f))(x)), eager, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      np.asarray(_ranks_vjp(jax.random.key(2), x, jnp.arange(5.0), num_samples=50, sigma=0.5)), eager,
      rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# perturbed_ranks: shapes, dtypes and transformations.
# ---------------------------------------------------------------------------


SHAPES_AND_AXES = (
    ((5,), 0),
    ((5, 3), 0),
    ((2, 5, 3), 1),
    ((2, 3, 5), -1),
)


@pytest.mark.parametrize("shape,axis", SHAPES_AND_AXES)
def test_perturbed_ranks_shape_and_axis_is_layout_only(shape, axis):
  key = jax.random.key(0)
  x = jax.random.normal(jax.random.key(1), shape)
  got = _ranks(key, x, num_samples=6, sigma=0.5, axis=axis)
  assert got.shape == shape
  # Each vector along `axis` is ranked on its own: the result sums to
  # n(n+1)/2 along the axis.
  n = shape[axis]
  np.testing.assert_allclose(np.asarray(got).sum(axis=axis), n * (n + 1) / 2, rtol=1e-6)
  # The axis is a layout choice: the same key on the transposed array gives the
  # transposed result.
  moved = _ranks(key, jnp.moveaxis(x, axis, -1), num_samples=6, sigma=0.5, axis=-1)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(jnp.moveaxis(moved, -1, axis)))


DTYPES = ((jnp.float32, jnp.float32), (jnp.bfloat16, jnp.bfloat16), (jnp.float16, jnp.float16),
          (jnp.int32, jnp.float32))


@pytest.mark.parametrize("dtype,out_dtype", DTYPES)
def test_perturbed_ranks_dtype(dtype, out_dtype):
  x = jnp.array([[3, 1, 2, 0], [0, 5, -2, 9]]).astype(dtype)
  got = _ranks(jax.random.key(0), x, num_samples=4, sigma=1e-3)
  assert got.dtype == out_dtype
  assert got.shape == x.shape
  np.testing.assert_array_equal(np.asarray(got, np.float32), _np_ranks(np.asarray(x, np.float32)))


def test_perturbed_ranks_float64():
  with jax.enable_x64(True):
    got = _ranks(jax.random.key(0), jnp.asarray(THETAS, jnp.float64), num_samples=20_000, sigma=0.5)
    assert got.dtype == jnp.float64
    g = jax.grad(lambda v: jnp.sum(_ranks(jax.random.key(0), v, num_samples=8, sigma=0.5)[:, 0]))(
        jnp.asarray(THETAS, jnp.float64))
    assert g.dtype == jnp.float64
  # Ranks lie in [1, 5]: their standard deviation is at most 2.
  for row, theta in enumerate(THETAS):
    np.testing.assert_array_less(np.abs(np.asarray(got[row]) - _closed_form_ranks(theta, 0.5, "normal")),
                                 NUM_SE * 2.0 / np.sqrt(20_000))


def test_perturbed_ranks_bfloat16_grad_dtype():
  x = jnp.asarray(THETAS[0], jnp.bfloat16)
  g = _ranks_vjp(jax.random.key(0), x, jnp.ones(5, jnp.bfloat16).at[2:].set(0.0), num_samples=8, sigma=0.5)
  assert g.dtype == jnp.bfloat16
  assert np.all(np.isfinite(np.asarray(g, np.float32)))


@pytest.mark.parametrize("noise", NOISES)
def test_perturbed_ranks_jit_equals_eager(noise):
  f = functools.partial(perturbed_ranks, num_samples=16, sigma=0.7, noise=noise, axis=0)
  key, x = jax.random.key(3), jax.random.normal(jax.random.key(4), (5, 3))
  np.testing.assert_allclose(np.asarray(jax.jit(f)(key, x)), np.asarray(f(key, x)), rtol=1e-6)


def test_perturbed_ranks_vmap_with_per_row_keys_equals_loop():
  # The contract: vmap over (key, vector) pairs is the loop over the pairs.
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(jax.random.key(1), (3, 5))
  f = functools.partial(_ranks, num_samples=8, sigma=0.7)
  got = jax.jit(jax.vmap(f))(keys, x)
  want = np.stack([np.asarray(f(keys[i], x[i])) for i in range(3)])
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_perturbed_ranks_vmap_with_shared_key_equals_loop():
  # With one key shared by the rows, each row sees the noise the unbatched call
  # would see: the vmapped rows equal the loop with the same key.
  key = jax.random.key(0)
  x = jax.random.normal(jax.random.key(1), (3, 5))
  f = functools.partial(_ranks, num_samples=8, sigma=0.7, noise="gumbel")
  got = jax.jit(jax.vmap(f, in_axes=(None, 0)))(key, x)
  want = np.stack([np.asarray(f(key, x[i])) for i in range(3)])
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_perturbed_ranks_batched_call_draws_independent_noise_per_row():
  # A batched call is not the vmap with a shared key: identical rows get
  # independent perturbations (otherwise the rows of a batch would be
  # correlated).
  got = np.asarray(_ranks(jax.random.key(0), jnp.zeros((2, 5)), num_samples=3, sigma=1.0))
  assert not np.array_equal(got[0], got[1])


def test_perturbed_ranks_deterministic_given_key_and_keys_differ():
  x = jnp.asarray(THETAS, jnp.float32)
  f = functools.partial(_ranks, values=x, num_samples=5, sigma=1.0)
  a, b, c = f(jax.random.key(0)), f(jax.random.key(0)), f(jax.random.key(1))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("noise", NOISES)
def test_perturbed_ranks_nan_only_poisons_its_row(noise):
  clean = np.array(jax.random.normal(jax.random.key(1), (3, 5)))
  x = clean.copy()
  x[1, 3] = np.nan
  key = jax.random.key(0)
  got = np.asarray(_ranks(key, x, num_samples=16, sigma=0.5, noise=noise))
  assert np.all(np.isnan(got[1]))
  others = [0, 2]
  assert np.all(np.isfinite(got[others]))
  # The other rows are unaffected by the NaN: same noise, same values.
  want = np.asarray(_ranks(key, clean, num_samples=16, sigma=0.5, noise=noise))
  np.testing.assert_array_equal(got[others], want[others])


@pytest.mark.xfail(strict=True, raises=jax.errors.UnexpectedTracerError, reason=(
    "sigma is a nondiff_argnum of the custom_vjp, so a traced sigma raises "
    "UnexpectedTracerError, although check_positive lets traced values through."))
@pytest.mark.parametrize("fn", ("perturbed_ranks", "fenchel_young_loss"))
def test_traced_sigma_under_jit(fn):
  x = jnp.asarray(THETAS[0], jnp.float32)
  t = jnp.arange(1.0, 6.0)
  if fn == "perturbed_ranks":
    call = lambda s: perturbed_ranks(jax.random.key(0), x, num_samples=16, sigma=s)
  else:
    call = lambda s: fenchel_young_loss(jax.random.key(0), x, t, num_samples=16, sigma=s)
  np.testing.assert_allclose(np.asarray(jax.jit(call)(0.5)), np.asarray(call(0.5)), rtol=1e-6)


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
    ({"num_samples": 0}, "num_samples"),
    ({"num_samples": -1}, "num_samples"),
    ({"num_samples": 2.5}, "num_samples"),
    ({"num_samples": True}, "num_samples"),
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
  got = _ranks(jax.random.key(0), jnp.zeros(3), num_samples=np.int64(2), sigma=np.float32(0.5))
  assert got.shape == (3,)


# ---------------------------------------------------------------------------
# fenchel_young_loss: values.
# ---------------------------------------------------------------------------


def _np_fenchel_young_samples(rng, theta, target, sigma, noise, num_samples):
  """Per-sample max_y <y, theta + sigma Z> - <theta, target>, shape (num_samples, ...)."""
  v = theta + sigma * _np_noise(rng, (num_samples,) + theta.shape, noise)
  return _np_max_over_permutations(v) - np.sum(theta * target, axis=-1)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("sigma", (0.1, 1.0))
def test_fenchel_young_value_and_grad_match_independent_references(noise, sigma):
  rng = np.random.default_rng(21)
  theta = THETAS
  target = _random_permutations(rng, 3, 5)
  num_samples = 40_000
  loss, grad, grad_target = _fy_value_and_vjp(
      jax.random.key(21), jnp.asarray(theta, jnp.float32), target, jnp.ones(3),
      num_samples=num_samples, sigma=sigma, noise=noise)
  assert loss.shape == (3,)
  # Value: an independent numpy estimate of E[max_y <y, theta + sigma Z>] - <theta, target>.
  samples = _np_fenchel_young_samples(rng, theta, target, sigma, noise, 200_000)
  var = samples.var(axis=0)
  tol = NUM_SE * np.sqrt(var / num_samples + var / samples.shape[0])
  np.testing.assert_array_less(np.abs(np.asarray(loss, np.float64) - samples.mean(axis=0)), tol + 1e-5)
  # Gradients: closed-form expected ranks - target, and -theta for the target.
  for row in range(3):
    se, _ = _rank_sample_se(rng, theta[row], sigma, noise, num_samples)
    want = _closed_form_ranks(theta[row], sigma, noise) - target[row]
    np.testing.assert_array_less(np.abs(np.asarray(grad[row], np.float64) - want), NUM_SE * se + 1e-6)
  np.testing.assert_allclose(np.asarray(grad_target), -theta, rtol=1e-6)


def test_fenchel_young_normal_is_nonnegative_in_expectation():
  # E[max_y <y, theta + sigma Z>] >= max_y <y, theta> >= <theta, target> (Jensen).
  rng = np.random.default_rng(22)
  theta = rng.standard_normal((16, 5))
  target = _random_permutations(rng, 16, 5)
  num_samples, sigma = 20_000, 0.5
  got = np.asarray(_fy(jax.random.key(22), jnp.asarray(theta, jnp.float32), target, num_samples=num_samples,
                       sigma=sigma), np.float64)
  lower = _np_max_over_permutations(theta) - np.sum(theta * target, axis=-1)
  assert np.all(lower >= 0.0)
  samples = _np_fenchel_young_samples(rng, theta, target, sigma, "normal", 20_000)
  se = samples.std(axis=0) / np.sqrt(num_samples)
  np.testing.assert_array_less(lower - NUM_SE * se, got)


@pytest.mark.parametrize("noise", NOISES)
def test_fenchel_young_scores_along_target(noise):
  # With scores = t * target and t large, every perturbed argmax is the target,
  # so the loss is sigma <target, mean Z>: mean 0 for normal noise (the loss
  # vanishes) and sigma * gamma * n(n+1)/2 for Gumbel noise, and the gradient
  # (expected ranks - target) is zero.
  target = np.array([[3.0, 1.0, 5.0, 2.0, 4.0], [1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0]], np.float32)
  scores = jnp.asarray(100.0 * target)
  sigma, num_samples = 0.1, 4_000
  loss, grad, _ = _fy_value_and_vjp(jax.random.key(0), scores, target, jnp.ones(3),
                                    num_samples=num_samples, sigma=sigma, noise=noise)
  loss = np.asarray(loss, np.float64)
  np.testing.assert_allclose(np.asarray(grad), np.zeros_like(target), atol=1e-6)
  sum_sq = np.sum(target.astype(np.float64) ** 2, axis=-1)
  n = target.shape[-1]
  if noise == "normal":
    mean, var_z = 0.0, 1.0
  else:
    mean, var_z = sigma * EULER_GAMMA * n * (n + 1) / 2, np.pi ** 2 / 6
  se = sigma * np.sqrt(var_z * sum_sq / num_samples)
  # float32 cancellation in max - <theta, target> (both ~5500) adds ~1e-3.
  np.testing.assert_array_less(np.abs(loss - mean), NUM_SE * se + 2e-3)


# ---------------------------------------------------------------------------
# fenchel_young_loss: gradients, shapes, dtypes and transformations.
# ---------------------------------------------------------------------------


def _target_for(shape, axis, seed):
  n = shape[axis]
  perms = _random_permutations(np.random.default_rng(seed), int(np.prod(shape)) // n, n)
  moved_shape = tuple(np.moveaxis(np.empty(shape), axis, -1).shape)
  return np.moveaxis(perms.reshape(moved_shape), -1, axis)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("shape,axis", SHAPES_AND_AXES[1:])
def test_fenchel_young_grad_is_perturbed_ranks_minus_target(noise, shape, axis):
  key = jax.random.key(5)
  scores = jax.random.normal(jax.random.key(6), shape)
  target = _target_for(shape, axis, 6)
  kwargs = dict(num_samples=12, sigma=0.7, noise=noise, axis=axis)
  loss_shape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
  cotangent = jax.random.normal(jax.random.key(7), loss_shape)
  loss, got, _ = _fy_value_and_vjp(key, scores, target, cotangent, **kwargs)
  assert loss.shape == loss_shape
  ranks = np.asarray(_ranks(key, scores, **kwargs))
  want = np.expand_dims(np.asarray(cotangent), axis) * (ranks - target)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,axis", SHAPES_AND_AXES)
def test_fenchel_young_shape_and_axis_is_layout_only(shape, axis):
  key = jax.random.key(0)
  scores = jax.random.normal(jax.random.key(1), shape)
  target = _target_for(shape, axis, 1)
  got = _fy(key, scores, target, num_samples=6, sigma=0.5, axis=axis)
  assert got.shape == tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
  moved = _fy(key, jnp.moveaxis(scores, axis, -1), np.moveaxis(target, axis, -1), num_samples=6, sigma=0.5, axis=-1)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(moved))


@pytest.mark.parametrize("dtype,out_dtype", DTYPES)
def test_fenchel_young_dtype(dtype, out_dtype):
  scores = jnp.array([[3, 1, 2, 0], [0, 5, -2, 9]]).astype(dtype)
  target = np.array([[4, 2, 3, 1], [1, 2, 3, 4]])
  got = _fy(jax.random.key(0), scores, target, num_samples=4, sigma=1e-3)
  assert got.dtype == out_dtype
  assert got.shape == (2,)
  # Tiny sigma: the loss is max_y <y, theta> - <theta, target> = 0 for row 0
  # (target in the order of the scores) and 49 - 40 = 9 for row 1.
  s = np.asarray(scores, np.float64)
  want = _np_max_over_permutations(s) - np.sum(s * target, axis=-1)
  np.testing.assert_array_equal(want, [0.0, 9.0])
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-2, atol=0.05)


def test_fenchel_young_jit_equals_eager():
  f = functools.partial(fenchel_young_loss, num_samples=16, sigma=0.7, noise="gumbel", axis=0)
  key, s = jax.random.key(3), jax.random.normal(jax.random.key(4), (5, 3))
  t = _target_for((5, 3), 0, 4)
  np.testing.assert_allclose(np.asarray(jax.jit(f)(key, s, t)), np.asarray(f(key, s, t)), rtol=1e-5, atol=1e-5)
  g = jax.grad(lambda s: jnp.sum(f(key, s, t)))
  np.testing.assert_allclose(np.asarray(jax.jit(g)(s)), np.asarray(g(s)), rtol=1e-6)


def test_fenchel_young_vmap_equals_loop():
  keys = jax.random.split(jax.random.key(0), 3)
  s = jax.random.normal(jax.random.key(1), (3, 5))
  t = jnp.asarray(_random_permutations(np.random.default_rng(0), 3, 5))
  f = functools.partial(_fy, num_samples=8, sigma=0.7)
  got = jax.jit(jax.vmap(f))(keys, s, t)
  want = np.array([float(f(keys[i], s[i], t[i])) for i in range(3)])
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
  got_shared = jax.jit(jax.vmap(f, in_axes=(None, 0, 0)))(keys[0], s, t)
  want_shared = np.array([float(f(keys[0], s[i], t[i])) for i in range(3)])
  np.testing.assert_allclose(np.asarray(got_shared), want_shared, rtol=1e-5, atol=1e-5)
  grad = jax.grad(f, argnums=1)
  grads = jax.jit(jax.vmap(grad))(keys, s, t)
  for i in range(3):
    np.testing.assert_allclose(np.asarray(grads[i]), np.asarray(grad(keys[i], s[i], t[i])), rtol=1e-6)


def test_fenchel_young_deterministic_given_key_and_keys_differ():
  s = jnp.asarray(THETAS, jnp.float32)
  t = _random_permutations(np.random.default_rng(0), 3, 5)
  f = functools.partial(_fy, scores=s, target_ranks=t, num_samples=5, sigma=1.0)
  a, b, c = f(jax.random.key(0)), f(jax.random.key(0)), f(jax.random.key(1))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_fenchel_young_nan_only_poisons_its_row():
  s = np.array(jax.random.normal(jax.random.key(1), (3, 5)))
  s[1, 0] = np.nan
  t = _random_permutations(np.random.default_rng(0), 3, 5)
  got = np.asarray(_fy(jax.random.key(0), s, t, num_samples=8, sigma=0.5))
  assert np.isnan(got[1])
  assert np.all(np.isfinite(got[[0, 2]]))
