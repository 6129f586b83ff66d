"""PAV runs in O(n), and the ops take the path that `_paths` documents.

The first test guards against XLA copying the PAV stack at every loop
iteration, which turns the loop into O(n^2) without changing any result (it
happened with the KL gap before it was divided by the block size). The others
check which path an op takes by n and when forced; that every path gives the
right results is checked by the ops' tests, which run on each path
(tests/conftest.py, `ranking_path`).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shuffle_learn import ranking
from shuffle_learn.ranking import _paths
from shuffle_learn.ranking import _pav
from shuffle_learn.ranking import _sorting


def _best_time(fn, *args, reps=7):
  jax.block_until_ready(fn(*args))
  best = np.inf
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best


@pytest.mark.parametrize("kl", (False, True), ids=("l2", "kl"))
def test_pav_time_grows_linearly(kl):
  pav = jax.jit(lambda s, w: _pav._pav_vector(s, w, kl))
  times = {}
  for n in (4000, 64000):
    s = -np.sort(-np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    w = np.arange(n, 0, -1, dtype=np.float32)
    w = np.log(w) if kl else w
    times[n] = _best_time(pav, jnp.asarray(s), jnp.asarray(w))
  # Linear: 16x; quadratic: 256x. The bound leaves room for timer noise.
  assert times[64000] / times[4000] < 64, times


def _primitives(n):
  return str(jax.make_jaxpr(ranking.soft_rank)(jnp.ones((2, n))))


def test_short_rows_run_dense_then_in_lockstep_and_the_backend_chooses_for_longer():
  dense, lockstep = _primitives(_paths.DENSE_N), _primitives(_paths.LOCKSTEP_PAV_N)
  longer = _primitives(_paths.LOCKSTEP_PAV_N + 1)
  assert " while[" not in dense and "platform_index" not in dense  # No loop.
  assert " while[" in lockstep and " scan[" not in lockstep and "platform_index" not in lockstep
  assert "platform_index" in longer and " scan[" in longer  # lax.map over the rows on CPU.


@pytest.mark.parametrize("path", _paths.PATHS)
def test_forced_path_runs_at_every_length(path):
  with _paths.force_path(path):
    jaxpr = _primitives(_paths.LOCKSTEP_PAV_N + 1) if path == "dense" else _primitives(4)
  assert (" scan[" in jaxpr) == (path == "cpu")
  assert (" while[" in jaxpr) == (path != "dense")
  assert "platform_index" not in jaxpr


def test_unknown_path_is_refused():
  with pytest.raises(ValueError, match="path must be one of"):
    with _paths.force_path("gpu"):
      pass


@pytest.mark.parametrize("n", (_paths.COUNTING_SORT_N, _paths.COUNTING_SORT_N + 1), ids=("counting", "xla"))
def test_sort_descending_matches_numpy_on_ties_zeros_and_infinities(n, rng):
  # Both ways of sorting: places are a permutation, ties stay in index order.
  x = rng.choice(np.float32([-np.inf, -3e38, -1.0, -0.0, 0.0, 1e-30, 1.0, 2.5, 3e38, np.inf]), size=(5, n))
  x[0] = rng.normal(size=n)
  sorted_, place = jax.jit(jax.vmap(_sorting.sort_descending))(jnp.asarray(x))
  order = np.argsort(-x, axis=-1, kind="stable")  # -0.0 and 0.0 compare equal in both.
  np.testing.assert_array_equal(np.asarray(sorted_), np.take_along_axis(x, order, axis=-1))
  np.testing.assert_array_equal(np.asarray(place), np.argsort(order, axis=-1))
  assert ("sort[" in str(jax.make_jaxpr(_sorting.sort_descending)(jnp.ones(n)))) == (n > _paths.COUNTING_SORT_N)


def test_large_batches_leave_the_pairwise_paths():
  # rows x n^2 beyond the budgets: PAV instead of the dense path, XLA's sort instead of counting.
  def primitives(rows, n):
    return str(jax.make_jaxpr(ranking.soft_rank)(jnp.ones((rows, n))))
  assert " while[" not in primitives(256, 20)
  assert " while[" in primitives(1024, 20) and " sort[" not in primitives(1024, 20)
  assert " sort[" in primitives(4096, 48)
