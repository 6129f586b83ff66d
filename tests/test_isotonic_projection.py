"""Tests for `isotonic_regression` and `projection_permutahedron`.

Every expected value comes from an independent reference written here:
scikit-learn's isotonic regression (L2), convex solves with cvxpy (KL isotonic
regression and both permutahedron projections, with the permutahedron written
out as its 2^n - 2 subset inequalities) and a plain numpy pool-adjacent-violators
in float64 that is used for larger vectors and for finite differences.
"""

import itertools
import zlib

import cvxpy as cp
import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest
import scipy.optimize
from scipy.special import logsumexp
from sklearn.isotonic import IsotonicRegression

from shuffle_learn.ranking import isotonic_regression
from shuffle_learn.ranking import projection_permutahedron

REGULARIZATIONS = ("l2", "kl")

# The library's PAV loop indexes `lax.dynamic_slice` with a mix of int32 and the
# int64 that x64 mode gives Python ints, so nothing built on PAV runs in float64.
X64_BUG = pytest.mark.xfail(
    strict=True,
    raises=TypeError,
    reason="PAV fails under jax_enable_x64: 'index arguments to dynamic_slice must be integers of the same type, got: int32, int64'.",
)
# The PAV loop slices two rows of an (n, 3) stack, which does not exist for n = 1.
N1_BUG = pytest.mark.xfail(
    strict=True,
    raises=TypeError,
    reason="PAV fails for n = 1: 'slice slice_sizes must be less than or equal to operand shape, got slice_sizes (2, 3) for operand shape (1, 3)'.",
)

_CLARABEL_TIGHT = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, tol_ktratio=1e-8)


# ---------------------------------------------------------------------------
# Independent references (numpy / scipy / scikit-learn / cvxpy, float64).
# ---------------------------------------------------------------------------


def _pav_decreasing(y, w, kl):
  """argmin over decreasing v of the separable dual, by textbook PAV (float64).

  L2: 1/2 ||v - (y - w)||^2, block value mean(y) - mean(w).
  KL: <exp(y - v), 1> + <exp(w), v>, block value logsumexp(y) - logsumexp(w).
  """
  y = np.asarray(y, np.float64)
  w = np.asarray(w, np.float64)

  def value(block):
    if kl:
      return logsumexp(y[block]) - logsumexp(w[block])
    return y[block].mean() - w[block].mean()

  blocks = []
  for i in range(len(y)):
    blocks.append([i])
    while len(blocks) > 1 and value(blocks[-2]) < value(blocks[-1]):
      tail = blocks.pop()
      blocks[-1].extend(tail)
  v = np.empty(len(y))
  for block in blocks:
    v[block] = value(block)
  return v


def ref_isotonic(y, w=None, kl=False, increasing=True):
  """Isotonic regression: scikit-learn for L2, numpy PAV for KL."""
  y = np.asarray(y, np.float64)
  w = np.zeros_like(y) if w is None else np.asarray(w, np.float64)
  if not kl:
    model = IsotonicRegression(increasing=increasing)
    return model.fit_transform(np.arange(len(y), dtype=np.float64), y - w)
  if increasing:
    return _pav_decreasing(y[::-1], w[::-1], kl=True)[::-1]
  return _pav_decreasing(y, w, kl=True)


def solver_isotonic_kl(y, w, increasing):
  """argmin_v <exp(y - v), 1> + <exp(w), v> subject to monotone v, by scipy.

  Written as v = v0 + sign * cumsum([0, d]) with d >= 0, a smooth convex
  bound-constrained problem that L-BFGS-B solves to ~1e-9.
  """
  n = len(y)
  sign = 1.0 if increasing else -1.0
  basis = sign * np.tril(np.ones((n, n)), k=-1)[:, : n - 1]  # v = v0 + basis @ d.
  ew = np.exp(w)

  def objective(p):
    v = p[0] + basis @ p[1:]
    e = np.exp(y - v)
    grad_v = ew - e
    return e.sum() + ew @ v, np.concatenate([[grad_v.sum()], basis.T @ grad_v])

  start = np.concatenate([[np.mean(y - w)], np.zeros(n - 1)])
  bounds = [(None, None)] + [(0.0, None)] * (n - 1)
  res = scipy.optimize.minimize(
      objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options=dict(ftol=1e-15, gtol=1e-12, maxiter=10000)
  )
  return res.x[0] + basis @ res.x[1:]


def solver_projection(z, w, kl):
  """Projection onto the permutahedron by a convex solver (n <= 6).

  P(c) = {mu : sum(mu) = sum(c), sum_S mu <= sum of the |S| largest c for every
  proper subset S}. L2 projects z onto P(w); KL returns
  log argmin_{mu in P(exp w)} KL(mu || exp z). Shifting z by a constant c only
  adds terms constant on P(exp w) (sum mu is fixed), so z - max(z) is used for
  conditioning.
  """
  z = np.asarray(z, np.float64)
  w = np.asarray(w, np.float64)
  n = len(z)
  c = np.exp(w) if kl else w
  caps = np.cumsum(np.sort(c)[::-1])
  mu = cp.Variable(n)
  constraints = [cp.sum(mu) == caps[-1]]
  for size in range(1, n):
    for subset in itertools.combinations(range(n), size):
      constraints.append(cp.sum(mu[list(subset)]) <= caps[size - 1])
  if kl:
    objective = cp.sum(cp.kl_div(mu, np.exp(z - z.max())))
  else:
    objective = 0.5 * cp.sum_squares(mu - z)
  cp.Problem(cp.Minimize(objective), constraints).solve(solver=cp.CLARABEL, **_CLARABEL_TIGHT)
  return np.log(mu.value) if kl else mu.value


def ref_projection(z, w, kl):
  """Projection through Blondel et al. Prop. 3 with the references above.

  mu = z - v, v the decreasing isotonic regression of z sorted decreasingly
  against w sorted decreasingly (scikit-learn for L2, numpy PAV for KL).
  """
  z = np.asarray(z, np.float64)
  w = np.asarray(w, np.float64)
  order = np.argsort(-z, kind="stable")
  s = z[order]
  w_sorted = np.sort(w)[::-1]
  if kl:
    v = _pav_decreasing(s, w_sorted, kl=True)
  else:
    v = IsotonicRegression(increasing=False).fit_transform(np.arange(len(s), dtype=np.float64), s - w_sorted)
  out = np.empty_like(s)
  out[order] = s - v
  return out


def along_axis(fn, axis, *arrays):
  """Applies a reference written for vectors along `axis` of same-shaped arrays."""
  moved = [np.moveaxis(np.asarray(a, np.float64), axis, -1) for a in arrays]
  n = moved[0].shape[-1]
  rows = zip(*(m.reshape(-1, n) for m in moved))
  out = np.stack([fn(*row) for row in rows]).reshape(moved[0].shape)
  return np.moveaxis(out, -1, axis)


def finite_difference_vjp(fn, args, cotangent, h=1e-6):
  """Central differences of <cotangent, fn(*args)> with respect to each arg."""
  grads = []
  for k, arg in enumerate(args):
    grad = np.zeros(len(arg))
    for i in range(len(arg)):
      plus = [np.array(a, np.float64) for a in args]
      minus = [np.array(a, np.float64) for a in args]
      plus[k][i] += h
      minus[k][i] -= h
      grad[i] = (cotangent @ fn(*plus) - cotangent @ fn(*minus)) / (2 * h)
    grads.append(grad)
  return grads


# ---------------------------------------------------------------------------
# The ops under test with their references, keyed by name.
# ---------------------------------------------------------------------------


def _lib(name):
  """The library op for `name`, as a function of (first, second, axis=)."""
  kind, reg, *rest = name.split("-")
  if kind == "isotonic":
    increasing = rest[0] == "inc"
    return lambda y, w, axis=-1: isotonic_regression(y, w, regularization=reg, increasing=increasing, axis=axis)
  return lambda z, w, axis=-1: projection_permutahedron(z, w, regularization=reg, axis=axis)


def _ref(name):
  kind, reg, *rest = name.split("-")
  if kind == "isotonic":
    return lambda y, w: ref_isotonic(y, w, kl=reg == "kl", increasing=rest[0] == "inc")
  return lambda z, w: ref_projection(z, w, kl=reg == "kl")


OPS = ("isotonic-l2-inc", "isotonic-l2-dec", "isotonic-kl-inc", "isotonic-kl-dec", "projection-l2", "projection-kl")


def _inputs(rng, shape, scale=2.0):
  return rng.normal(size=shape) * scale, rng.normal(size=shape)


@pytest.fixture
def x64():
  """Enables float64 for one test and restores the previous setting after it."""
  with jax.enable_x64(True):
    yield


@pytest.fixture
def rng(request):
  return np.random.default_rng(zlib.crc32(request.node.name.encode()))


# ---------------------------------------------------------------------------
# 1. Shapes, axes and dtypes.
# ---------------------------------------------------------------------------

SHAPES_AXES = [((7,), -1), ((7,), 0), ((4, 6), 0), ((4, 6), 1), ((4, 6), -1), ((2, 3, 5), 0), ((2, 3, 5), 1), ((2, 3, 5), -1)]


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_shape_axis_and_values_match_reference(name, shape, axis, rng):
  a, b = _inputs(rng, shape)
  got = _lib(name)(jnp.float32(a), jnp.float32(b), axis=axis)
  assert got.shape == shape
  assert got.dtype == jnp.float32
  want = along_axis(_ref(name), axis, np.float32(a), np.float32(b))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=5e-5)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_keeps_dtype_and_is_close_to_float32(name, dtype, rng):
  a, b = _inputs(rng, (3, 9))
  a16, b16 = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
  got = _lib(name)(a16, b16)
  assert got.dtype == dtype
  assert got.shape == (3, 9)
  # The same (rounded) inputs in float32: only the output rounding differs.
  want = _lib(name)(a16.astype(jnp.float32), b16.astype(jnp.float32))
  eps = float(jnp.finfo(dtype).eps)
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want), rtol=2 * eps, atol=2 * eps)
  # And the float32 computation on the rounded inputs matches the reference.
  ref = along_axis(_ref(name), -1, np.asarray(a16, np.float32), np.asarray(b16, np.float32))
  np.testing.assert_allclose(np.asarray(got, np.float32), ref, rtol=4 * eps, atol=4 * eps)


def test_isotonic_default_w_and_integer_input():
  got = isotonic_regression(jnp.array([1, 3, 2, 4]))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), [1.0, 2.5, 2.5, 4.0])


@X64_BUG
@pytest.mark.parametrize("name", OPS)
def test_float64_keeps_dtype_and_precision(name, x64, rng):
  a, b = _inputs(rng, (3, 8))
  got = _lib(name)(jnp.asarray(a, jnp.float64), jnp.asarray(b, jnp.float64))
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(got), along_axis(_ref(name), -1, a, b), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------
# 2. Independent oracles.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("increasing", [True, False])
@pytest.mark.parametrize("with_w", [False, True])
@pytest.mark.parametrize("n", [2, 10, 200])
@pytest.mark.parametrize("seed", [0, 1])
def test_isotonic_l2_matches_sklearn(increasing, with_w, n, seed):
  rng = np.random.default_rng(seed)
  y = rng.normal(size=n).astype(np.float32) + np.linspace(0, 1, n, dtype=np.float32)
  w = rng.normal(size=n).astype(np.float32) if with_w else None
  got = isotonic_regression(y, w, increasing=increasing)
  model = IsotonicRegression(increasing=increasing)
  target = y.astype(np.float64) - (0 if w is None else w.astype(np.float64))
  want = model.fit_transform(np.arange(n, dtype=np.float64), target)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
  # Monotone in the requested direction.
  steps = np.diff(np.asarray(got))
  assert np.all(steps >= -1e-6) if increasing else np.all(steps <= 1e-6)


def test_isotonic_l2_with_ties_and_constant_input():
  y = np.array([2.0, 2.0, 1.0, 1.0, 3.0, 3.0, 0.0])
  np.testing.assert_allclose(np.asarray(isotonic_regression(y)), IsotonicRegression().fit_transform(np.arange(7.0), y), atol=1e-6)
  constant = jnp.full((5,), 1.5)
  np.testing.assert_array_equal(np.asarray(isotonic_regression(constant, increasing=False)), np.full(5, 1.5))


@pytest.mark.parametrize("increasing", [True, False])
@pytest.mark.parametrize("with_w", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_isotonic_kl_matches_convex_solver(increasing, with_w, seed):
  rng = np.random.default_rng(seed)
  n = 7
  y = (rng.normal(size=n) * 1.5).astype(np.float32).astype(np.float64)
  w = rng.normal(size=n).astype(np.float32).astype(np.float64) if with_w else np.zeros(n)
  got = isotonic_regression(jnp.float32(y), jnp.float32(w) if with_w else None, regularization="kl", increasing=increasing)
  want = solver_isotonic_kl(y, w, increasing)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
@pytest.mark.parametrize("n", [2, 3, 5, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_projection_matches_convex_solver(regularization, n, seed):
  rng = np.random.default_rng(seed)
  z = (rng.normal(size=n) * 2).astype(np.float32).astype(np.float64)
  w = rng.normal(size=n).astype(np.float32).astype(np.float64)
  kl = regularization == "kl"
  got = projection_permutahedron(jnp.float32(z), jnp.float32(w), regularization=regularization)
  np.testing.assert_allclose(np.asarray(got), solver_projection(z, w, kl), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_of_point_inside_is_identity(regularization, rng):
  """Points of P(w) (L2) or logs of points of P(exp w) (KL) are fixed points."""
  n = 8
  w = rng.normal(size=n)
  c = np.exp(w) if regularization == "kl" else w
  # A convex combination of random permutations of c lies in P(c).
  weights = rng.dirichlet(np.ones(5))
  inside = sum(a * rng.permutation(c) for a in weights)
  z = np.log(inside) if regularization == "kl" else inside
  got = projection_permutahedron(jnp.float32(z), jnp.float32(w), regularization=regularization)
  np.testing.assert_allclose(np.asarray(got), z, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
@pytest.mark.parametrize("scale", [0.1, 3.0, 30.0])
def test_projection_lies_in_permutahedron_and_matches_prop3_reference(regularization, scale, rng):
  n = 64
  z = rng.normal(size=n) * scale
  w = rng.normal(size=n)
  kl = regularization == "kl"
  got = np.asarray(projection_permutahedron(jnp.float32(z), jnp.float32(w), regularization=regularization), np.float64)
  np.testing.assert_allclose(got, ref_projection(np.float32(z), np.float32(w), kl), rtol=1e-5, atol=1e-4)
  mu, c = (np.exp(got), np.exp(np.float32(w))) if kl else (got, np.float32(w))
  # Sorted-prefix description of the permutahedron.
  prefix_mu = np.cumsum(np.sort(mu)[::-1])
  prefix_c = np.cumsum(np.sort(c)[::-1])
  tol = 1e-4 * (1 + np.abs(prefix_c))
  assert np.all(prefix_mu <= prefix_c + tol)
  assert abs(prefix_mu[-1] - prefix_c[-1]) <= tol[-1]
  # The projection keeps the order of z (Blondel et al. 2020, Lemma 1).
  assert np.all(np.diff(mu[np.argsort(z)]) >= -1e-5)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_hard_limit_returns_permuted_w(regularization):
  z = jnp.array([30.0, -10.0, 20.0, 0.0])
  w = jnp.array([1.0, 2.0, 3.0, 4.0])
  got = projection_permutahedron(z, w, regularization=regularization)
  np.testing.assert_allclose(np.asarray(got), [4.0, 1.0, 3.0, 2.0], rtol=1e-6)


# ---------------------------------------------------------------------------
# 3. Gradients.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vjp_matches_finite_differences_of_reference(name, seed):
  """Library VJP (float32) against central differences of the float64 reference."""
  rng = np.random.default_rng(seed)
  n = 9
  a = (rng.normal(size=n) * 1.5).astype(np.float32)
  b = rng.normal(size=n).astype(np.float32)
  g = rng.normal(size=n)
  fn = _lib(name)
  _, vjp = jax.vjp(fn, jnp.asarray(a), jnp.asarray(b))
  got = vjp(jnp.float32(g))
  want = finite_difference_vjp(_ref(name), (a, b), g)
  for got_k, want_k in zip(got, want):
    np.testing.assert_allclose(np.asarray(got_k), want_k, rtol=1e-4, atol=1e-4)


@X64_BUG
@pytest.mark.parametrize("name", OPS)
def test_check_grads_float64(name, x64):
  rng = np.random.default_rng(3)
  a = jnp.asarray(rng.normal(size=8) * 1.5, jnp.float64)
  b = jnp.asarray(rng.normal(size=8), jnp.float64)
  g = jnp.asarray(rng.normal(size=8), jnp.float64)
  fn = _lib(name)
  jax.test_util.check_grads(lambda a, b: jnp.vdot(g, fn(a, b)), (a, b), order=1, modes=["rev"])


# ---------------------------------------------------------------------------
# 4. Transformations.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPS)
def test_vmap_jit_and_nested_vmap_match_loops(name, rng):
  a, b = _inputs(rng, (3, 4, 6))
  a, b = jnp.float32(a), jnp.float32(b)
  fn = _lib(name)
  loop = np.stack([np.stack([np.asarray(fn(a[i, j], b[i, j])) for j in range(4)]) for i in range(3)])
  np.testing.assert_allclose(np.asarray(jax.vmap(jax.vmap(fn))(a, b)), loop, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.vmap(fn)(a[0], b[0])), loop[0], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.jit(fn)(a, b)), np.asarray(fn(a, b)), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(fn(a, b)), loop, rtol=1e-6, atol=1e-6)
  # Only the first argument batched, the second shared.
  shared = jax.vmap(fn, in_axes=(0, None))(a[0], b[0, 0])
  np.testing.assert_allclose(np.asarray(shared), np.stack([np.asarray(fn(r, b[0, 0])) for r in a[0]]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", OPS)
def test_grad_of_vmap_equals_vmap_of_grad(name, rng):
  a, b = _inputs(rng, (4, 7))
  a, b = jnp.float32(a), jnp.float32(b)
  g = jnp.float32(rng.normal(size=(4, 7)))
  fn = _lib(name)
  outer = jax.grad(lambda a, b: jnp.sum(g * jax.vmap(fn)(a, b)), argnums=(0, 1))(a, b)
  inner = jax.vmap(jax.grad(lambda a, b, g: jnp.vdot(g, fn(a, b)), argnums=(0, 1)))(a, b, g)
  for o, i in zip(outer, inner):
    np.testing.assert_allclose(np.asarray(o), np.asarray(i), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# 5. Properties.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_exact_ties_get_exactly_equal_values(regularization):
  z = jnp.array([0.5, 2.0, 0.5, -1.0, 2.0, 0.5])
  w = jnp.array([3.0, 1.0, 0.0, 2.0, 5.0, 4.0])
  got = np.asarray(projection_permutahedron(z, w, regularization=regularization))
  assert got[0] == got[2] == got[5]
  assert got[1] == got[4]
  np.testing.assert_allclose(got, ref_projection(np.asarray(z), np.asarray(w), regularization == "kl"), atol=1e-5)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_is_permutation_equivariant(regularization, rng):
  z, w = _inputs(rng, (12,))
  perm = rng.permutation(12)
  base = np.asarray(projection_permutahedron(jnp.float32(z), jnp.float32(w), regularization=regularization))
  # Permuting z permutes the output; permuting w changes nothing.
  permuted = projection_permutahedron(jnp.float32(z[perm]), jnp.float32(w[::-1]), regularization=regularization)
  np.testing.assert_allclose(np.asarray(permuted), base[perm], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# 6. Hostile input.
# ---------------------------------------------------------------------------


def test_isotonic_large_magnitudes_match_sklearn():
  y = np.array([1e30, -1e30, 5e29, 1.0], np.float32)
  for increasing in (True, False):
    got = np.asarray(isotonic_regression(y, increasing=increasing), np.float64)
    want = IsotonicRegression(increasing=increasing).fit_transform(np.arange(4.0), y.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_projection_large_magnitudes_keep_exact_order(regularization):
  z = jnp.array([1e30, -1e30, 5e29, 1.0], jnp.float32)
  w = jnp.array([1.0, 2.0, 3.0, 4.0])
  if regularization == "kl":
    w = jnp.log(w)
  got = projection_permutahedron(z, w, regularization=regularization)
  want = np.array([4.0, 1.0, 3.0, 2.0])
  np.testing.assert_allclose(np.asarray(got), np.log(want) if regularization == "kl" else want, rtol=1e-6)


@N1_BUG
@pytest.mark.parametrize("name", OPS)
def test_length_one_vectors(name):
  got = _lib(name)(jnp.array([[3.0], [-2.0]]), jnp.array([[0.5], [1.0]]))
  want = along_axis(_ref(name), -1, np.array([[3.0], [-2.0]]), np.array([[0.5], [1.0]]))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 1])
def test_non_finite_row_gives_nan_in_that_row_only(name, bad, where, rng):
  a, b = _inputs(rng, (4, 6))
  a, b = np.float32(a), np.float32(b)
  bad_a, bad_b = a.copy(), b.copy()
  (bad_a if where == 0 else bad_b)[2, 3] = bad
  fn = _lib(name)
  got = np.asarray(fn(bad_a, bad_b))
  assert np.all(np.isnan(got[2]))
  keep = [0, 1, 3]
  clean = np.asarray(fn(a[keep], b[keep]))
  np.testing.assert_allclose(got[keep], clean, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(got[keep], along_axis(_ref(name), -1, a[keep], b[keep]), rtol=1e-5, atol=5e-5)
  # Gradients of the other rows are those without the bad row, and finite.
  g = np.float32(rng.normal(size=(4, 6)))
  grads = jax.grad(lambda a, b: jnp.sum(g * fn(a, b)), argnums=(0, 1))(bad_a, bad_b)
  clean_grads = jax.grad(lambda a, b: jnp.sum(g[keep] * fn(a, b)), argnums=(0, 1))(a[keep], b[keep])
  for got_g, clean_g in zip(grads, clean_grads):
    assert np.all(np.isfinite(np.asarray(got_g)[keep]))
    np.testing.assert_allclose(np.asarray(got_g)[keep], np.asarray(clean_g), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_large_batch_is_finite_with_finite_gradients(regularization, rng):
  z = jnp.float32(rng.normal(size=(300, 300)) * 3)
  w = jnp.float32(rng.normal(size=(300, 300)))
  g = jnp.float32(rng.normal(size=(300, 300)))

  @jax.jit
  def run(z, w):
    out, vjp = jax.vjp(lambda z, w: projection_permutahedron(z, w, regularization=regularization), z, w)
    return out, vjp(g)

  out, (gz, gw) = run(z, w)
  assert np.all(np.isfinite(np.asarray(out)))
  assert np.all(np.isfinite(np.asarray(gz))) and np.all(np.isfinite(np.asarray(gw)))
  mass = np.exp(np.asarray(out, np.float64)) if regularization == "kl" else np.asarray(out, np.float64)
  total = np.exp(np.asarray(w, np.float64)) if regularization == "kl" else np.asarray(w, np.float64)
  np.testing.assert_allclose(mass.sum(-1), total.sum(-1), rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda x: isotonic_regression(x, regularization="l1"), "regularization"),
        (lambda x: projection_permutahedron(x, x, regularization="entropy"), "regularization"),
        (lambda x: projection_permutahedron(x, x, regularization=None), "regularization"),
        (lambda x: isotonic_regression(x, axis=2), "axis"),
        (lambda x: isotonic_regression(x, axis=-3), "axis"),
        (lambda x: projection_permutahedron(x, x, axis=2), "axis"),
        (lambda x: projection_permutahedron(x, x, axis=-3), "axis"),
        (lambda x: projection_permutahedron(x, x, axis=1.0), "axis"),
        (lambda x: isotonic_regression(x, x[:, :2]), "shape"),
        (lambda x: projection_permutahedron(x, x[:1]), "shape"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_argument(call, match):
  with pytest.raises(ValueError, match=match):
    call(jnp.ones((2, 3)))
