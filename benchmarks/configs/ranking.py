"""Ranking benchmark: soft, perturbed and hard ranks against JAX's argsort(argsort) and torchsort.

Command (``make bench``):
  python -m benchmarks.ranking --workdir results/ranking_benchmark
  [--config.reps=5]             quick: 5 repetitions instead of 30
  [--config.torch_device=cuda]  torchsort on the GPU (CUDA-synchronised timings)
  [--config.async_dispatch]     JAX's default asynchronous CPU dispatch

Measures, jitted and with compilation excluded, the median forward and
forward+backward times of `soft_rank` (L2, KL) and `perturbed_ranks` at every
``batch x n`` of ``sizes``, beside JAX's `argsort(argsort(x))`, XLA's sort alone,
`hard_rank` and, when installed, torchsort in the same run; writes
``ranking.{json,md,png}`` with the ratios to JAX's hard rank and to torchsort.

Every timed call blocks on its result. On CPU, JAX then runs the computation
inline, as torch does (``jax_cpu_enable_async_dispatch`` off). With JAX's
default asynchronous dispatch each blocking call also hands the work to
another thread and back, which added 0.04-0.05 ms per call at 256x10 in
docs/results/ranking/async (trivial programs, such as the ``jax empty op``
row, x + 1, still run inline). The mode must be chosen before JAX starts its
CPU backend, as the command line does.

Expected runtime on the 2-core CPU: about 90 seconds with 30 repetitions
(recorded in ranking.md), mostly the 16x10000 row. Expected result: the run in
docs/results/ranking.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.reps = 30                         # Timed runs per case (median); 5 for a quick look.
  config.min_seconds = 0.5                 # More runs for fast cases, up to 2000, to time each this long.
  config.torch_device = "cpu"              # torchsort's device: "cpu" or "cuda".
  config.async_dispatch = False            # JAX's asynchronous CPU dispatch (its default: True).
  # (batch, n) of every row; one row on the command line: --config.sizes="((16, 100),)".
  config.sizes = ((256, 10), (256, 100), (64, 1000), (16, 10000))
  return config
