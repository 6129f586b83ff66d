"""Training benchmark: the input pipeline, the train step and the two together, for a training config.

Command:
  python -m benchmarks.training --workdir results/training_benchmark
  [--config.steps=300] [--config.pretrain.model.size=small --config.pretrain.pretext.sigma=1.0]
  python -m benchmarks.training --config benchmarks/configs/training_paper.py --workdir DIR  (the paper's)

``pretrain`` is the training config measured, every field of
``experiments/configs/default.py`` (`training_paper.py`: of ``paper.py``),
overridable as ``--config.pretrain.FIELD=value``. Measures the host input
pipeline alone (1 and 2 read threads), the jitted train step alone on a batch
kept on the device, and `train.train_and_evaluate` for ``steps`` steps; prints
which one bounds training and writes ``training.{json,md,png}``. The report
names ``pretrain_config`` and lists the fields where ``pretrain`` differs
from it.

Expected runtime on the 2-core CPU: about a minute for the default config and
200 steps (21.5 steps/s alone, 19.1 end to end, measured 2026-11-22;
docs/results/README.md), plus the end-of-run evaluation.
"""

from ml_collections import config_dict

from experiments.configs import default


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.steps = 200                       # Steps timed alone and end to end.
  config.pretrain_config = "experiments/configs/default.py"  # The file `pretrain` is built from (for the report).
  config.pretrain = default.get_config()
  return config
