"""The paper's Table II: frequency bands, time frames or time-frequency tiles as the shuffled patches.

Command:
  python -m experiments.nsynth --config experiments/configs/patches.py --workdir results/patches

Pre-trains `perturbed_fy` (`nsynth.get_table_config`: the `small` CFN, sigma
1.0) on 10 frequency bands, 10 time frames
(1 s split into 10 segments of 10 frames) and 2 x 5 = 10 time-frequency tiles
(2 bands of 32 mel bins by 5 segments): 10 patches each, so 10! permutations
in every case. Each is probed against its own untrained CFN at N = 1000.
"""

from experiments.configs import nsynth


def get_config():
  config = nsynth.get_table_config()
  config.sweep.fields = ("pretext.n_rows", "pretext.n_cols")
  config.sweep.points = ((10, 1), (1, 10), (2, 5))
  config.sweep.names = ("frequency", "time", "time-frequency")
  return config
