"""Benchmark of `shuffle_learn.ranking` against JAX's hard rank and torchsort.

Forward and forward+backward times of soft ranks (L2, KL) and perturbed ranks at
batch x n = 256x10, 256x100, 64x1000, 16x10000 (``config.sizes``), in one run
beside JAX's jitted argsort-of-argsort, XLA's sort alone (what bounds the large
sizes), an empty jitted op (the fixed cost of a call) and, when installed,
torchsort on the CPU (or the GPU). JAX runs inline on CPU unless
``--config.async_dispatch`` (see the config). Prints a
Markdown table of median times, their ratios to JAX's hard rank and to
torchsort, and writes JSON, Markdown and a PNG plot.

  python -m benchmarks.ranking --workdir DIR [--config benchmarks/configs/ranking.py] [--config.reps=5]
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._machine import machine_info
from shuffle_learn import ranking
from shuffle_learn.ranking import _paths


def median_ms(fn, reps: int, min_seconds: float = 0.5) -> float:
  """Median wall time of `fn()` in milliseconds; `fn` must block on its result.

  At least `reps` runs, and more for fast cases (up to 2000), so that each
  case is timed for about `min_seconds`: on a shared 2-core machine single
  runs of 0.1 ms vary by 3x.
  """
  fn()  # Compile and warm up.
  start = time.perf_counter()
  fn()
  reps = max(reps, min(2000, int(min_seconds / max(time.perf_counter() - start, 1e-6))))
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def jax_cases(x: jax.Array, key: jax.Array) -> dict:
  """name -> blocking callable, all jitted, on the default JAX device."""
  weights = jnp.linspace(-1.0, 1.0, x.shape[-1], dtype=x.dtype)

  def forward_backward(rank_fn):
    return jax.jit(jax.grad(lambda v: jnp.sum(rank_fn(v) * weights)))

  soft_l2 = lambda v: ranking.soft_rank(v)
  soft_kl = lambda v: ranking.soft_rank(v, regularization="kl")
  perturbed = lambda v: ranking.perturbed_ranks(key, v, num_perturbations=10, sigma=0.1)
  fns = {
      "jax empty op": jax.jit(lambda v: v + 1),
      "jax argsort(argsort) fwd": jax.jit(lambda v: jnp.argsort(jnp.argsort(v, axis=-1), axis=-1)),
      "jax sort fwd": jax.jit(lambda v: jnp.sort(v, axis=-1)),
      "hard_rank fwd": jax.jit(ranking.hard_rank),
      "soft_rank l2 fwd": jax.jit(soft_l2),
      "soft_rank l2 fwd+bwd": forward_backward(soft_l2),
      "soft_rank kl fwd": jax.jit(soft_kl),
      "soft_rank kl fwd+bwd": forward_backward(soft_kl),
      "perturbed_ranks fwd": jax.jit(perturbed),
      "perturbed_ranks fwd+bwd": forward_backward(perturbed),
  }
  return {name: (lambda f=f: jax.block_until_ready(f(x))) for name, f in fns.items()}


def torch_cases(x: np.ndarray, device: str) -> dict:
  """torchsort on `device`, if it is installed; {} otherwise. CUDA timings synchronise."""
  try:
    import torch
    import torchsort
  except ImportError:
    return {}
  torch.set_num_threads(os.cpu_count() or 1)
  values = torch.from_numpy(x).to(device)
  weights = torch.linspace(-1.0, 1.0, x.shape[-1], device=device)
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

  def blocking(fn):
    def run():
      out = fn()
      sync()
      return out
    return run

  def forward(regularization):
    def run():
      with torch.no_grad():
        return torchsort.soft_rank(values, regularization=regularization)
    return blocking(run)

  def forward_backward(regularization):
    def run():
      leaf = values.clone().requires_grad_(True)
      (torchsort.soft_rank(leaf, regularization=regularization) * weights).sum().backward()
      return leaf.grad
    return blocking(run)

  return {
      "torch argsort(argsort) fwd": blocking(lambda: torch.argsort(torch.argsort(values, dim=-1), dim=-1)),
      "torchsort l2 fwd": forward("l2"),
      "torchsort l2 fwd+bwd": forward_backward("l2"),
      "torchsort kl fwd": forward("kl"),
      "torchsort kl fwd+bwd": forward_backward("kl"),
  }


def demo() -> None:
  values = jnp.array([0.3, -1.0, 2.0, 2.0, 0.5])
  print(f"values: {np.asarray(values)}   hard_rank: {np.asarray(ranking.hard_rank(values))}")
  for strength in (0.01, 0.3, 1.0, 10.0):
    ranks = ranking.soft_rank(values, regularization_strength=strength)
    print(f"  soft_rank l2, strength {strength:>5}: {np.round(np.asarray(ranks), 3)}")
  perturbed = ranking.perturbed_ranks(jax.random.key(0), values, sigma=0.5, num_perturbations=1000)
  print(f"  perturbed_ranks sigma 0.5: {np.round(np.asarray(perturbed), 3)}")


def run(reps: int, torch_device: str, sizes, min_seconds: float = 0.5) -> dict:
  rng = np.random.default_rng(0)
  results = []
  for batch, n in sizes:
    x = rng.standard_normal((batch, n)).astype(np.float32)
    cases = {**jax_cases(jnp.asarray(x), jax.random.key(0)), **torch_cases(x, torch_device)}
    row = {"batch": batch, "n": n, "ms": {}}
    for name, fn in cases.items():
      row["ms"][name] = median_ms(fn, reps, min_seconds)
    base = row["ms"]["jax argsort(argsort) fwd"]
    row["ratio_to_jax_hard_rank"] = {name: ms / base for name, ms in row["ms"].items()}
    if "torchsort l2 fwd+bwd" in row["ms"]:
      row["ratio_to_torchsort"] = {
          f"soft_rank {op}": row["ms"][f"soft_rank {op}"] / row["ms"][f"torchsort {op}"]
          for op in ("l2 fwd", "l2 fwd+bwd", "kl fwd", "kl fwd+bwd")
      }
    results.append(row)
    print(f"  {batch}x{n}: soft_rank l2 fwd+bwd {row['ms']['soft_rank l2 fwd+bwd']:.3f} ms = "
          f"{row['ratio_to_jax_hard_rank']['soft_rank l2 fwd+bwd']:.2f}x JAX hard rank", flush=True)
  return {
      **machine_info(),
      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
      "reps": reps,
      "min_seconds": min_seconds,
      "dense_n": _paths.DENSE_N,
      "torch_device": torch_device,
      "results": results,
  }


def markdown(report: dict) -> str:
  names = list(report["results"][0]["ms"])
  header = "| op | " + " | ".join(f"{r['batch']}x{r['n']}" for r in report["results"]) + " |"
  dispatch = "asynchronous" if report["jax_cpu_async_dispatch"] else "inline"
  lines = [f"Device: {report['device']} ({report['cpu_count']} CPU cores), JAX {report['jax']}, "
           f"{report['date']}, {report['runtime_s']:.0f} s in all, median of at least {report['reps']} runs "
           f"(at least {report['min_seconds']} s of runs for each case). "
           f"JAX's CPU dispatch: {dispatch}. Paths: dense for n <= {report['dense_n']}, "
           "sort and PAV row by row beyond (CPU). "
           "Cells: ms (ratio to JAX argsort(argsort)).", "",
           header, "|" + "---|" * (len(report["results"]) + 1)]
  for name in names:
    cells = [f"{r['ms'][name]:.3f} ({r['ratio_to_jax_hard_rank'][name]:.2f}x)" for r in report["results"]]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  if "ratio_to_torchsort" in report["results"][0]:
    lines += ["", f"Ratio to torchsort ({report['torch_device']}), lower is faster:", "",
              "| op | " + " | ".join(f"{r['batch']}x{r['n']}" for r in report["results"]) + " |",
              "|" + "---|" * (len(report["results"]) + 1)]
    for name in report["results"][0]["ratio_to_torchsort"]:
      cells = [f"{r['ratio_to_torchsort'][name]:.2f}x" for r in report["results"]]
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    print("matplotlib is not installed: no plot.")
    return
  labels = [f"{r['batch']}x{r['n']}" for r in report["results"]]
  names = [n for n in report["results"][0]["ms"] if "fwd+bwd" in n or "argsort" in n]
  fig, ax = plt.subplots(figsize=(9, 4.5))
  width = 0.8 / len(names)
  for i, name in enumerate(names):
    ax.bar(np.arange(len(labels)) + i * width, [r["ms"][name] for r in report["results"]], width, label=name)
  ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels)
  ax.set_yscale("log")
  ax.set_ylabel("median time (ms)")
  ax.set_title(f"Ranking ops, {report['device']}")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def main(config, workdir: str) -> dict:
  """Runs the benchmark of ``config`` (`benchmarks/configs/ranking.py`); writes and returns its report."""
  out = Path(workdir)
  out.mkdir(parents=True, exist_ok=True)
  # Read when JAX starts its CPU backend, which the demo does.
  jax.config.update("jax_cpu_enable_async_dispatch", bool(config.async_dispatch))
  demo()
  print("Benchmark (jitted; compile time excluded):")
  start = time.perf_counter()
  report = run(reps=config.reps, torch_device=config.torch_device, sizes=tuple(tuple(s) for s in config.sizes),
               min_seconds=config.min_seconds)
  report["runtime_s"] = time.perf_counter() - start
  report["jax_cpu_async_dispatch"] = bool(config.async_dispatch)
  table = markdown(report)
  print(table)
  (out / "ranking.json").write_text(json.dumps(report, indent=2))
  (out / "ranking.md").write_text(table)
  plot(report, out / "ranking.png")
  print(f"Wrote {out}/ranking.json, ranking.md, ranking.png")
  return report


if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, config="benchmarks/configs/ranking.py", workdir_help="Output folder (JSON, Markdown, PNG).")
