"""The main job: pre-train on `gm_notes`, then probe the frozen embedding.

Command:
  python -m experiments.nsynth --workdir /tmp/nsynth

Pre-trains the default CFN config (`default.py`: 10 frequency bands of a
64-bin log-mel of each note's first second, `perturbed_fy`), then trains the
paper's 3-layer MLP, on the pooled convolutional features of the CFN
(`CFN.conv_embed`), with N = 1000 labelled train notes (3 seeds: the subset and
the head's initialisation) and scores it on 2,000 fixed test notes, against
the same CFN untrained (`random_embedding`) and log-mel statistics
(`logmel_baseline`). Expected: about 5 minutes on the 2-core CPU; family
accuracy 0.745 +- 0.002 against 0.691 +- 0.006 untrained, pitch MSE 22.0
against 26.0 (README, Results; the run in docs/results/nsynth/).

Fields beside `pretrain` (the training config, every field of `default.py`):
  methods     pretext losses to pre-train and evaluate, each in its own run.
  baselines   among random_embedding, logmel_baseline, supervised, pretrained (the shipped
              model, `shuffle_learn.pretrained`).
  eval.*      the downstream protocol; eval.data: fields of pretrain.data
              that differ for the labelled examples.
  sweep.*     optional: fields of `pretrain` (dotted, e.g. "pretext.n_rows") and
              a value per point (a tuple per point with several fields); the
              whole job runs once per point, see `experiments.nsynth`.
"""

from ml_collections import config_dict

from experiments.configs import default
from shuffle_learn.evaluators import probes


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.pretrain = default.get_config()
  config.methods = ("perturbed_fy",)
  config.baselines = ("random_embedding", "logmel_baseline")
  config.eval = config_dict.ConfigDict()
  config.eval.n_train = (1000,)          # Downstream training set sizes N.
  config.eval.seeds = 3                  # Seeds per N: the N notes drawn and the head's initialisation.
  config.eval.pool_examples = 5000       # Train notes the N are drawn from (embedded once).
  config.eval.test_examples = 2000       # Fixed test notes; 0 for the whole test split.
  config.eval.embedding = "conv"         # CFN layer probed: "conv" (pooled conv features), "fc6" or "fc7".
  config.eval.probe = "mlp"              # "mlp" (the paper's 3 layers) or "linear".
  config.eval.hidden = 256
  config.eval.epochs = 500               # Full-batch AdamW steps per head.
  config.eval.learning_rate = 3e-3
  config.eval.weight_decay = 1e-4
  config.eval.tasks = probes.TASKS
  config.eval.supervised_epochs = 30     # supervised baseline: epochs over the N notes.
  config.eval.data = config_dict.ConfigDict()  # Fields of pretrain.data replaced for the labelled notes (none).
  config.sweep = config_dict.ConfigDict()
  config.sweep.fields = ()               # e.g. ("pretext.n_rows", "pretext.n_cols").
  config.sweep.points = ()               # e.g. ((10, 1), (1, 10)).
  config.sweep.names = ()                # Names of the points (subdirectories); () for the values joined by "-".
  return config


def get_table_config() -> config_dict.ConfigDict:
  """The base of the paper-table configs (`losses.py`, `patches.py`, `bands.py`).

  The main job's config with the `small` CFN and sigma 1.0: the settings the
  tables of docs/results/README.md (Table I, Table II, Fig. 3) were measured
  with. `small` trains 1.46x faster than the default's `small_bands` on the
  2-core CPU (docs/results/README.md, training throughput), which the
  multi-run tables need.
  """
  config = get_config()
  config.pretrain.model.size = "small"
  config.pretrain.pretext.sigma = 1.0
  return config
