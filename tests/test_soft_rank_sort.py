"""Tests for `soft_rank`, `soft_sort` and `hard_rank`.

Expected values come from independent references written here or in
tests/references.py, never from the library: permutahedron projections by
cvxpy (the permutahedron written out as its 2^n - 2 subset inequalities) and,
for longer vectors and finite differences, by Blondel et al. 2020, Prop. 3
with scikit-learn's isotonic regression (L2) or a numpy pool-adjacent-violators
(KL); hard ranks by `scipy.stats.rankdata`. With rho = (n, ..., 1) and strength eps:

  soft_rank  L2: P_Q(+-x / eps, rho)          KL: exp P_E(+-x / eps, log rho)
  soft_sort  L2: P_Q(rho' / eps, x)           KL: P_E(rho' / eps, x)

with the sign + for ascending ranks, rho' = (1, ..., n) for an ascending sort
and rho' = rho for a descending one; P_E(z, w) = log argmin over mu in P(exp w)
of KL(mu || exp z).

Most tests use vectors of length 6 in batches of 6 so that the library's
compiled pieces are shared between tests.
"""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest
import scipy.stats
from scipy.special import logsumexp

from shuffle_learn.ranking import hard_rank
from shuffle_learn.ranking import soft_rank
from shuffle_learn.ranking import soft_sort
from tests.references import along_axis
from tests.references import finite_difference_vjp
from tests.references import ref_projection
from tests.references import solver_projection

# Oracle, gradient and hostile-input tests run on every path of the ops
# (tests/conftest.py, `ranking_path`).
every_path = pytest.mark.usefixtures("ranking_path")

REGULARIZATIONS = ("l2", "kl")
DIRECTIONS = ("ascending", "descending")
SOFT_OPS = ("soft_rank-l2", "soft_rank-kl", "soft_sort-l2", "soft_sort-kl")
OPS = SOFT_OPS + ("hard_rank",)
STRENGTH = 0.5  # Default strength of these tests: values ~ N(0, 1) pool into blocks of a few elements.


# ---------------------------------------------------------------------------
# Independent references (float64); the shared ones are in tests/references.py.
# ---------------------------------------------------------------------------


def ref_soft_rank(x, strength, kl, direction, projection=ref_projection):
  """P_Q(+-x / eps, rho) (L2) or exp P_E(+-x / eps, log rho) (KL), rho = (n, ..., 1)."""
  x = np.asarray(x, np.float64)
  rho = np.arange(len(x), 0, -1.0)
  z = (x if direction == "ascending" else -x) / strength
  return np.exp(projection(z, np.log(rho), True)) if kl else projection(z, rho, False)


def ref_soft_sort(x, strength, kl, direction, projection=ref_projection):
  """P_Q(rho' / eps, x) (L2) or P_E(rho' / eps, x) (KL), rho' increasing for an ascending sort."""
  x = np.asarray(x, np.float64)
  n = len(x)
  rho = np.arange(1.0, n + 1) if direction == "ascending" else np.arange(n, 0, -1.0)
  return projection(rho / strength, x, kl)


def ref_hard_rank(x, direction):
  """Ranks from scipy; ties share their average rank, as the docstring says."""
  x = np.asarray(x, np.float64)
  return scipy.stats.rankdata(x if direction == "ascending" else -x, method="average")


# ---------------------------------------------------------------------------
# The ops under test and their references, by name.
# ---------------------------------------------------------------------------


def lib_op(name, direction="ascending", strength=STRENGTH):
  """The library op `name` as a function of (values, axis=-1)."""
  if name == "hard_rank":
    return lambda x, axis=-1: hard_rank(x, direction=direction, axis=axis)
  kind, reg = name.split("-")
  fn = soft_rank if kind == "soft_rank" else soft_sort
  return lambda x, axis=-1: fn(x, regularization_strength=strength, regularization=reg, direction=direction, axis=axis)


def ref_op(name, direction="ascending", strength=STRENGTH, projection=ref_projection):
  """The reference for `name` on one float64 vector."""
  if name == "hard_rank":
    return lambda x: ref_hard_rank(x, direction)
  kind, reg = name.split("-")
  fn = ref_soft_rank if kind == "soft_rank" else ref_soft_sort
  return lambda x: fn(x, strength, reg == "kl", direction, projection)


# ---------------------------------------------------------------------------
# 1. Shapes, axes and dtypes.
# ---------------------------------------------------------------------------

# Every case flattens to vectors of length 6 along the axis.
SHAPES_AXES = [((6,), 0), ((6, 6), 0), ((6, 6), 1), ((2, 3, 6), -1), ((6, 2, 3), 0), ((2, 6, 3), 1)]


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", OPS)
def test_shape_axis_and_values_match_reference(name, direction, shape, axis, rng):
  x = np.float32(rng.normal(size=shape))
  got = lib_op(name, direction)(jnp.asarray(x), axis=axis)
  assert got.shape == shape
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), along_axis(ref_op(name, direction), axis, x), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", OPS)
def test_half_precision_keeps_dtype_and_is_close_to_float32(name, dtype, rng):
  x16 = jnp.asarray(rng.normal(size=(6, 6)), dtype)
  got = lib_op(name)(x16)
  assert got.dtype == dtype
  assert got.shape == (6, 6)
  eps = float(jnp.finfo(dtype).eps)
  # The same rounded inputs in float32: only the rounding of the output differs.
  want = lib_op(name)(x16.astype(jnp.float32))
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want), rtol=eps, atol=eps)
  ref = along_axis(ref_op(name), -1, np.asarray(x16, np.float32))
  np.testing.assert_allclose(np.asarray(got, np.float32), ref, rtol=2 * eps, atol=2 * eps)


@pytest.mark.parametrize("name", OPS)
def test_integer_input_gives_float32(name, rng):
  x = np.int32(np.round(rng.normal(size=(6, 6)) * 3))  # With ties.
  got = lib_op(name)(jnp.asarray(x))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), along_axis(ref_op(name), -1, x), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("name", OPS)
def test_float64_keeps_dtype_and_precision(name, x64, rng):
  x = rng.normal(size=6)
  got = lib_op(name, "descending")(jnp.asarray(x, jnp.float64))
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(got), ref_op(name, "descending")(x), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------
# 2. Independent oracles.
# ---------------------------------------------------------------------------


@every_path
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", SOFT_OPS)
def test_soft_ops_match_convex_solver(name, direction, rng):
  for strength in (0.3, 1.0, 3.0):
    x = np.float32(rng.normal(size=6))
    got = lib_op(name, direction, strength)(jnp.asarray(x))
    want = ref_op(name, direction, strength, projection=solver_projection)(x)
    # The interior-point solver reaches ~1e-5 on the exponential cone, ~1e-9 on L2.
    atol = 1e-4 if name.endswith("kl") else 3e-5
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=atol)


@every_path
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", SOFT_OPS)
def test_soft_ops_match_prop3_reference_on_longer_vectors(name, direction, rng):
  x = np.float32(rng.normal(size=(6, 64)))
  x[5] = np.round(x[5], 1)  # Many exact ties.
  for strength in (0.03, 1.0, 30.0):
    got = np.asarray(lib_op(name, direction, strength)(jnp.asarray(x)))
    want = along_axis(ref_op(name, direction, strength), -1, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@every_path
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_hard_rank_matches_scipy_rankdata(direction, rng):
  distinct = np.float32(rng.normal(size=(6, 64)))
  got = np.asarray(hard_rank(distinct, direction=direction))
  for row, ranks in zip(distinct, got):
    key = row if direction == "ascending" else -row
    np.testing.assert_array_equal(ranks, scipy.stats.rankdata(key, method="ordinal"))
  # Ties share their average rank (docstring and README).
  tied = np.float32(rng.integers(-3, 4, size=(6, 64)))
  tied[0] = 0.0
  tied[1, ::2] = -0.0  # -0.0 and 0.0 are equal.
  got = np.asarray(hard_rank(tied, direction=direction))
  for row, ranks in zip(tied, got):
    np.testing.assert_array_equal(ranks, ref_hard_rank(row, direction))


# ---------------------------------------------------------------------------
# 3. Gradients.
# ---------------------------------------------------------------------------


@every_path
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", SOFT_OPS)
def test_vjp_matches_finite_differences_of_reference(name, direction, rng):
  """The library's float32 VJP against central differences of the float64 reference."""
  x = np.float32(rng.normal(size=(6, 6)))
  g = np.float32(rng.normal(size=(6, 6)))
  _, vjp = jax.vjp(lib_op(name, direction), jnp.asarray(x))
  (got,) = vjp(jnp.asarray(g))
  for i in range(6):
    (want,) = finite_difference_vjp(ref_op(name, direction), (x[i],), g[i].astype(np.float64))
    np.testing.assert_allclose(np.asarray(got)[i], want, rtol=1e-4, atol=1e-4)


@every_path
def test_hard_rank_has_zero_gradient(rng):
  x = jnp.float32(rng.normal(size=(6, 6)))
  grad = jax.grad(lambda x: jnp.sum(hard_rank(x) * jnp.arange(6.0)))(x)
  np.testing.assert_array_equal(np.asarray(grad), np.zeros((6, 6)))


@every_path
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", SOFT_OPS)
def test_check_grads_float64(name, direction, x64, rng):
  x = jnp.asarray(rng.normal(size=6), jnp.float64)
  g = jnp.asarray(rng.normal(size=6), jnp.float64)
  fn = lib_op(name, direction)
  jax.test_util.check_grads(lambda x: jnp.vdot(g, fn(x)), (x,), order=1, modes=["rev"])


# ---------------------------------------------------------------------------
# 4. Transformations.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,direction",
    [
        ("soft_rank-l2", "ascending"),
        ("soft_rank-kl", "descending"),
        ("soft_sort-l2", "descending"),
        ("soft_sort-kl", "ascending"),
        ("hard_rank", "descending"),
    ],
)
def test_vmap_jit_and_nested_vmap_match_loops(name, direction, rng):
  x = jnp.float32(rng.normal(size=(2, 3, 6)))
  fn = lib_op(name, direction)
  loop = np.stack([np.stack([np.asarray(fn(x[i, j])) for j in range(3)]) for i in range(2)])
  # The ops vmap over the batch themselves, so fn(x) is the eager vmap; nested
  # vmap is jitted to compile once (the batching rules are the same as in eager mode).
  np.testing.assert_allclose(np.asarray(fn(x)), loop, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(jax.vmap(fn)))(x)), loop, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_jit_with_traced_strength_equals_eager_and_reference(regularization, rng):
  x = np.float32(rng.normal(size=(6, 6)))
  jitted = jax.jit(lambda x, s: soft_rank(x, regularization_strength=s, regularization=regularization))
  for strength in (0.3, 2.0):
    got = np.asarray(jitted(x, strength))
    eager = soft_rank(x, regularization_strength=strength, regularization=regularization)
    np.testing.assert_allclose(got, np.asarray(eager), rtol=1e-6, atol=1e-6)
    want = along_axis(ref_op(f"soft_rank-{regularization}", strength=strength), -1, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


# ---------------------------------------------------------------------------
# 5. Properties.
# ---------------------------------------------------------------------------

STRENGTHS = (1e-3, 0.1, 1.0, 10.0, 1e3)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_soft_ranks_sum_to_triangular_number_and_lie_in_range(regularization, direction, rng):
  n = 64
  x = jnp.float32(rng.normal(size=(6, n)))
  for strength in STRENGTHS:
    got = soft_rank(x, regularization_strength=strength, regularization=regularization, direction=direction)
    got = np.asarray(got, np.float64)
    np.testing.assert_allclose(got.sum(-1), n * (n + 1) / 2, rtol=1e-5)
    assert np.all(got >= 1 - 1e-4) and np.all(got <= n + 1e-3)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_soft_ranks_preserve_the_order_of_distinct_values(regularization, direction, rng):
  n = 64
  # Distinct values at least 0.2 apart.
  x = np.float32(np.stack([rng.permutation(n) * 0.25 + rng.uniform(0, 0.05, n) for _ in range(6)]))
  key = x if direction == "ascending" else -x
  for strength in (0.01, 0.3, 3.0, 30.0):
    got = np.asarray(soft_rank(x, regularization_strength=strength, regularization=regularization, direction=direction))
    np.testing.assert_array_equal(np.argsort(got, axis=-1), np.argsort(key, axis=-1))


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_small_strength_gives_hard_ranks_and_hard_sort(regularization, direction, rng):
  x = np.float32(np.stack([rng.permutation(6) - 2.5 for _ in range(6)]))
  key = x if direction == "ascending" else -x
  ranks = soft_rank(x, regularization_strength=1e-4, regularization=regularization, direction=direction)
  want = np.stack([scipy.stats.rankdata(row, method="ordinal") for row in key])
  np.testing.assert_allclose(np.asarray(ranks), want, rtol=1e-5)
  sort = soft_sort(x, regularization_strength=1e-4, regularization=regularization, direction=direction)
  want_sort = np.sort(x, axis=-1)
  want_sort = want_sort if direction == "ascending" else want_sort[:, ::-1]
  np.testing.assert_allclose(np.asarray(sort), want_sort, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_large_strength_gives_the_mean(regularization, direction, rng):
  x = np.float32(rng.normal(size=(6, 6)) * 3)
  ranks = soft_rank(x, regularization_strength=1e6, regularization=regularization, direction=direction)
  np.testing.assert_allclose(np.asarray(ranks), np.full((6, 6), 3.5), rtol=1e-5)
  sort = np.asarray(soft_sort(x, regularization_strength=1e6, regularization=regularization, direction=direction))
  x64 = np.float64(x)
  mean = logsumexp(x64, axis=-1) - np.log(6) if regularization == "kl" else x64.mean(-1)
  np.testing.assert_allclose(sort, np.broadcast_to(mean[:, None], (6, 6)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_soft_sort_keeps_the_sum_and_is_sorted(regularization, direction, rng):
  x = np.float32(rng.normal(size=(6, 64)))
  x64 = np.float64(x)
  for strength in STRENGTHS:
    got = soft_sort(x, regularization_strength=strength, regularization=regularization, direction=direction)
    got = np.asarray(got, np.float64)
    if regularization == "kl":  # A point of P(exp x) in the log domain.
      np.testing.assert_allclose(logsumexp(got, axis=-1), logsumexp(x64, axis=-1), rtol=1e-5, atol=1e-5)
    else:
      np.testing.assert_allclose(got.sum(-1), x64.sum(-1), rtol=1e-5, atol=1e-3)
    steps = np.diff(got, axis=-1)
    assert np.all(steps >= 0) if direction == "ascending" else np.all(steps <= 0)


@every_path
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_exact_ties_get_exactly_equal_soft_ranks(regularization, direction):
  x = np.array([[0.5, 2.0, 0.5, -1.0, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]], np.float32)
  for strength in (1e-4, 1e-2, 0.1, 1.0, 10.0):
    kwargs = dict(regularization_strength=strength, regularization=regularization, direction=direction)
    got = np.stack([np.asarray(soft_rank(row, **kwargs)) for row in x])
    assert got[0, 0] == got[0, 2] == got[0, 5]
    assert got[0, 1] == got[0, 4]
    assert np.all(got[1] == got[1, 0])
    if strength >= 1e-2:  # Smaller strengths: see test_ties_at_large_magnitudes.
      want = along_axis(ref_op(f"soft_rank-{regularization}", direction, strength), -1, x)
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
      np.testing.assert_allclose(got[1], np.full(6, 3.5), rtol=1e-5)
  # In the hard limit the tied values share the average of their ranks.
  got = soft_rank(x[0], regularization_strength=1e-2, regularization=regularization, direction=direction)
  np.testing.assert_allclose(np.asarray(got), ref_hard_rank(x[0], direction), rtol=1e-5)


# ---------------------------------------------------------------------------
# 6. Hostile input.
# ---------------------------------------------------------------------------


@every_path
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_large_input_at_extreme_strengths_is_finite_with_finite_gradients(regularization, ranking_path, rng):
  # The vmapped PAV on CPU copies its whole (n, n, 3) state every iteration.
  n = {"dense": 64, "cpu": 1000, "accelerator": 300}[ranking_path]
  x = jnp.float32(rng.normal(size=(n, n)))
  g = jnp.float32(rng.normal(size=(n, n)))

  @jax.jit
  def run(x, strength):
    ranks, vjp = jax.vjp(lambda x: soft_rank(x, regularization_strength=strength, regularization=regularization), x)
    return ranks, vjp(g)[0]

  for strength in (1e-4, 1e-2, 1.0, 1e2, 1e3):
    ranks, grad = (np.asarray(a) for a in run(x, strength))
    assert np.all(np.isfinite(ranks)), strength
    assert np.all(np.isfinite(grad)), strength
    np.testing.assert_allclose(ranks.sum(-1, dtype=np.float64), n * (n + 1) / 2, rtol=1e-4)


@every_path
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_huge_magnitudes_rank_exactly(regularization, direction):
  x = jnp.array([1e30, -1e30, 5e29, 1.0, -3e29, 2e30], jnp.float32)
  want = np.array([5.0, 1.0, 4.0, 3.0, 2.0, 6.0])
  want = want if direction == "ascending" else 7 - want
  np.testing.assert_array_equal(np.asarray(hard_rank(x, direction=direction)), want)
  for strength in (1e-4, 1e-2, 1.0, 1e2, 1e3):
    got = soft_rank(x, regularization_strength=strength, regularization=regularization, direction=direction)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, err_msg=f"strength={strength}")
  # Four values at strength 1.
  four = jnp.array([1e30, -1e30, 5e29, 1.0], jnp.float32)
  ranks = soft_rank(four, regularization=regularization, direction=direction)
  want_four = [4.0, 1.0, 3.0, 2.0] if direction == "ascending" else [1.0, 4.0, 2.0, 3.0]
  np.testing.assert_allclose(np.asarray(ranks), want_four, rtol=1e-6)
  # Gaps of ~1e29 against rho / strength = O(1): a fully averaged soft sort.
  sort = np.asarray(soft_sort(x, regularization=regularization, direction=direction), np.float64)
  np.testing.assert_allclose(sort, ref_soft_sort(np.asarray(x), 1.0, regularization == "kl", direction), rtol=1e-5)


# Tied values at large |x / strength|, with their exact soft ranks: tied values
# split the ranks of their block evenly, for L2 and KL alike.
TIES_AT_LARGE_MAGNITUDES = [
    ([1e30, 1e30, 1.0, -1e30, 5e29, 5.0], 1.0, [5.5, 5.5, 2.0, 1.0, 4.0, 3.0]),
    ([1e3, 1e3, 0.0, -1e3, 500.0, 1.0], 1e-4, [5.5, 5.5, 2.0, 1.0, 4.0, 3.0]),
    ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 1e-4, [3.5, 3.5, 3.5, 3.5, 3.5, 3.5]),
    ([0.5, 2.0, 0.5, -1.0, 2.0, 0.5], 1e-4, [3.0, 5.5, 3.0, 1.0, 5.5, 3.0]),
]


@every_path
@pytest.mark.parametrize("values,strength,want", TIES_AT_LARGE_MAGNITUDES)
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_ties_at_large_magnitudes(regularization, values, strength, want):
  got = soft_rank(jnp.array(values, jnp.float32), regularization_strength=strength, regularization=regularization)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)


@every_path
@pytest.mark.parametrize("regularization", REGULARIZATIONS)
def test_tiny_strength_with_huge_values_does_not_overflow(regularization):
  x = jnp.array([1e30, -1e30, 5e29, 1.0], jnp.float32)
  got = soft_rank(x, regularization_strength=1e-9, regularization=regularization)
  np.testing.assert_allclose(np.asarray(got), [4.0, 1.0, 3.0, 2.0], rtol=1e-6)


@every_path
def test_soft_sort_does_not_overflow_near_float32_max():
  got = soft_sort(jnp.array([3e38, 3e38, 1.0], jnp.float32))
  np.testing.assert_allclose(np.asarray(got), np.full(3, 2e38), rtol=1e-6)


@every_path
def test_length_one_hard_rank():
  np.testing.assert_array_equal(np.asarray(hard_rank(jnp.array([[3.0], [-1.0]]))), [[1.0], [1.0]])


@every_path
@pytest.mark.parametrize("name", SOFT_OPS)
def test_length_one_soft_ops(name):
  x = np.array([[3.0], [-1.0]], np.float32)
  got = lib_op(name)(jnp.asarray(x))
  want = [[1.0], [1.0]] if name.startswith("soft_rank") else x
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


@every_path
@pytest.mark.parametrize("name", OPS)
def test_non_finite_row_gives_nan_in_that_row_only(name, rng):
  x = np.float32(rng.normal(size=(6, 6)))
  bad = x.copy()
  bad[1, 3] = np.nan
  bad_rows, good_rows = [1], [0, 2, 3, 4, 5]
  if name != "hard_rank":  # hard_rank ranks infinities; soft ops give NaN rows for them.
    bad[2, 0] = np.inf
    bad[4, 5] = -np.inf
    bad_rows, good_rows = [1, 2, 4], [0, 3, 5]
  fn = lib_op(name)
  got = np.asarray(fn(bad))
  assert np.all(np.isnan(got[bad_rows]))
  np.testing.assert_allclose(got[good_rows], np.asarray(fn(x))[good_rows], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(got[good_rows], along_axis(ref_op(name), -1, x[good_rows]), rtol=1e-5, atol=2e-5)
  # Gradients of the finite rows are those without the bad rows, and finite.
  g = np.float32(rng.normal(size=(6, 6)))
  grad = np.asarray(jax.vjp(fn, jnp.asarray(bad))[1](g)[0])[good_rows]
  clean = np.asarray(jax.vjp(fn, jnp.asarray(x))[1](g)[0])[good_rows]
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad, clean, rtol=1e-6, atol=1e-6)


@every_path
def test_hard_rank_ranks_infinities():
  x = jnp.array([np.inf, -np.inf, 0.0, np.inf, -2.0, 1e38], jnp.float32)
  np.testing.assert_array_equal(np.asarray(hard_rank(x)), ref_hard_rank(np.asarray(x), "ascending"))


def _invalid_calls():
  """pytest.params of (call, the argument its error must name)."""
  calls = []
  for fn in (soft_rank, soft_sort):
    name = fn.__name__
    calls += [
        pytest.param(lambda x, fn=fn: fn(x, regularization="l1"), "regularization", id=f"{name}-regularization-l1"),
        pytest.param(lambda x, fn=fn: fn(x, regularization="KL"), "regularization", id=f"{name}-regularization-KL"),
        pytest.param(lambda x, fn=fn: fn(x, direction="up"), "direction", id=f"{name}-direction-up"),
        pytest.param(lambda x, fn=fn: fn(x, direction=None), "direction", id=f"{name}-direction-None"),
        pytest.param(lambda x, fn=fn: fn(x, axis=2), "axis", id=f"{name}-axis-2"),
        pytest.param(lambda x, fn=fn: fn(x, axis=-3), "axis", id=f"{name}-axis--3"),
    ]
    for strength in (0, 0.0, -1, -1e-3, float("nan"), float("inf"), None):
      call = lambda x, fn=fn, s=strength: fn(x, regularization_strength=s)
      calls.append(pytest.param(call, "regularization_strength", id=f"{name}-strength-{strength}"))
  calls += [
      pytest.param(lambda x: hard_rank(x, direction="desc"), "direction", id="hard_rank-direction-desc"),
      pytest.param(lambda x: hard_rank(x, axis=2), "axis", id="hard_rank-axis-2"),
      pytest.param(lambda x: hard_rank(x, axis=-3), "axis", id="hard_rank-axis--3"),
  ]
  return calls


@pytest.mark.parametrize("call,argument", _invalid_calls())
def test_invalid_arguments_raise_value_error_naming_the_argument(call, argument):
  # \b keeps "regularization" from matching "regularization_strength".
  with pytest.raises(ValueError, match=rf"\b{argument}\b"):
    call(jnp.ones((2, 3)))


@pytest.mark.parametrize("op", ("soft_rank-l2", "soft_rank-kl", "hard_rank"))
def test_ranks_of_a_fused_noisy_input_are_permutations(op):
  # XLA fuses the noise and the mean over samples into the ranking op, where on
  # the dense path each value is read once per row and once per column of the
  # comparisons: both reads must agree (`_dense._materialized`), or two values
  # take the same place.
  @jax.jit
  def mean_ranks(values):
    noisy = values + 2.0 * jax.random.normal(jax.random.key(4), (7,) + values.shape)
    if op == "hard_rank":
      return jnp.mean(hard_rank(noisy), axis=0)
    return jnp.mean(soft_rank(noisy, regularization_strength=1e-4, regularization=op.split("-")[1]), axis=0)

  got = np.asarray(mean_ranks(jax.random.normal(jax.random.key(3), (3, 5))), np.float64)
  np.testing.assert_allclose(got.sum(axis=-1), 15.0, rtol=1e-6)
  np.testing.assert_allclose(got * 7, np.round(got * 7), atol=1e-4)  # A mean of 7 permutations.
