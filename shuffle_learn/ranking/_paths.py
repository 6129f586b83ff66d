"""Which PAV an op runs: by n and backend.

Two paths compute the same results (the same blocks, values and VJPs), after
one XLA sort:

* ``"cpu"``: PAV looped row after row (`lax.map`), each row a tight native loop.
* ``"accelerator"``: PAV `vmap`ped over the rows, which runs them in lockstep;
  for GPUs and TPUs, where every loop iteration is a kernel launch, and for
  short rows on every backend, where a loop per row costs more in overhead than
  in work.

Rows of n <= `LOCKSTEP_PAV_N` run in lockstep; longer ones take the path that
`lax.platform_dependent` picks, so the backend that compiles the op decides.
Tests force one path at every n with `force_path`: the choice is made when an
op is traced, so it clears JAX's caches of traced and compiled functions.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import jax

PATHS = ("cpu", "accelerator")
# Measured on a 2-core CPU, 256 rows (docs/results/README.md, "Ranking"): the
# vmapped PAV beats the row loop at n = 10 (0.26 against 0.27 ms), 32 (0.48
# against 0.82 ms) and 48 (0.73 against 0.82 ms), not at 64 (1.71 against 1.35 ms).
LOCKSTEP_PAV_N = 48

_forced: str | None = None


def lockstep_pav(n: int) -> bool | None:
  """Whether PAV runs the rows in lockstep (vmapped); None: the backend decides."""
  if _forced is not None:
    return _forced == "accelerator"
  return True if n <= LOCKSTEP_PAV_N else None


@contextlib.contextmanager
def force_path(path: str | None) -> Iterator[None]:
  """Runs every op traced inside on `path` (one of `PATHS`), at every n; for tests."""
  global _forced
  if path is not None and path not in PATHS:
    raise ValueError(f"path must be one of {PATHS}, got {path!r}.")
  previous, _forced = _forced, path
  jax.clear_caches()
  try:
    yield
  finally:
    _forced = previous
    jax.clear_caches()
