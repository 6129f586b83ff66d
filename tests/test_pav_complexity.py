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


def test_short_rows_run_in_lockstep_and_the_backend_chooses_for_longer():
  short, longer = _primitives(_paths.LOCKSTEP_PAV_N), _primitives(_paths.LOCKSTEP_PAV_N + 1)
  assert "platform_index" not in short and " scan[" not in short
  assert "platform_index" in longer and " scan[" in longer  # lax.map over the rows on CPU.


@pytest.mark.parametrize("path", _paths.PATHS)
def test_forced_path_runs_at_every_length(path):
  with _paths.force_path(path):
    jaxpr = _primitives(4)
  assert (" scan[" in jaxpr) == (path == "cpu")
  assert "platform_index" not in jaxpr
