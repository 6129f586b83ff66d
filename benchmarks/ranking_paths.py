"""Where the ranking ops' paths cross over: the measurements behind `_paths`' thresholds.

Times, on each forced path (`shuffle_learn.ranking._paths`), `soft_rank`
forward+backward (L2, KL) at batch x n sizes around the dense path's limits,
and the two ways of sorting (`_sorting.sort_descending`: counting pairwise
comparisons, XLA's sort) around the counting limits, and PAV alone on sorted
rows, which bounds the longer rows. JAX runs inline on CPU, as
in `benchmarks.ranking`. Writes ``ranking_paths.{json,md}``.

  python -m benchmarks.ranking_paths --workdir DIR [--config.min_seconds=0.5]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks._machine import machine_info
from benchmarks.ranking import median_ms
from shuffle_learn import ranking
from shuffle_learn.ranking import _paths
from shuffle_learn.ranking import _pav
from shuffle_learn.ranking import _sorting


def _xla_sort_descending(x):
  n = x.shape[0]
  iota = jnp.arange(n, dtype=jnp.int32)
  negated, order = lax.sort((-x, iota), num_keys=1)
  return -negated, jnp.zeros(n, jnp.int32).at[order].set(iota, unique_indices=True)


def path_rows(sizes, min_seconds: float) -> list[dict]:
  rows = []
  for batch, n in sizes:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, n)), jnp.float32)
    weights = jnp.linspace(-1.0, 1.0, n)
    row = {"batch": batch, "n": n, "ms": {}}
    for regularization in ("l2", "kl"):
      for path in _paths.PATHS:
        with _paths.force_path(path):
          fn = jax.jit(jax.grad(lambda v: jnp.sum(ranking.soft_rank(v, regularization=regularization) * weights)))
          row["ms"][f"{regularization} {path}"] = median_ms(lambda: jax.block_until_ready(fn(x)), 30, min_seconds)
      fn = jax.jit(jax.grad(lambda v: jnp.sum(ranking.soft_rank(v, regularization=regularization) * weights)))
      row["ms"][f"{regularization} chosen"] = median_ms(lambda: jax.block_until_ready(fn(x)), 30, min_seconds)
    rows.append(row)
    print(f"  {batch}x{n}: " + ", ".join(f"{k} {v:.3f}" for k, v in row["ms"].items()), flush=True)
  return rows


def sort_rows(sizes, min_seconds: float) -> list[dict]:
  rows = []
  for batch, n in sizes:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, n)), jnp.float32)
    xla = jax.jit(jax.vmap(_xla_sort_descending))
    ms = {"xla sort": median_ms(lambda: jax.block_until_ready(xla(x)), 30, min_seconds)}
    # Counting at every size: the thresholds are lifted for this measurement.
    saved = (_paths.COUNTING_SORT_N, _paths.COUNTING_SORT_ELEMENTS)
    _paths.COUNTING_SORT_N, _paths.COUNTING_SORT_ELEMENTS = n, batch * n * n
    try:
      counting = jax.jit(jax.vmap(_sorting.sort_descending))
      ms["counting"] = median_ms(lambda: jax.block_until_ready(counting(x)), 30, min_seconds)
    finally:
      _paths.COUNTING_SORT_N, _paths.COUNTING_SORT_ELEMENTS = saved
    rows.append({"batch": batch, "n": n, "ms": ms})
    print(f"  {batch}x{n}: xla sort {ms['xla sort']:.3f}, counting {ms['counting']:.3f}", flush=True)
  return rows


def pav_rows(sizes, min_seconds: float) -> list[dict]:
  """PAV alone on rows already sorted, on each of its paths: what bounds the longer rows."""
  rows = []
  for batch, n in sizes:
    s = -jnp.sort(-jnp.asarray(np.random.default_rng(0).standard_normal((batch, n)), jnp.float32), axis=-1)
    rho = jnp.broadcast_to(jnp.arange(n, 0, -1, dtype=jnp.float32), s.shape)
    ms = {}
    for regularization, w in (("l2", rho), ("kl", jnp.log(rho))):
      for path in ("cpu", "accelerator"):
        with _paths.force_path(path):
          fn = jax.jit(_pav._PAV_MATRIX[regularization == "kl"])  # pylint: disable=protected-access
          ms[f"{regularization} {path}"] = median_ms(lambda: jax.block_until_ready(fn(s, w)), 30, min_seconds)
    rows.append({"batch": batch, "n": n, "ms": ms})
    print(f"  {batch}x{n}: " + ", ".join(f"{k} {v:.3f}" for k, v in ms.items()), flush=True)
  return rows


def markdown(report: dict) -> str:
  lines = [f"Device: {report['device']} ({report['cpu_count']} CPU cores), JAX {report['jax']}, {report['date']}, "
           f"{report['runtime_s']:.0f} s in all; medians, ms. Thresholds: dense for n <= {report['dense_n']} and "
           f"rows x n^2 <= {report['dense_elements']}; counting sort for n <= {report['counting_sort_n']} and "
           f"rows x n^2 <= {report['counting_sort_elements']}.", "",
           "soft_rank forward+backward on each forced path, and on the path the op chooses:", ""]
  names = list(report["paths"][0]["ms"])
  lines += ["| batch x n | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
  for r in report["paths"]:
    lines.append(f"| {r['batch']}x{r['n']} | " + " | ".join(f"{r['ms'][k]:.3f}" for k in names) + " |")
  lines += ["", "Sorting rows in decreasing order, with their places:", "",
            "| batch x n | rows x n^2 | xla sort | counting |", "|---|---|---|---|"]
  for r in report["sorts"]:
    lines.append(f"| {r['batch']}x{r['n']} | {r['batch'] * r['n'] ** 2:,} | {r['ms']['xla sort']:.3f} | "
                 f"{r['ms']['counting']:.3f} |")
  lines += ["", "PAV alone on rows already sorted (L2 and KL, row by row and in lockstep):", "",
            "| batch x n | " + " | ".join(report["pav"][0]["ms"]) + " |", "|" + "---|" * (len(report["pav"][0]["ms"]) + 1)]
  for r in report["pav"]:
    lines.append(f"| {r['batch']}x{r['n']} | " + " | ".join(f"{v:.3f}" for v in r["ms"].values()) + " |")
  return "\n".join(lines) + "\n"


def main(config, workdir: str) -> dict:
  """Runs the crossover measurements of ``config`` (`benchmarks/configs/ranking_paths.py`)."""
  out = Path(workdir)
  out.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_cpu_enable_async_dispatch", False)  # Before JAX starts its CPU backend.
  start = time.perf_counter()
  print("soft_rank forward+backward by path:")
  paths = path_rows(tuple(tuple(s) for s in config.path_sizes), config.min_seconds)
  print("sorting:")
  sorts = sort_rows(tuple(tuple(s) for s in config.sort_sizes), config.min_seconds)
  print("PAV alone:")
  pav = pav_rows(tuple(tuple(s) for s in config.pav_sizes), config.min_seconds)
  report = {**machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "runtime_s": time.perf_counter() - start, "dense_n": _paths.DENSE_N,
            "dense_elements": _paths.DENSE_ELEMENTS, "counting_sort_n": _paths.COUNTING_SORT_N,
            "counting_sort_elements": _paths.COUNTING_SORT_ELEMENTS, "paths": paths, "sorts": sorts, "pav": pav}
  table = markdown(report)
  print(table)
  (out / "ranking_paths.json").write_text(json.dumps(report, indent=2))
  (out / "ranking_paths.md").write_text(table)
  return report


if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, config="benchmarks/configs/ranking_paths.py", workdir_help="Output folder (JSON, Markdown).")
