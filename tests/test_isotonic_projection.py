"""Tests for `isotonic_regression` and `projection_permutahedron`.

Every expected value comes from an independent reference written here or in
tests/references.py, never from the library: scikit-learn's isotonic
regression (L2), scipy.optimize for the KL isotonic regression, cvxpy for both
permutahedron projections (the permutahedron written out as its 2^n - 2 subset
inequalities), and a plain numpy pool-adjacent-violators in float64 for longer
vectors and for finite differences.

Most tests use vectors of length 6 in batches of 6 so that the library's
compiled pieces are shared between tests.
"""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest
import scipy.optimize
from sklearn.isotonic import IsotonicRegression

from shuffle_learn.ranking import isotonic_regression
from shuffle_learn.ranking import projection_permutahedron
from tests.references import along_axis
from tests.references import finite_difference_vjp
from tests.references import ref_isotonic
from tests.references import ref_projection
from tests.references import solver_projection

# Oracle, gradient and hostile-input tests run on every path of the ops
# (tests/conftest.py, `ranking_path`).
every_path = pytest.mark.usefixtures("ranking_path")

REGULARIZATIONS = ("l2", "kl")
OPS = ("isotonic-l2-inc", "isotonic-l2-dec", "isotonic-kl-inc", "isotonic-kl-dec", "projection-l2", "projection-kl")


# ---------------------------------------------------------------------------
# Independent references (float64); the shared ones are in tests/references.py.
# ---------------------------------------------------------------------------


def solver_isotonic_kl(y, w, increasing):
  """argmin_v <exp(y - v), 1> + <exp(w), v> subject to monotone v, by scipy.

  Written as v = v0 + sign * cumsum([0, d]) with d >= 0: a smooth convex
  bound-constrained problem that L-BFGS-B solves to about 1e-9.
  """
  y = np.asarray(y, np.float64)
  n = len(y)
  sign = 1.0 if increasing else -1.0
  basis = sign * np.tril(np.ones((n, n)), k=-1)[:, : n - 1]  # v = v0 + basis @ d.
  ew = np.exp(np.asarray(w, np.float64))

  def objective(p):
    v = p[0] + basis @ p[1:]
    e = np.exp(y - v)
    grad_v = ew - e
    return e.sum() + ew @ v, np.concatenate([[grad_v.sum()], basis.T @ grad_v])

  start = np.concatenate([[np.mean(y) - np.mean(w)], np.zeros(n - 1)])
  bounds = [(None, None)] + [(0.0, None)] * (n - 1)
  options = dict(ftol=1e-15, gtol=1e-12, maxiter=10000)
  res = scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
  return res.x[0] + basis @ res.x[1:]


# ---------------------------------------------------------------------------
# The ops under test and their references, by name.
# ---------------------------------------------------------------------------


def lib_op(name):
  """The library op `name` as a function of (first, second, axis=-1)."""
  kind, reg, *rest = name.split("-")
  if kind == "isotonic":
    increasing = rest[0] == "inc"
    return lambda y, w, axis=-1: isotonic_regression(y, w, regularization=reg, increasing=increasing, axis=axis)
  return lambda z, w, axis=-1: projection_permutahedron(z, w, regularization=reg, axis=axis)


def ref_op(name):
  """The reference for `name` on one pair of float64 vectors."""
  kind, reg, *rest = name.split("-")
  if kind == "isotonic":
    return lambda y, w: ref_isotonic(y, w, kl=reg == "kl", increasing=rest[0] == "inc")
  return lambda z, w: ref_projection(z, w, kl=reg == "kl")


def random_inputs(rng, shape):
  """float32-representable (values, weights) pairs with some pooling to do."""
  return np.float32(rng.normal(size=shape) * 2), np.float32(rng.normal(size=shape))


# ---------------------------------------------------------------------------
# 1. Shapes, axes and dtypes.
# ---------------------------------------------------------------------------

# Every case flattens to vectors of length 6 along the axis.
SHAPES_AXES = [((6,), 0), ((6, 6), 0), ((6, 6), 1), ((2, 3, 6), -1), ((6, 2, 3), 0), ((2, 6, 3), 1)]


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
@pytest.mark.parametrize("name", OPS)
def test_shape_axis_and_values_match_reference(name, shape, axis, rng):
  a, b = random_inputs(rng, shape)
  got = lib_op(name)(jnp.asarray(a), jnp.asarray(b), axis=axis)
  assert got.shape == shape
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), along_axis(ref_op(name), axis, a, b), rtol=1e-5, atol=5e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", OPS)
def test_half_precision_keeps_dtype_and_is_close_to_float32(name, dtype, rng):
  a, b = random_inputs(rng, (6, 6))
  a16, b16 = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
  got = lib_op(name)(a16, b16)
  assert got.dtype == dtype
  assert got.shape == (6, 6)
  eps = float(jnp.finfo(dtype).eps)
  # The same rounded inputs in float32: only the rounding of the output differs.
  want = lib_op(name)(a16.astype(jnp.float32), b16.astype(jnp.float32))
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want), rtol=eps, atol=eps)
  ref = along_axis(ref_op(name), -1, np.asarray(a16, np.float32), np.asarray(b16, np.float32))
  np.testing.assert_allclose(np.asarray(got, np.float32), ref, rtol=2 * eps, atol=2 * eps)


def test_isotonic_integer_input_gives_float32_and_default_w_is_zero():
  got = isotonic_regression(jnp.array([1, 3, 2, 4, 0, 7]))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), [1.0, 2.25, 2.25, 2.25, 2.25, 7.0], rtol=1e-6)


@pytest.mark.parametrize("name", OPS)
def test_float64_keeps_dtype_and_precision(name, x64, rng):
  a, b = rng.normal(size=6) * 2, rng.normal(size=6)
  got = lib_op(name)(jnp.asarray(a, jnp.float64), jnp.asarray(b, jnp.float64))
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(got), ref_op(name)(a, b), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------
# 2. Independent oracles.
# ---------------------------------------------------------------------------


@every_path
@pytest.mark.parametrize("with_w", [False, True])
@pytest.mark.parametrize("increasing", [True, False])
def test_isotonic_l2_matches_sklearn(increasing, with_w, rng):
  n = 64
  y = rng.normal(size=(6, n)) + np.linspace(-1, 1, n) * rng.normal(size=(6, 1))
  y[3] = np.round(y[3], 1)  # Many exact ties.
  y[4] = np.cos(np.arange(n) / 3.0)
  y = np.float32(y)
  w = np.float32(rng.normal(size=(6, n))) if with_w else None
  got = np.asarray(isotonic_regression(y, w, increasing=increasing))
  for i in range(6):
    target = y[i].astype(np.float64) - (0.0 if w is None else w[i].astype(np.float64))
    want = IsotonicRegression(increasing=increasing).fit_transform(np.arange(n, dtype=np.float64), target)
    np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)
  steps = np.diff(got, axis=-1)
  assert np.all(steps >= 0) if increasing else np.all(steps <= 0)


@every_path
def test_isotonic_l2_constant_input_is_unchanged():
  constant = jnp.full((6,), 1.5)
  np.testing.assert_array_equal(np.asarray(isotonic_regression(constant, increasing=False)), np.full(6, 1.5))
  np.testing.assert_array_equal(np.asarray(isotonic_regression(constant)), np.full(6, 1.5))


@every_path
@pytest.mark.parametrize("with_w", [False, True])
@pytest.mark.parametrize("increasing", [True, False])
def test_isotonic_kl_matches_convex_solver(increasing, with_w, rng):
  y, w = random_inputs(rng, (6, 6))
  w = w if with_w else np.zeros_like(w)
  got = np.asarray(isotonic_regression(y, w if with_w else None, regularization="kl", increasing=increasing))
  for i in range(3):
    np.testing.assert_allclose(got[i], solver_isotonic_kl(y[i], w[i], increasing), rtol=1e-5, atol=2e-5)


@every_path
@pytest.mark.parametrize("n", [2, 6])
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_matches_convex_solver(regularization, n, rng):
  for _ in range(5):
    z, w = random_inputs(rng, (n,))
    got = projection_permutahedron(z, w, regularization=regularization)
    np.testing.assert_allclose(np.asarray(got), solver_projection(z, w, regularization == "kl"), rtol=1e-5, atol=2e-5)


@every_path
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_of_point_inside_is_identity(regularization, rng):
  """Points of P(w) (L2), or logs of points of P(exp w) (KL), are fixed points."""
  w = rng.normal(size=(6, 6))
  c = np.exp(w) if regularization == "kl" else w
  inside = np.stack([sum(a * rng.permutation(row) for a in rng.dirichlet(np.ones(4))) for row in c])
  z = np.log(inside) if regularization == "kl" else inside
  got = projection_permutahedron(jnp.float32(z), jnp.float32(w), regularization=regularization)
  np.testing.assert_allclose(np.asarray(got), z, rtol=1e-5, atol=1e-5)


@every_path
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_lies_in_permutahedron_and_matches_prop3_reference(regularization, rng):
  n = 64
  scales = np.array([0.1, 0.3, 1.0, 3.0, 10.0, 30.0])[:, None]
  z = np.float32(rng.normal(size=(6, n)) * scales)
  w = np.float32(rng.normal(size=(6, n)))
  kl = regularization == "kl"
  got = np.asarray(projection_permutahedron(z, w, regularization=regularization), np.float64)
  np.testing.assert_allclose(got, along_axis(lambda z, w: ref_projection(z, w, kl), -1, z, w), rtol=1e-5, atol=1e-4)
  mu, c = (np.exp(got), np.exp(np.float64(w))) if kl else (got, np.float64(w))
  # The sorted-prefix description of the permutahedron.
  prefix_mu = np.cumsum(-np.sort(-mu, axis=-1), axis=-1)
  prefix_c = np.cumsum(-np.sort(-c, axis=-1), axis=-1)
  tol = 1e-5 * (1 + np.abs(prefix_c))
  assert np.all(prefix_mu <= prefix_c + tol)
  np.testing.assert_allclose(prefix_mu[:, -1], prefix_c[:, -1], rtol=1e-5)
  # The projection keeps the order of z (Blondel et al. 2020, Lemma 1).
  assert np.all(np.diff(np.take_along_axis(mu, np.argsort(z, axis=-1), axis=-1), axis=-1) >= -1e-5)


@every_path
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_hard_limit_returns_w_in_the_order_of_z(regularization):
  z = jnp.array([30.0, -10.0, 20.0, 0.0, 50.0, -40.0])
  w = jnp.arange(1.0, 7.0)
  want = np.array([5.0, 2.0, 4.0, 3.0, 6.0, 1.0])
  if regularization == "kl":
    w, want = jnp.log(w), np.log(want)
  got = projection_permutahedron(z, w, regularization=regularization)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------
# 3. Gradients.
# ---------------------------------------------------------------------------


@every_path
@pytest.mark.parametrize("name", OPS)
def test_vjp_matches_finite_differences_of_reference(name, rng):
  """The library's float32 VJP against central differences of the float64 reference."""
  a, b = random_inputs(rng, (6, 6))
  g = np.float32(rng.normal(size=(6, 6)))
  _, vjp = jax.vjp(lib_op(name), jnp.asarray(a), jnp.asarray(b))
  grad_a, grad_b = (np.asarray(x) for x in vjp(jnp.asarray(g)))
  for i in range(6):
    want_a, want_b = finite_difference_vjp(ref_op(name), (a[i], b[i]), g[i].astype(np.float64))
    np.testing.assert_allclose(grad_a[i], want_a, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grad_b[i], want_b, rtol=1e-4, atol=1e-4)


@every_path
@pytest.mark.parametrize("name", OPS)
def test_check_grads_float64(name, x64, rng):
  a = jnp.asarray(rng.normal(size=6) * 2, jnp.float64)
  b = jnp.asarray(rng.normal(size=6), jnp.float64)
  g = jnp.asarray(rng.normal(size=6), jnp.float64)
  fn = lib_op(name)
  jax.test_util.check_grads(lambda a, b: jnp.vdot(g, fn(a, b)), (a, b), order=1, modes=["rev"])


# ---------------------------------------------------------------------------
# 4. Transformations.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPS)
def test_vmap_jit_and_nested_vmap_match_loops(name, rng):
  a, b = (jnp.asarray(x) for x in random_inputs(rng, (2, 3, 6)))
  fn = lib_op(name)
  loop = np.stack([np.stack([np.asarray(fn(a[i, j], b[i, j])) for j in range(3)]) for i in range(2)])
  shared_loop = np.stack([np.asarray(fn(r, b[1, 2])) for r in a[0]])

  # The ops vmap over the batch themselves, so fn(a, b) is the eager vmap.
  np.testing.assert_allclose(np.asarray(fn(a, b)), loop, rtol=1e-6, atol=1e-6)

  @jax.jit  # Compiled once; the batching rules are the same as in eager mode.
  def batched(a, b):
    nested = jax.vmap(jax.vmap(fn))(a, b)
    shared = jax.vmap(fn, in_axes=(0, None))(a[0], b[1, 2])  # Second argument not batched.
    return nested, shared

  nested, shared = batched(a, b)
  np.testing.assert_allclose(np.asarray(nested), loop, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(shared), shared_loop, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# 5. Properties.
# ---------------------------------------------------------------------------


@every_path
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_exact_ties_get_exactly_equal_values(regularization):
  z = np.array([0.5, 2.0, 0.5, -1.0, 2.0, 0.5], np.float32)
  w = np.array([3.0, 1.0, 0.0, 2.0, 5.0, 4.0], np.float32)
  got = np.asarray(projection_permutahedron(z, w, regularization=regularization))
  assert got[0] == got[2] == got[5]
  assert got[1] == got[4]
  np.testing.assert_allclose(got, ref_projection(z, w, regularization == "kl"), atol=1e-5)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_is_permutation_equivariant(regularization, rng):
  z, w = random_inputs(rng, (6,))
  perm = rng.permutation(6)
  base = np.asarray(projection_permutahedron(z, w, regularization=regularization))
  np.testing.assert_allclose(base, ref_projection(z, w, regularization == "kl"), rtol=1e-5, atol=2e-5)
  # Permuting z permutes the output; permuting w changes nothing.
  permuted = projection_permutahedron(z[perm], w[::-1], regularization=regularization)
  np.testing.assert_allclose(np.asarray(permuted), base[perm], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# 6. Hostile input.
# ---------------------------------------------------------------------------


@every_path
def test_isotonic_large_magnitudes_match_sklearn():
  y = np.array([1e30, -1e30, 5e29, 1.0, -3e29, 2e30], np.float32)
  for increasing in (True, False):
    got = np.asarray(isotonic_regression(y, increasing=increasing), np.float64)
    want = IsotonicRegression(increasing=increasing).fit_transform(np.arange(6.0), y.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-6)


@every_path
def test_isotonic_l2_does_not_overflow_near_float32_max():
  got = isotonic_regression(jnp.array([3e38, 3e38, 0.0], jnp.float32))
  np.testing.assert_allclose(np.asarray(got), np.full(3, 2e38), rtol=1e-6)


@every_path
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_large_magnitudes_keep_exact_order(regularization):
  z = jnp.array([1e30, -1e30, 5e29, 1.0, -3e29, 2e30], jnp.float32)
  w = jnp.arange(1.0, 7.0)
  want = np.array([5.0, 1.0, 4.0, 3.0, 2.0, 6.0])
  if regularization == "kl":
    w, want = jnp.log(w), np.log(want)
  got = projection_permutahedron(z, w, regularization=regularization)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-7)


@every_path
@pytest.mark.parametrize("name", OPS)
def test_length_one_vectors(name):
  a, b = np.array([[3.0], [-2.0]], np.float32), np.array([[0.5], [1.0]], np.float32)
  got = lib_op(name)(a, b)
  np.testing.assert_allclose(np.asarray(got), along_axis(ref_op(name), -1, a, b), rtol=1e-6)


@every_path
@pytest.mark.parametrize("name", OPS)
def test_non_finite_row_gives_nan_in_that_row_only(name, rng):
  a, b = random_inputs(rng, (6, 6))
  bad_a, bad_b = a.copy(), b.copy()
  bad_a[1, 3] = np.nan
  bad_a[2, 0] = np.inf
  bad_b[3, 5] = -np.inf
  bad_b[4, 2] = np.nan
  bad_rows, good_rows = [1, 2, 3, 4], [0, 5]
  fn = lib_op(name)
  got = np.asarray(fn(bad_a, bad_b))
  assert np.all(np.isnan(got[bad_rows]))
  np.testing.assert_allclose(got[good_rows], np.asarray(fn(a, b))[good_rows], rtol=1e-6, atol=1e-6)
  want = along_axis(ref_op(name), -1, a[good_rows], b[good_rows])
  np.testing.assert_allclose(got[good_rows], want, rtol=1e-5, atol=5e-5)
  # Gradients of the finite rows are those without the bad rows, and finite.
  g = np.float32(rng.normal(size=(6, 6)))
  grads = jax.vjp(fn, jnp.asarray(bad_a), jnp.asarray(bad_b))[1](g)
  clean = jax.vjp(fn, jnp.asarray(a), jnp.asarray(b))[1](g)
  for got_g, clean_g in zip(grads, clean):
    got_g = np.asarray(got_g)[good_rows]
    assert np.all(np.isfinite(got_g))
    np.testing.assert_allclose(got_g, np.asarray(clean_g)[good_rows], rtol=1e-6, atol=1e-6)


@every_path
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_large_batch_is_finite_with_finite_gradients(regularization, ranking_path, rng):
  # The dense path unrolls its prefix sums (n steps): slow to compile for hundreds of elements.
  shape = (50, 64) if ranking_path == "dense" else (50, 500)
  z = jnp.float32(rng.normal(size=shape) * 3)
  w = jnp.float32(rng.normal(size=shape))
  g = jnp.float32(rng.normal(size=shape))

  @jax.jit
  def run(z, w):
    out, vjp = jax.vjp(lambda z, w: projection_permutahedron(z, w, regularization=regularization), z, w)
    return out, vjp(g)

  out, (grad_z, grad_w) = run(z, w)
  out = np.asarray(out, np.float64)
  assert np.all(np.isfinite(out))
  assert np.all(np.isfinite(np.asarray(grad_z))) and np.all(np.isfinite(np.asarray(grad_w)))
  total = np.exp(np.float64(w)) if regularization == "kl" else np.float64(w)
  mass = np.exp(out) if regularization == "kl" else out
  np.testing.assert_allclose(mass.sum(-1), total.sum(-1), rtol=1e-4, atol=1e-2)


INVALID_CALLS = [
    pytest.param(lambda x: isotonic_regression(x, regularization="l1"), "regularization", id="isotonic-reg-l1"),
    pytest.param(lambda x: isotonic_regression(x, regularization=None), "regularization", id="isotonic-reg-None"),
    pytest.param(lambda x: projection_permutahedron(x, x, regularization="kl2"), "regularization", id="projection-reg"),
    pytest.param(lambda x: isotonic_regression(x, axis=2), "axis", id="isotonic-axis-2"),
    pytest.param(lambda x: isotonic_regression(x, axis=-3), "axis", id="isotonic-axis--3"),
    pytest.param(lambda x: projection_permutahedron(x, x, axis=2), "axis", id="projection-axis-2"),
    pytest.param(lambda x: projection_permutahedron(x, x, axis=-3), "axis", id="projection-axis--3"),
    pytest.param(lambda x: projection_permutahedron(x, x, axis=1.0), "axis", id="projection-axis-float"),
    pytest.param(lambda x: isotonic_regression(x, x[:, :2]), "shapes", id="isotonic-shapes"),
    pytest.param(lambda x: projection_permutahedron(x, x[:1]), "shapes", id="projection-shapes"),
]


@pytest.mark.parametrize("call,argument", INVALID_CALLS)
def test_invalid_arguments_raise_value_error_naming_the_argument(call, argument):
  with pytest.raises(ValueError, match=rf"\b{argument}\b"):
    call(jnp.ones((2, 3)))
