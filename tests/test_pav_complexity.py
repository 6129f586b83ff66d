"""PAV runs in O(n): a 16x longer vector takes far less than 256x the time.

Guards against XLA copying the PAV stack at every loop iteration, which turns the
loop into O(n^2) without changing any result (it happened with the KL gap before
it was divided by the block size).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
