"""Training benchmark of the paper's pre-training settings (``experiments/configs/paper.py``).

Command:
  python -m benchmarks.training --config benchmarks/configs/training_paper.py --workdir results/training_benchmark_paper

The fields of `training.py`, with ``pretrain`` the paper's config: the
AlexNet-sized CFN on 10 bands of the 513-bin log spectrogram of 4 s notes.
Accelerator work: on the 2-core CPU the step runs at 0.117 steps/s
(docs/results/README.md), so 200 steps alone and 200 end to end take about
an hour; ``--config.steps=20`` roughly 7 minutes (with the final evaluation).
"""

from ml_collections import config_dict

from benchmarks.configs import training
from experiments.configs import paper


def get_config() -> config_dict.ConfigDict:
  config = training.get_config()
  config.pretrain_config = "experiments/configs/paper.py"
  config.pretrain = paper.get_config()
  return config
