"""Ranking benchmark: soft, perturbed and hard ranks against JAX's argsort(argsort) and torchsort.

Command (``make bench``):
  python -m benchmarks.ranking --workdir results/ranking_benchmark
  [--config.reps=5]             quick: 5 repetitions instead of 30
  [--config.torch_device=cuda]  torchsort on the GPU (CUDA-synchronised timings)

Measures, jitted and with compilation excluded, the median forward and
forward+backward times of `soft_rank` (L2, KL) and `perturbed_ranks` at every
``batch x n`` of ``sizes``, beside JAX's `argsort(argsort(x))`, XLA's sort alone,
`hard_rank` and, when installed, torchsort in the same run; writes
``ranking.{json,md,png}`` with the ratios to JAX's hard rank and to torchsort.

Expected runtime on the 2-core CPU: 60 to 90 seconds with 30 repetitions
(recorded in ranking.md), mostly the 16x10000 row. Expected result: the run in
docs/results/ranking.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.reps = 30                         # Timed runs per case (median); 5 for a quick look.
  config.torch_device = "cpu"              # torchsort's device: "cpu" or "cuda".
  # (batch, n) of every row; one row on the command line: --config.sizes="((16, 100),)".
  config.sizes = ((256, 10), (256, 100), (64, 1000), (16, 10000))
  return config
