"""The paper's Fig. 3: downstream performance against the number of frequency bands.

Command:
  python -m experiments.nsynth --config experiments/configs/bands.py --workdir results/bands

Pre-trains `perturbed_fy` (`nsynth.get_table_config`: the `small` CFN, sigma
1.0) on 2, 4, 6, 8, 10 and 12 frequency bands of the
64-bin log-mel, each probed against its own untrained CFN at N = 1000;
sweep.png plots every task against the number of bands. Smaller than the
paper's Fig. 3, to fit a 2-core CPU in about 15 minutes: even counts only
(the paper plots 2 to 12), 1500 pre-training steps (the default's 3000 halved)
and N = 1000 drawn from 2,000 pool notes.
"""

from experiments.configs import nsynth


def get_config():
  config = nsynth.get_table_config()
  config.sweep.fields = ("pretext.n_rows",)
  config.sweep.points = (2, 4, 6, 8, 10, 12)
  config.sweep.names = ("2", "4", "6", "8", "10", "12")
  config.pretrain.train.num_steps = 1500
  config.eval.pool_examples = 2000
  return config
