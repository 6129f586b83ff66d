"""Ranking paths' crossovers: the measurements behind `shuffle_learn/ranking/_paths.py`.

Command:
  python -m benchmarks.ranking_paths --workdir results/ranking_paths

Times `soft_rank` forward+backward on each forced path (dense, CPU PAV,
accelerator PAV) and on the path the op chooses, and sorting by counting
against XLA's sort, and PAV alone on sorted rows, at the sizes below. Expected runtime on the 2-core CPU:
about 2 minutes. Expected result: docs/results/ranking/ranking_paths.md.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.min_seconds = 0.5   # Each case is timed for about this long (at least 30 runs).
  # (batch, n): around DENSE_N = 20 and DENSE_ELEMENTS = 2**17 rows x n^2, and LOCKSTEP_PAV_N = 48.
  config.path_sizes = ((32, 10), (32, 20), (32, 32), (256, 10), (256, 20), (256, 32), (256, 48), (256, 64),
                       (1024, 10), (1024, 20), (4096, 10), (1024, 64))
  # (batch, n): around COUNTING_SORT_N = 256 and COUNTING_SORT_ELEMENTS = 2**22 rows x n^2.
  config.sort_sizes = ((256, 48), (256, 100), (256, 128), (256, 160), (4096, 32), (4096, 100), (64, 256),
                       (64, 384))
  # (batch, n): PAV alone on sorted rows, on both of its paths.
  config.pav_sizes = ((256, 100),)
  return config
