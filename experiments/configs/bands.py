"""The paper's Fig. 3: downstream performance against the number of frequency bands.

Command:
  python -m experiments.nsynth --config experiments/configs/bands.py --workdir results/bands

Pre-trains `perturbed_fy` on 2, 4, 6, 8, 10 and 12 frequency bands of the
64-bin log-mel (the paper plots every count from 2 to 12; the even ones halve
the CPU time), each probed against its own untrained CFN at N = 1000;
sweep.png plots every task against the number of bands.
"""

from experiments.configs import nsynth


def get_config():
  config = nsynth.get_config()
  config.sweep.fields = ("pretext.n_rows",)
  config.sweep.points = (2, 4, 6, 8, 10, 12)
  config.sweep.names = ("2", "4", "6", "8", "10", "12")
  return config
